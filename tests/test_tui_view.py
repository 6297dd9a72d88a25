"""The live view's pure parts: what a pane remembers and shows, and how changes coalesce."""

from __future__ import annotations

from typing import Any

import pytest
from textual.message import Message

from orchestrator.plan import PlannedJob
from orchestrator.state import RunState
from tui.renderer import TuiRenderer
from tui.view import JobView, elapsed_text, event_lines, phase_group, phase_icon, revision_name, short_arns
from worker.contract import ContainerChange, DeployJob, EventDetails, Phase, WorkerEvent
from worker.target import Target

RUN_ID = "view-run"
ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition/api"


def state(*services: str) -> RunState:
    planned = [
        PlannedJob(
            job=DeployJob(
                run_id=RUN_ID,
                job_id=f"{RUN_ID}:{s}",
                target=Target(cluster="c", service=s),
                changes=(ContainerChange(container="app", image=f"r/{s}:2"),),
            ),
        )
        for s in services
    ]
    return RunState.from_plan(RUN_ID, planned)


def event(seq: int, phase: Phase, message: str = "", at: float = 0.0, **details: Any) -> WorkerEvent:
    return WorkerEvent(
        run_id=RUN_ID,
        job_id=f"{RUN_ID}:api",
        seq=seq,
        ts=1000.0 + at,
        phase=phase,
        message=message,
        details=EventDetails(**details),
    )


def test_a_pane_keeps_the_revision_change_and_counts_through_a_rollback() -> None:
    run = state("api")
    job = run.jobs[f"{RUN_ID}:api"]
    view = JobView()
    forward = {"task_definition_arn": f"{ARN}:2", "previous_task_definition_arn": f"{ARN}:1"}
    events = [
        event(1, Phase.STARTED, f"c/api runs {ARN}:1"),
        event(2, Phase.REGISTERED, "registered api:2", 0.5, **forward),
        event(3, Phase.IN_PROGRESS, "1/4 running", 2.0, running=1, desired=4, failed_tasks=2, **forward),
        event(4, Phase.ROLLING_BACK, f"rolling back to {ARN}:1", 9.0, task_definition_arn=f"{ARN}:1"),
    ]
    for e in events[:3]:
        run.apply(e)
    view.absorb(job)
    assert view.revision_text(job.phase) == "api:1 → api:2"
    assert view.counts_text() == "1/4 running" and view.failed_tasks == 2
    assert view.progress(job.phase) == 0.25
    run.apply(events[3])  # a rollback event names no "previous" and carries no counts
    view.absorb(job)
    assert view.revision_text(job.phase) == "api:1 ← api:2"
    assert view.counts_text() == "1/4 running"
    assert event_lines(job, 2) == [("+0:02", "1/4 running"), ("+0:09", "rolling back to api:1")]


def test_a_skipped_job_shows_its_unchanged_revision_and_a_full_bar() -> None:
    run = state("api")
    job = run.jobs[f"{RUN_ID}:api"]
    run.apply(event(1, Phase.SKIPPED, "already running the target image", task_definition_arn=f"{ARN}:7"))
    view = JobView()
    view.absorb(job)
    assert view.revision_text(job.phase) == "api:7 (unchanged)"
    assert view.progress(job.phase) == 1.0


def test_a_lost_job_shows_the_orchestrators_verdict() -> None:
    run = state("api")
    job = run.jobs[f"{RUN_ID}:api"]
    run.apply(event(1, Phase.STARTED, "c/api runs api:1"))
    run.mark_lost(job.job_id, 1100.0)
    assert event_lines(job, 2)[-1] == ("", job.message)
    assert phase_group(job.phase) == "failed"


def test_small_formatters() -> None:
    assert elapsed_text(None) == "—"
    assert elapsed_text(7.9) == "0:07"
    assert elapsed_text(754) == "12:34"
    assert elapsed_text(3723) == "1:02:03"
    assert revision_name(f"{ARN}:3") == "api:3"
    assert short_arns(f"ECS rolled back to {ARN}:1: tasks failed") == "ECS rolled back to api:1: tasks failed"
    assert [phase_group(p) for p in (Phase.QUEUED, Phase.UPDATED, Phase.SKIPPED, Phase.TIMED_OUT)] == [
        "queued",
        "active",
        "ok",
        "failed",
    ]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def post_message(self, message: Message) -> bool:
        self.messages.append(message)
        return True


def test_the_renderer_coalesces_a_burst_into_one_wake_up() -> None:
    run = state("a", "b", "c")
    inbox = Inbox()
    renderer = TuiRenderer(inbox)
    jobs = list(run.jobs.values())
    for n in range(1000):
        renderer.changed(jobs[n % 2 + (n > 500)], None)
    assert [type(m) for m in inbox.messages] == [TuiRenderer.JobsChanged]
    assert renderer.take_dirty() == [jobs[0].job_id, jobs[1].job_id, jobs[2].job_id]
    assert renderer.take_dirty() == []
    renderer.changed(jobs[2], None)  # after a drain, the next change wakes the app again
    assert [type(m) for m in inbox.messages] == [TuiRenderer.JobsChanged] * 2


