"""Snapshots of the live view: a fixed sequence of synthetic events, a fixed run id and clock.

Regenerate after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the report before committing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import anyio
from textual.pilot import Pilot

from orchestrator.plan import PlannedJob
from orchestrator.run import Renderer
from orchestrator.state import RunState
from tui import FanoutApp
from worker.contract import ContainerChange, DeployJob, EventDetails, Phase, WorkerEvent
from worker.target import Target

RUN_ID = "20261129T120000Z-5a4db0"
T0 = 1_795_000_000.0  # the run's start, on the workers' clock
NOW = T0 + 42.0  # the app's fixed clock
SIZE = (160, 40)
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
SnapCompare = Callable[..., bool]


def planned(
    cluster: str,
    service: str,
    *containers: tuple[str, str],
    account: str | None = None,
    region: str | None = None,
) -> PlannedJob:
    job = DeployJob(
        run_id=RUN_ID,
        job_id=f"{RUN_ID}:{account}-{region}-{cluster}-{service}",
        target=Target(account=account, region=region, cluster=cluster, service=service),
        changes=tuple(ContainerChange(container=c, image=i) for c, i in containers),
    )
    return PlannedJob(job=job)


PLAN = [
    planned(
        "payments",
        "api",
        ("app", f"{ECR}/payments-api:2.4.0"),
        ("envoy", "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod"),
    ),
    planned("payments", "ledger", ("app", f"{ECR}/ledger:7.1.3")),
    planned("payments", "fraud-scorer", ("model", f"{ECR}/fraud-scorer:broken-2025.11")),
    planned("storefront", "web", ("nginx", f"{ECR}/web-nginx:1.27.3"), ("app", f"{ECR}/web-app:5.0.0")),
    planned("storefront", "cart", ("app", f"{ECR}/cart:1.0.0")),
    planned("internal", "reports", ("worker", "registry.example.com:5000/team/reports/worker:2026.11.29")),
]
# The same six services over two accounts and two regions: three groups.
GROUPS = (
    ("111111111111", "us-east-1"),
    ("111111111111", "us-east-1"),
    ("111111111111", "us-east-1"),
    ("222222222222", "eu-west-1"),
    ("222222222222", "eu-west-1"),
    ("111111111111", "eu-west-1"),
)
GROUPED_PLAN = [
    planned(
        p.job.target.cluster,
        p.job.target.service,
        *((c.container, c.image) for c in p.job.changes),
        account=account,
        region=region,
    )
    for p, (account, region) in zip(PLAN, GROUPS, strict=True)
]
CALLER = "arn:aws:sts::111111111111:assumed-role/ci-deployer/ci"
SETUP = [
    ("lambda", "done", "ecs-fanout-worker up to date (code unchanged)"),
    ("queue", "done", "ecs-fanout-jobs.fifo with dead-letter queue ready"),
    ("mapping", "done", "up to date, enabled"),
]


def arn(service: str, revision: int) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:task-definition/{service}:{revision}"


class Job:
    """Writes one job's events, numbering them as a worker would."""

    def __init__(self, index: int, plan: list[PlannedJob] = PLAN) -> None:
        self.job = plan[index].job
        self.seq = 0

    def event(self, at: float, phase: Phase, message: str, **details: Any) -> WorkerEvent:
        self.seq += 1
        return WorkerEvent(
            run_id=RUN_ID,
            job_id=self.job.job_id,
            seq=self.seq,
            ts=T0 + at,
            phase=phase,
            message=message,
            details=EventDetails(**details),
        )

    def forward(self, at: float, running: int, desired: int, failed: int = 0) -> Iterator[WorkerEvent]:
        """started, registered, updated, then one in_progress with the given counts."""
        name = self.job.target.service
        revs = {"task_definition_arn": arn(name, 2), "previous_task_definition_arn": arn(name, 1)}
        yield self.event(at, Phase.STARTED, f"{self.job.target.cluster}/{name} runs {arn(name, 1)}")
        yield self.event(at + 0.4, Phase.REGISTERED, f"registered {name}:2", **revs)
        yield self.event(at + 0.9, Phase.UPDATED, "deployment ecs-svc/0001 started", **revs)
        yield self.event(
            at + 3,
            Phase.IN_PROGRESS,
            f"{running}/{desired} running, {desired - running} pending, {failed} failed",
            running=running,
            desired=desired,
            pending=desired - running,
            failed_tasks=failed,
            **revs,
        )


