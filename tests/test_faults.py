"""Faults real AWS throws, injected for real at the emulator's HTTP layer: every job still ends right."""

from __future__ import annotations

import pytest

from orchestrator.plan import plan_jobs
from orchestrator.sandbox import AwsEmulator
from orchestrator.state import RunState
from tests import fault_tally
from tests.fleet import REGION, Fleets, Recorder, published_seqs, run_planned
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
    aws: AwsEmulator,
    fleet: Fleets,
    redis_url: str,
    faults: list[tuple[str, int, int]],
    request: pytest.FixtureRequest,
) -> None:
    spec = fleet(6, bad=4).spec
    aws.set_throttling(True, buckets={"DescribeServices": (5, 10.0), "UpdateService": (3, 2.0)})
    for action, status, count in faults:
        aws.inject_fault(action, status, count)

    planned = plan_jobs(spec, "run-faults")
    state = RunState.from_plan("run-faults", planned)
    recorder = Recorder()
    await run_planned(state, planned, redis_url, recorder, heartbeat_s=spec.heartbeat, max_parallel=6)

    assert {job.target.service: job.phase for job in state.jobs.values()} == {
        f"s{i}": Phase.ROLLED_BACK if i == 4 else Phase.SUCCEEDED for i in range(6)
    }
    assert aws.pending_faults() == {}, "some injected faults were never hit: the test proves less"
    duplicates = fault_tally.duplicate_registrations([f"s{i}" for i in range(6)], REGION)
    lost = fault_tally.events_lost(await published_seqs(redis_url, "run-faults"), recorder.seen)
    fault_tally.record(
        f"5xx and throttling [{request.node.callspec.id}]",
        faults=sum(count for _, _, count in faults) + sum(aws.throttled_counts().values()),
        jobs=len(planned),
        duplicate_registrations=duplicates,
        events_lost=lost,
    )
    assert (duplicates, lost) == (0, 0)
