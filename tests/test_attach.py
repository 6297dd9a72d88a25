"""`ecs-fanout attach RUN_ID` as users run it (a subprocess), against a run in this process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import redis.asyncio

from orchestrator.local import LocalExecutor
from orchestrator.plan import PlannedJob, plan_jobs
from orchestrator.run import run_jobs, save_plan
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.sandbox.session import sandbox_services
from orchestrator.spec import load_spec
from orchestrator.state import JobState, RunState, exit_code
from worker.contract import Phase, WorkerEvent
from worker.publisher import connect_redis

REGION = "us-east-1"
RUN_ID = "attach-run"
ROOT = Path(__file__).resolve().parent.parent


class Midway:
    """A renderer that says when every rollout is under way."""

    def __init__(self, state: RunState) -> None:
        self._state = state
        self.reached = anyio.Event()

    def started(self, state: RunState) -> None:
        pass

    def setup_changed(self, step: str, status: str, message: str) -> None:
        pass

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        if all(j.phase is Phase.IN_PROGRESS for j in self._state.jobs.values()):
            self.reached.set()

    def finished(self, state: RunState) -> None:
        pass


def plan(tmp_path: Path, services: int, *, bad: int | None = None) -> list[PlannedJob]:
    lines = ['poll_interval = "100ms"', 'heartbeat = "10s"', 'timeout = "60s"']
    for i in range(services):
        lines += [
            "[[deploy]]",
            f'cluster = "c{i % 2}"',
            f'service = "s{i}"',
            'container = "app"',
            f'image = "registry.example.com/s{i}"',
            f'tag = "{"bad-1" if i == bad else "2.0.0"}"',
        ]
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    spec = load_spec(path)
    return plan_jobs(spec, RUN_ID)


def attach_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", "attach", *args]


async def test_attach_midway_ends_with_the_runs_summary(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=2.0, bad_images=("*:bad*",)))
    planned = plan(tmp_path, 4, bad=1)
    seed_services(aws.endpoint_url, REGION, sandbox_services(load_spec(tmp_path / "spec.toml")))
    state = RunState.from_plan(RUN_ID, planned)
    client = connect_redis(redis_url)
    env = {**os.environ, "REDIS_URL": redis_url}

    midway = Midway(state)

    async def run() -> None:
        executor = LocalExecutor(client, max_parallel=10, region=REGION)
        await run_jobs(state, planned, client, executor, midway, heartbeat_s=10)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.fail_after(30):  # midway: every rollout under way, none finished
                await midway.reached.wait()
            attached = await anyio.run_process(attach_command(RUN_ID, "--json"), env=env, check=False)
            assert state.done
    finally:
        await client.aclose()

    assert attached.returncode == exit_code(state) == 1, attached.stderr.decode()
    lines = [json.loads(line) for line in attached.stdout.decode().splitlines()]
    assert lines[0]["type"] == "run" and lines[0]["run_id"] == RUN_ID
    assert len(lines[0]["targets"]) == 4
    assert lines[-1]["type"] == "summary"
    assert lines[-1]["results"] == [r.model_dump(mode="json") for r in state.results()]
    # It replayed what happened before it came, then followed live: every phase of every job.
    phases = {(line["job_id"], line["phase"]) for line in lines if line["type"] == "event"}
    for job in state.jobs.values():
        assert (job.job_id, "started") in phases and (job.job_id, job.phase.value) in phases


def test_attach_to_an_unknown_run_is_a_clear_error(redis_url: str) -> None:
    result = subprocess.run(
        attach_command("no-such-run", "--plain"),
        capture_output=True,
        text=True,
        env={**os.environ, "REDIS_URL": redis_url},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "no run 'no-such-run'" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_ctrl_c_stops_following_cleanly(redis_url: str, tmp_path: Path) -> None:
    async def save() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        await save_plan(client, RUN_ID, plan(tmp_path, 2))  # a run whose jobs never report
        await client.aclose()

    anyio.run(save)
    process = subprocess.Popen(
        attach_command(RUN_ID, "--plain"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "REDIS_URL": redis_url},
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith(f"run {RUN_ID}: 2 services")
    time.sleep(0.3)  # subscribed and waiting for events
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130
    assert f"stopped following run {RUN_ID}" in stderr
    assert "Traceback" not in stderr