HOOK = "arn:aws:lambda:us-east-1:123456789012:function:check-traffic"
SERVICE_DEPLOYMENT = {"following": "service_deployment", "strategy": "BLUE_GREEN"}


@pytest.mark.parametrize(
    ("events", "now", "shown"),
    [
        pytest.param(
            [
                event(
                    1,
                    Phase.IN_PROGRESS,
                    "",
                    5.0,
                    **SERVICE_DEPLOYMENT,
                    service_deployment_status="IN_PROGRESS",
                ),
                event(
                    2,
                    Phase.IN_PROGRESS,
                    "",
                    9.0,
                    lifecycle_stage="POST_TEST_TRAFFIC_SHIFT",
                    hook=HOOK,
                    hook_since=1000.0 + 8.0,
                    traffic_percent=0.0,
                ),
            ],
            1000.0 + 200.0,
            "waiting for hook check-traffic for 3m12s · POST_TEST_TRAFFIC_SHIFT · traffic 0% · "
            "BLUE_GREEN IN_PROGRESS",
            id="a-hook-holds-it-and-the-strategy-and-status-stay-known",
        ),
        pytest.param(
            [
                event(
                    1,
                    Phase.IN_PROGRESS,
                    "",
                    5.0,
                    **SERVICE_DEPLOYMENT,
                    service_deployment_status="IN_PROGRESS",
                    lifecycle_stage="POST_TEST_TRAFFIC_SHIFT",
                    hook=HOOK,
                    hook_since=1000.0,
                ),
                event(
                    2,
                    Phase.IN_PROGRESS,
                    "",
                    60.0,
                    lifecycle_stage="BAKE_TIME",
                    traffic_percent=100.0,
                    bake_left_s=300.0,
                ),
                event(3, Phase.IN_PROGRESS, "still following", 70.0),  # says nothing of the deployment
            ],
            1000.0 + 72.0,
            "BAKE_TIME · traffic 100% · bake 4m48s left · BLUE_GREEN IN_PROGRESS",
            id="the-hook-let-go-and-the-bake-counts-down",
        ),
        pytest.param(
            [
                event(
                    1,
                    Phase.IN_PROGRESS,
                    "",
                    5.0,
                    **SERVICE_DEPLOYMENT,
                    service_deployment_status="IN_PROGRESS",
                    traffic_percent=100.0,
                ),
                event(
                    2,
                    Phase.ROLLING_BACK,
                    "",
                    9.0,
                    service_deployment_status="ROLLBACK_IN_PROGRESS",
                    traffic_percent=0.0,
                ),
            ],
            1000.0 + 10.0,
            "traffic 0% · BLUE_GREEN ROLLBACK_IN_PROGRESS",
            id="rolling-back",
        ),
        pytest.param(
            [
                event(1, Phase.IN_PROGRESS, "", 5.0, **SERVICE_DEPLOYMENT, traffic_percent=0.0, hook=HOOK),
                event(2, Phase.SUCCEEDED, "", 9.0, service_deployment_status="SUCCESSFUL"),
            ],
            1000.0 + 10.0,
            "BLUE_GREEN SUCCESSFUL",
            id="an-end-forgets-the-stage-its-traffic-and-the-hook",
        ),
        pytest.param(
            [event(1, Phase.IN_PROGRESS, "1/2 running", 5.0, following="rollout_state", strategy="ROLLING")],
            1000.0 + 10.0,
            "",
            id="the-rollout-state-fallback-shows-nothing-more",
        ),
    ],
)
def test_a_pane_folds_where_the_service_deployment_stands(
    events: list[WorkerEvent], now: float, shown: str
) -> None:
    run = state("api")
    job = run.jobs[f"{RUN_ID}:api"]
    view = JobView()
    for each in events:
        run.apply(each)
        view.absorb(job)  # one event at a time ...
    coalesced = JobView()
    coalesced.absorb(job)  # ... or all at once: the same
    assert view.deployment_text(now) == coalesced.deployment_text(now) == shown


def test_baking_is_a_success_with_an_icon_of_its_own() -> None:
    run = state("api")
    job = run.jobs[f"{RUN_ID}:api"]
    run.apply(event(1, Phase.BAKING, "production traffic on api:2; ECS is still baking"))
    view = JobView()
    view.absorb(job)
    assert (phase_group(job.phase), phase_icon(job.phase), view.progress(job.phase)) == ("ok", "◐", 1.0)
    assert phase_icon(Phase.SUCCEEDED) != phase_icon(Phase.BAKING)
