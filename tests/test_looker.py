"""Jobs look at their deployments together (worker.looker), paced by the budget (worker.pacing).

Calls are counted by the emulator (a real moto server over HTTP); the pacing is pure.
"""

from __future__ import annotations

from typing import Any

import anyio
import boto3
import pytest

from orchestrator.plan import plan_jobs
from orchestrator.sandbox import AwsEmulator, seed_services
from orchestrator.state import RunState
from tests.fleet import REGION, Fleets, Silent, run_planned
from worker.aws import AwsAccess
from worker.contract import Follow, JobOptions, Phase
from worker.ecs_calls import ServiceCalls
from worker.looker import Looker
from worker.pacing import (
    SAFETY_POLL_S,
    batches,
    calls_per_round,
    interval_s,
    longest_unlooked_first,
    look_floor_s,
    next_grid_in,
)

RATES = {"DescribeServices": 20.0, "DescribeServiceDeployments": 20.0}
SD = ("DescribeServiceDeployments", "")


@pytest.mark.parametrize(
    ("followers", "calls"),
    [
        ({("DescribeServices", "prod"): 20}, {"DescribeServices": 2}),
        ({("DescribeServices", "prod"): 21, ("DescribeServices", "test"): 1}, {"DescribeServices": 4}),
        ({SD: 20}, {"DescribeServiceDeployments": 1}),
        (
            {SD: 1000, ("DescribeServices", "prod"): 5},
            {"DescribeServiceDeployments": 50, "DescribeServices": 1},
        ),
    ],
)
def test_a_round_costs_a_call_per_batch(followers: dict[Any, int], calls: dict[str, int]) -> None:
    assert calls_per_round(followers) == calls


@pytest.mark.parametrize(
    ("floor", "followers", "expected"),
    [
        (1.0, {SD: 20}, 1.0),  # 20 jobs: every second, far inside the budget
        (1.0, {("DescribeServices", "prod"): 20}, 1.0),
        (1.0, {SD: 1000}, 50 / 16),  # 1,000 jobs: 50 calls a round at 80% of 20/s
        (1.0, {("DescribeServices", "prod"): 1000}, 100 / 16),
        (SAFETY_POLL_S, {SD: 1000}, SAFETY_POLL_S),  # under events the safety poll's floor rules
    ],
)
def test_the_budget_lengthens_the_interval_only_when_it_must(
    floor: float, followers: dict[Any, int], expected: float
) -> None:
    assert interval_s(floor, followers, RATES) == pytest.approx(expected)


def test_1000_jobs_stay_within_the_budget_and_are_looked_at_every_minute() -> None:
    followers = {SD: 600, ("DescribeServices", "a"): 250, ("DescribeServices", "b"): 150}
    interval = interval_s(1.0, followers, RATES)
    for action, calls in calls_per_round(followers).items():
        assert calls / interval <= RATES[action]  # per second, on average, under the refill
    assert interval <= 60


@pytest.mark.parametrize(("follow", "floor"), [(Follow.POLL, 1.0), (Follow.EVENTS, SAFETY_POLL_S)])
def test_events_leave_a_slow_safety_poll(follow: Follow, floor: float) -> None:
    assert look_floor_s(JobOptions(follow=follow)) == floor


@pytest.mark.parametrize(("now", "interval", "pause"), [(10.2, 1.0, 0.8), (10.0, 1.0, 1.0), (7.0, 3.0, 2.0)])
def test_jobs_of_one_interval_meet_on_its_grid(now: float, interval: float, pause: float) -> None:
    assert next_grid_in(now, interval) == pytest.approx(pause)


def test_batches_hold_one_cluster_each_and_the_longest_unlooked_go_first() -> None:
    ordered = longest_unlooked_first([(5.0, "s-new"), (0.0, "s-never"), (2.0, "t-old")])
    assert ordered == ["s-never", "t-old", "s-new"]
    items = [(("DescribeServices", "prod"), f"s{i}") for i in range(12)] + [(SD, "arn")]
    grouped = batches(items)
    assert [(key[1], len(batch)) for key, batch in grouped] == [("prod", 10), ("prod", 2), ("", 1)]