def running_events(plan: list[PlannedJob] = PLAN) -> list[WorkerEvent]:
    api, ledger, fraud, web, cart = (Job(i, plan) for i in range(5))
    events = [*api.forward(0.2, 2, 3), *ledger.forward(0.3, 2, 2), *fraud.forward(0.4, 0, 2, failed=2)]
    events += [*list(web.forward(1.0, 0, 4))[:3]]
    events += [
        cart.event(0.5, Phase.STARTED, f"storefront/cart runs {arn('cart', 1)}"),
        cart.event(
            0.8, Phase.SKIPPED, "already running the target image", task_definition_arn=arn("cart", 1)
        ),
        ledger.event(
            9.0,
            Phase.SUCCEEDED,
            "2/2 running ledger:2",
            running=2,
            desired=2,
            task_definition_arn=arn("ledger", 2),
            previous_task_definition_arn=arn("ledger", 1),
        ),
    ]
    return events


def finished_events(plan: list[PlannedJob] = PLAN) -> list[WorkerEvent]:
    api, _, fraud, web, _, reports = (Job(i, plan) for i in range(6))
    for job, count in ((api, 4), (fraud, 4), (web, 3)):
        job.seq = count  # carry on after the running screen's events
    revs = {
        "previous_task_definition_arn": arn("fraud-scorer", 1),
        "task_definition_arn": arn("fraud-scorer", 2),
    }
    return [
        *running_events(plan),
        api.event(14.0, Phase.SUCCEEDED, "3/3 running api:2", running=3, desired=3),
        fraud.event(
            12.0,
            Phase.ROLLED_BACK,
            "ECS rolled back to fraud-scorer:1: ECS deployment circuit breaker: tasks failed to start.",
            running=0,
            desired=2,
            failed_tasks=3,
            **revs,
        ),
        web.event(20.0, Phase.SUCCEEDED, "4/4 running web:2", running=4, desired=4),
        *reports.forward(2.0, 1, 2),
        reports.event(
            32.0,
            Phase.TIMED_OUT,
            "deadline of 30s passed; rolled back to reports:1",
            task_definition_arn=arn("reports", 2),
        ),
    ]


def synthetic_app(
    events: list[WorkerEvent],
    *,
    finish: bool,
    plan: list[PlannedJob] = PLAN,
    caller: str | None = None,
    clock: Callable[[], float] = lambda: NOW,
) -> tuple[FanoutApp, Callable[[Pilot[Any]], Any]]:
    """An app fed `events` through its TuiRenderer, and the `run_before` that waits for them."""
    state = RunState.from_plan(RUN_ID, plan)
    fed = asyncio.Event()  # bound to the app's loop when first awaited

    async def runner(renderer: Renderer) -> None:
        renderer.started(state)
        for step, status, message in SETUP:
            renderer.setup_changed(step, status, message)
        for event in events:
            job = state.apply(event, received_at=event.ts)
            if job is not None:
                renderer.changed(job, event)
        if finish:
            renderer.finished(state)
        fed.set()
        await anyio.sleep_forever()

    app = FanoutApp(state, runner, spec_path="specs/demo.toml", clock=clock, caller=caller)

    async def settle(pilot: Pilot[Any]) -> None:
        with anyio.fail_after(10):
            await fed.wait()
            while finish and not app.finished:
                await pilot.pause(0.01)
        app.flush()
        await pilot.pause()

    return app, settle


