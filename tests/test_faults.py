"""Faults real AWS throws, injected for real at the emulator's HTTP layer: every job still ends right."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from orchestrator.local import LocalExecutor
from orchestrator.plan import plan_jobs
from orchestrator.run import run_jobs
from orchestrator.sandbox import AwsEmulator, seed_services
from orchestrator.sandbox.session import sandbox_services
from orchestrator.spec import load_spec
from orchestrator.state import JobState, RunState
from worker.contract import Phase, WorkerEvent
from worker.publisher import connect_redis

REGION = "us-east-1"


class Quiet:
    def started(self, state: RunState) -> None:
        pass

    def setup_changed(self, step: str, status: str, message: str) -> None:
        pass

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        pass

    def finished(self, state: RunState) -> None:
        pass


FAULTS = [
    pytest.param(
        [("DescribeServices", 500, 3), ("RegisterTaskDefinition", 503, 2), ("UpdateService", 500, 2)],
        id="transient-5xx",
    ),
    pytest.param([("DescribeTaskDefinition", 503, 4), ("DescribeServices", 503, 6)], id="read-outage"),
]


@pytest.mark.parametrize("faults", FAULTS)
async def test_transient_errors_and_throttling_still_end_every_job_right(
    aws: AwsEmulator, redis_url: str, tmp_path: Path, faults: list[tuple[str, int, int]]
) -> None:
    lines = ['poll_interval = "100ms"', 'heartbeat = "10s"', 'timeout = "60s"']
    for i in range(6):
        tag = "bad-1" if i == 4 else "2.0.0"
        lines += [
            "[[deploy]]",
            f'cluster = "c{i % 2}"',
            f'service = "s{i}"',
            'container = "app"',
            f'image = "registry.example.com/s{i}"',
            f'tag = "{tag}"',
        ]
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text("\n".join(lines) + "\n")
    spec = load_spec(spec_path)
    seed_services(os.environ["AWS_ENDPOINT_URL"], REGION, sandbox_services(spec))
    aws.set_throttling(True, buckets={"DescribeServices": (5, 10.0), "UpdateService": (3, 2.0)})
    for action, status, count in faults:
        aws.inject_fault(action, status, count)

    planned = plan_jobs(spec, "run-faults")
    state = RunState.from_plan("run-faults", planned)
    redis = connect_redis(redis_url)
    try:
        executor = LocalExecutor(redis, max_parallel=6, region=REGION)
        await run_jobs(state, planned, redis, executor, Quiet(), heartbeat_s=spec.heartbeat)
    finally:
        await redis.aclose()

    assert {job.service: job.phase for job in state.jobs.values()} == {
        f"s{i}": Phase.ROLLED_BACK if i == 4 else Phase.SUCCEEDED for i in range(6)
    }
    ecs: Any = boto3.client("ecs", region_name=REGION)
    for i in range(6):
        revisions = ecs.list_task_definitions(familyPrefix=f"s{i}")["taskDefinitionArns"]
        assert len(revisions) == 2, f"s{i}: a fault caused a duplicate registration: {revisions}"
    assert aws.pending_faults() == {}, "some injected faults were never hit: the test proves less"
