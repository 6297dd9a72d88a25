"""`ecs-fanout attach RUN_ID` as users run it (a subprocess), against a run in this process."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import anyio
import redis.asyncio

from orchestrator.plan import plan_jobs
from orchestrator.run import save_plan
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.state import JobState, RunState, exit_code
from tests.cli import run_cli, spawn_cli
from tests.fleet import Fleets, Silent, run_planned
from worker.contract import Phase, WorkerEvent

RUN_ID = "attach-run"


class Midway(Silent):
    """A renderer that says when every rollout is under way."""

    def __init__(self, state: RunState) -> None:
        self._state = state
        self.reached = anyio.Event()

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        if all(j.phase is Phase.IN_PROGRESS for j in self._state.jobs.values()):
            self.reached.set()


def attach_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", "attach", *args]


async def test_attach_midway_ends_with_the_runs_summary(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=2.0, bad_images=("*:bad*",)))
    planned = plan_jobs(fleet(4, bad=1).spec, RUN_ID)
    state = RunState.from_plan(RUN_ID, planned)
    env = {**os.environ, "REDIS_URL": redis_url}
    midway = Midway(state)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_planned(state, planned, redis_url, midway, heartbeat_s=10))
        with anyio.fail_after(30):  # midway: every rollout under way, none finished
            await midway.reached.wait()
        attached = await anyio.run_process(attach_command(RUN_ID, "--json"), env=env, check=False)
        assert state.done

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
    result = run_cli("attach", "no-such-run", "--plain", redis_url=redis_url, timeout=60)
    assert result.returncode == 2
    assert "no run 'no-such-run'" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_ctrl_c_stops_following_cleanly(redis_url: str, tmp_path: Path) -> None:
    async def save() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        unseeded = Fleets(tmp_path)  # a run whose jobs never report
        await save_plan(client, RUN_ID, plan_jobs(unseeded(2).spec, RUN_ID))
        await client.aclose()

    anyio.run(save)
    process = spawn_cli("attach", RUN_ID, "--plain", redis_url=redis_url)
    assert process.stdout is not None
    assert process.stdout.readline().startswith(f"run {RUN_ID}: 2 services")
    time.sleep(0.3)  # subscribed and waiting for events
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130
    assert f"stopped following run {RUN_ID}" in stderr
    assert "Traceback" not in stderr
