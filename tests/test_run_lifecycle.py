"""A run that outlives its orchestrator: `attach` judges it once the orchestrator is gone, and
`status` says what ECS runs, compared with ECS itself.

The orchestrator is a real subprocess, killed for real (SIGKILL: no clean-up at all); attach
is a real subprocess reading the run's Redis; ECS is the emulator, whose rollouts go on
without anyone watching.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from orchestrator.liveness import TTL_S, RunMeta, kept_alive
from orchestrator.plan import plan_jobs
from orchestrator.run import save_plan
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.state import JobState, RunState
from orchestrator.takeover import GONE_FOR_S, NEVER_STARTED, Judge
from tests import fault_tally
from tests.cli import run_cli, spawn_cli
from tests.ecs_verdicts import ecs_verdict
from tests.fleet import REGION, Fleets
from worker.contract import Phase
from worker.publisher import connect_redis

HEARTBEAT_S = 3.0
SLOW = ("*/s1:*", "*/s2:*")  # these two roll out for a minute: their jobs hold two of the 3 slots


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_attach_judges_a_run_whose_orchestrator_was_killed_and_status_tells_ecs_truth(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.6, failure_s=60.0, bad_images=SLOW))
    six = fleet(6, heartbeat=f"{HEARTBEAT_S:.0f}s")
    process = spawn_cli(str(six.path), "--json", "--max-parallel", "3", redis_url=redis_url)
    assert process.stdout is not None
    before_kill: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    for line in process.stdout:  # s0 ends, then s3 takes its slot and gets its deployment
        before_kill.append(json.loads(line))
        event = before_kill[-1]
        if event["type"] == "event" and event["service"] == "s3" and event["phase"] == "updated":
            break
        assert time.monotonic() < deadline, before_kill
    process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    process.wait(timeout=10)
    run_id = before_kill[0]["run_id"]
    ended = {
        e["service"]: e["phase"] for e in before_kill if e["type"] == "event" and e["phase"] == "succeeded"
    }
    assert ended == {"s0": "succeeded"}, ended

    attached = run_cli("attach", run_id, "--json", redis_url=redis_url, timeout=60)
    took = time.monotonic() - killed_at

    assert attached.returncode == 1, attached.stderr
    assert "Traceback" not in attached.stderr
    assert took < TTL_S + HEARTBEAT_S + 5, f"attach took {took:.1f}s after the kill"
    assert f"run {run_id}: its orchestrator" in attached.stderr and "is gone" in attached.stderr
    summary = json_lines(attached.stdout)[-1]
    assert summary["type"] == "summary"
    results = {r["service"]: r for r in summary["results"]}
    assert results["s0"]["status"] == "succeeded"  # as it ended, before the kill
    for service in ("s1", "s2", "s3"):  # under way when the orchestrator (and its workers) died
        assert results[service]["status"] == "lost"
        assert results[service]["message"].startswith("no event for ")
        assert "its orchestrator had stopped" in results[service]["message"]
        assert f"ecs-fanout status {run_id}" in results[service]["message"]
    for service in ("s4", "s5"):  # never handed to a worker
        assert results[service] | {"status": "lost", "message": NEVER_STARTED} == results[service]

    time.sleep(1.0)  # s3's rollout, left to ECS, completes 0.6s after it started
    status = run_cli("status", run_id, "--json", redis_url=redis_url, timeout=60)
    assert status.returncode == 1, status.stderr
    objects = json_lines(status.stdout)
    verdicts = {o["service"]: o["status"] for o in objects if o["type"] == "target"}
    truth = {f"s{i}": ecs_verdict(f"s{i}", f"registry.example.com/s{i}:2.0.0") for i in range(6)}
    contradicted = sum(verdicts.get(service) != said for service, said in truth.items())
    assert verdicts == truth
    assert truth == {
        "s0": "matches",
        "s1": "rolling_out",
        "s2": "rolling_out",
        "s3": "matches",  # the run said lost: ECS finished it without us
        "s4": "differs",
        "s5": "differs",
    }
    assert objects[-1] | {"type": "summary", "targets": 6, "matching": 2} == objects[-1]
    plain = run_cli("status", run_id, redis_url=redis_url, timeout=60)
    assert plain.returncode == 1 and f"run {run_id}: 2 of 6 targets run what the run wanted" in plain.stdout

    fault_tally.record(
        "orchestrator SIGKILLed mid-run; attach judged, status compared with ECS",
        faults=1,
        jobs=6,
        duplicate_registrations=fault_tally.duplicate_registrations([f"s{i}" for i in range(6)], REGION),
        statuses_compared=len(truth),  # `status`'s verdicts against ECS's own answers
        statuses_wrong=contradicted,
    )


async def test_attach_only_follows_while_the_orchestrator_lives(redis_url: str, tmp_path: Path) -> None:
    """Jobs silent far past their heartbeat are not judged while the orchestrator is there;
    once it ends, they are, at once."""
    run_id = "alive-run"
    planned = plan_jobs(Fleets(tmp_path)(2, heartbeat="1s").spec, run_id)  # nobody will run them
    redis = connect_redis(redis_url)
    env = {**os.environ, "REDIS_URL": redis_url}
    try:
        async with kept_alive(redis, run_id, heartbeat_s=1.0):
            await save_plan(redis, run_id, planned)
            attach = await anyio.open_process(
                [sys.executable, "-m", "orchestrator", "attach", run_id, "--json"], env=env
            )
            await anyio.sleep(5.0)  # five heartbeats of silence
            assert attach.returncode is None, "attach judged while the orchestrator was alive"
        with anyio.fail_after(TTL_S):  # it ended: its key is gone, attach judges at its next look
            await attach.wait()
    finally:
        await redis.aclose()
    assert attach.stdout is not None
    out = b"".join([chunk async for chunk in attach.stdout]).decode()
    summary = json_lines(out)[-1]
    assert attach.returncode == 1
    assert [r["message"] for r in summary["results"]] == [NEVER_STARTED, NEVER_STARTED]


def test_a_remote_workers_queued_job_gets_its_window_after_the_orchestrator_goes(tmp_path: Path) -> None:
    """Lambda workers outlive the orchestrator: a job still queued may yet be taken. And a key
    missing for a moment (a Redis restarted empty, refilled at the next refresh) is no death."""
    planned = plan_jobs(Fleets(tmp_path)(1).spec, "remote-run")
    state = RunState.from_plan("remote-run", planned)
    judge = Judge(state, planned, RunMeta(heartbeat_s=10, queued_window_s=300, workers="remote"))
    changed: list[str] = []

    def said(job: JobState) -> None:
        changed.append(job.message)

    judge.orchestrator_seen(False, 1000.0, said)
    judge.orchestrator_seen(True, 1001.0, said)  # refreshed again: it was Redis, not the orchestrator
    judge.orchestrator_seen(False, 1002.0, said)
    assert not judge.judging
    gone_at = 1002.0 + GONE_FOR_S
    judge.orchestrator_seen(False, gone_at, said)
    assert judge.judging
    judge.judge(gone_at + 299, said)
    assert changed == [] and not state.done
    judge.judge(gone_at + 301, said)
    assert next(iter(state.jobs.values())).phase is Phase.LOST
    assert changed == ["never started: no worker took it within 301s of the orchestrator stopping"]