def _seed(aws: AwsEmulator, clusters: dict[str, int]) -> None:
    services = [
        (cluster, f"{cluster}-s{i}", {"app": "registry.example.com/app:1"})
        for cluster, count in clusters.items()
        for i in range(count)
    ]
    seed_services(aws.endpoint_url, REGION, services)


async def _ask_all(looker: Looker, asks: list[tuple[tuple[str, str], str]]) -> dict[str, Any]:
    answers: dict[str, Any] = {}

    async def ask(key: tuple[str, str], item: str) -> None:
        answers[item] = await looker.ask(key, item, metered=False)

    async with anyio.create_task_group() as serving:
        serving.start_soon(looker.run)
        async with anyio.create_task_group() as tg:
            for key, item in asks:
                tg.start_soon(ask, key, item)
        serving.cancel_scope.cancel()
    return answers


async def test_twenty_jobs_of_one_cluster_cost_two_describe_services_a_round(aws: AwsEmulator) -> None:
    _seed(aws, {"prod": 20, "test": 3})
    asks = [(("DescribeServices", "prod"), f"prod-s{i}") for i in range(20)]
    asks += [(("DescribeServices", "test"), f"test-s{i}") for i in range(3)] + [
        (("DescribeServices", "test"), "gone")
    ]
    before = aws.request_counts().get("DescribeServices", 0)
    async with AwsAccess().ecs(REGION) as ecs:
        answers = await _ask_all(Looker(ServiceCalls(ecs)), asks)
    assert aws.request_counts()["DescribeServices"] - before == 3  # prod: 10 + 10, test: 4
    assert {item: (a or {}).get("serviceName") for item, a in answers.items() if item != "gone"} == {
        item: item for _, item in asks if item != "gone"
    }
    assert answers["gone"] is None  # ECS does not know it: the job is told so


async def test_twenty_service_deployments_cost_one_call(aws: AwsEmulator) -> None:
    _seed(aws, {"a": 12, "b": 13})
    ecs: Any = boto3.client("ecs", region_name=REGION, endpoint_url=aws.endpoint_url)
    arns = []
    for cluster, count in (("a", 12), ("b", 13)):
        for i in range(count):
            ecs.update_service(cluster=cluster, service=f"{cluster}-s{i}", forceNewDeployment=True)
            listed = ecs.list_service_deployments(cluster=cluster, service=f"{cluster}-s{i}")
            arns.append(listed["serviceDeployments"][0]["serviceDeploymentArn"])
    before = aws.request_counts().get("DescribeServiceDeployments", 0)
    async with AwsAccess().ecs(REGION) as client:
        answers = await _ask_all(Looker(ServiceCalls(client)), [(SD, arn) for arn in arns])
    assert aws.request_counts()["DescribeServiceDeployments"] - before == 2  # 25 = 20 + 5
    assert all(answers[arn]["serviceDeploymentArn"] == arn for arn in arns)


async def test_a_fleet_shares_its_looks(fleet: Fleets, redis_url: str, aws: AwsEmulator) -> None:
    """20 jobs on two clusters, each looking every 100 ms at a 0.6 s rollout (6+ looks each
    alone): together, fewer than 3 DescribeServiceDeployments per job."""
    spec = fleet(20).spec
    planned = plan_jobs(spec, "looker-run")
    state = RunState.from_plan("looker-run", planned)
    before = aws.request_counts().get("DescribeServiceDeployments", 0)
    await run_planned(state, planned, redis_url, Silent(), heartbeat_s=spec.heartbeat, max_parallel=20)
    assert {job.phase for job in state.jobs.values()} == {Phase.SUCCEEDED}
    calls = aws.request_counts().get("DescribeServiceDeployments", 0) - before
    assert 0 < calls < 3 * 20
