"""Faults real AWS throws, injected for real at the emulator's HTTP layer: every job still ends right."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from orchestrator.plan import plan_jobs
from orchestrator.sandbox import AwsEmulator
from orchestrator.state import RunState
from tests.fleet import REGION, Fleets, Silent, run_planned
from worker.contract import Phase

FAULTS = [
    pytest.param(
        [("DescribeServices", 500, 3), ("RegisterTaskDefinition", 503, 2), ("UpdateService", 500, 2)],
        id="transient-5xx",
    ),
    pytest.param([("DescribeTaskDefinition", 503, 4), ("DescribeServices", 503, 6)], id="read-outage"),
]


@pytest.mark.parametrize("faults", FAULTS)
async def test_transient_errors_and_throttling_still_end_every_job_right(
    aws: AwsEmulator, fleet: Fleets, redis_url: str, faults: list[tuple[str, int, int]]
) -> None:
    spec = fleet(6, bad=4).spec
    aws.set_throttling(True, buckets={"DescribeServices": (5, 10.0), "UpdateService": (3, 2.0)})
    for action, status, count in faults:
        aws.inject_fault(action, status, count)

    planned = plan_jobs(spec, "run-faults")
    state = RunState.from_plan("run-faults", planned)
    await run_planned(state, planned, redis_url, Silent(), heartbeat_s=spec.heartbeat, max_parallel=6)

    assert {job.service: job.phase for job in state.jobs.values()} == {
        f"s{i}": Phase.ROLLED_BACK if i == 4 else Phase.SUCCEEDED for i in range(6)
    }
    ecs: Any = boto3.client("ecs", region_name=REGION)
    for i in range(6):
        revisions = ecs.list_task_definitions(familyPrefix=f"s{i}")["taskDefinitionArns"]
        assert len(revisions) == 2, f"s{i}: a fault caused a duplicate registration: {revisions}"
    assert aws.pending_faults() == {}, "some injected faults were never hit: the test proves less"