def test_snapshot_running(snap_compare: SnapCompare) -> None:
    app, settle = synthetic_app(running_events(), finish=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_finished(snap_compare: SnapCompare) -> None:
    app, settle = synthetic_app(finished_events(), finish=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_failures_only_then_event_log(snap_compare: SnapCompare) -> None:
    app, settle = synthetic_app(finished_events(), finish=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle, press=["f", "down", "enter"])


def test_snapshot_grouped_by_account_and_region(snap_compare: SnapCompare) -> None:
    """Two accounts, two regions: three groups, each under a header with its own counts, and
    the caller in the run's header."""
    app, settle = synthetic_app(running_events(GROUPED_PLAN), finish=False, plan=GROUPED_PLAN, caller=CALLER)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_grouped_run_finished_failures_only(snap_compare: SnapCompare) -> None:
    """`f` over groups: only the failed panes, under the headers of the groups that have one."""
    app, settle = synthetic_app(finished_events(GROUPED_PLAN), finish=True, plan=GROUPED_PLAN, caller=CALLER)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle, press=["f"])


HOOK = "arn:aws:lambda:us-east-1:123456789012:function:payments-smoke-test"


def strategy_events(*, finish: bool) -> list[WorkerEvent]:
    """ECS's own strategies: payments/api on BLUE_GREEN held by its lifecycle hook, ledger ended
    `baking` (done_when = "traffic_shifted"), fraud-scorer LINEAR shifting (then rolled back by
    ECS), web CANARY baking, cart skipped, reports ROLLING (the rolloutState fallback)."""
    api, ledger, fraud, web, cart, reports = (Job(i) for i in range(6))
    sd = {"following": "service_deployment", "service_deployment_status": "IN_PROGRESS"}
    events = [
        *api.forward(0.2, 3, 3),
        api.event(
            9.0,
            Phase.IN_PROGRESS,
            "test traffic on api:2; the deployment waits for its hook",
            **sd,
            strategy="BLUE_GREEN",
            lifecycle_stage="POST_TEST_TRAFFIC_SHIFT",
            traffic_percent=0.0,
            hook=HOOK,
            hook_since=T0 + 9.0,
        ),
        *ledger.forward(0.3, 2, 2),
        ledger.event(
            20.0,
            Phase.BAKING,
            "production traffic is on ledger:2; ECS is still baking it (10m left)",
            **sd,
            strategy="BLUE_GREEN",
            lifecycle_stage="BAKE_TIME",
            traffic_percent=100.0,
            bake_left_s=600.0,
        ),
        *fraud.forward(0.4, 2, 2),
        fraud.event(
            30.0,
            Phase.IN_PROGRESS,
            "production traffic 30% on fraud-scorer:2",
            **sd,
            strategy="LINEAR",
            lifecycle_stage="PRODUCTION_TRAFFIC_SHIFT",
            traffic_percent=30.0,
        ),
        *web.forward(1.0, 4, 4),
        web.event(
            38.0,
            Phase.IN_PROGRESS,
            "production traffic on web:2",
            **sd,
            strategy="CANARY",
            lifecycle_stage="BAKE_TIME",
            traffic_percent=100.0,
            bake_left_s=254.0,
        ),
        cart.event(0.5, Phase.STARTED, f"storefront/cart runs {arn('cart', 1)}"),
        cart.event(
            0.8, Phase.SKIPPED, "already running the target image", task_definition_arn=arn("cart", 1)
        ),
        *reports.forward(2.0, 1, 2),
    ]
    if finish:
        events += [
            api.event(
                38.0, Phase.SUCCEEDED, "3/3 running api:2", **sd | {"service_deployment_status": "SUCCESSFUL"}
            ),
            fraud.event(
                39.0,
                Phase.ROLLED_BACK,
                "ECS rolled back to fraud-scorer:1: alarm fraud-5xx went off",
                **sd | {"service_deployment_status": "ROLLBACK_SUCCESSFUL"},
                strategy="LINEAR",
                traffic_percent=0.0,
            ),
            web.event(
                40.5,
                Phase.BAKING,
                "production traffic is on web:2; ECS is still baking it (3m30s left)",
                **sd,
                strategy="CANARY",
                lifecycle_stage="BAKE_TIME",
                traffic_percent=100.0,
                bake_left_s=210.0,
            ),
            reports.event(41.0, Phase.SUCCEEDED, "2/2 running reports:2", running=2, desired=2),
        ]
    return events


def test_snapshot_ecs_strategies_running(snap_compare: SnapCompare) -> None:
    """A hook holding a deployment reads as waiting for it, and for how long; traffic and bake
    time left show; a `baking` end is a success of its own."""
    app, settle = synthetic_app(strategy_events(finish=False), finish=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_ecs_strategies_finished(snap_compare: SnapCompare) -> None:
    """The summary counts `baking` apart from `succeeded` and says what it leaves open."""
    app, settle = synthetic_app(strategy_events(finish=True), finish=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)
