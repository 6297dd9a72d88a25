"""Folding worker events into the run state: duplicates, late events, silence, results."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.plan import PlannedJob
from orchestrator.state import RunState, exit_code
from worker.contract import ContainerChange, DeployJob, EventDetails, Phase, WorkerEvent
from worker.target import Target

RUN = "run-1"


def planned(service: str, *containers: str) -> PlannedJob:
    job = DeployJob(
        run_id=RUN,
        job_id=f"{RUN}:{service}",
        target=Target(cluster="c", service=service),
        changes=tuple(ContainerChange(container=c, image=f"repo/{c}:2") for c in containers),
    )
    return PlannedJob(job=job)


def event(service: str, seq: int, phase: Phase, ts: float = 100.0, **details: Any) -> WorkerEvent:
    return WorkerEvent(
        run_id=RUN,
        job_id=f"{RUN}:{service}",
        seq=seq,
        ts=ts,
        phase=phase,
        message=phase.value,
        details=EventDetails(**details),
    )


@pytest.fixture
def state() -> RunState:
    return RunState.from_plan(RUN, [planned("api", "app", "envoy"), planned("web", "app")])


def test_new_run_is_all_queued(state: RunState) -> None:
    assert state.counts() == {Phase.QUEUED: 2}
    assert not state.done


def test_events_move_phase_forward_and_record_revision(state: RunState) -> None:
    state.apply(event("api", 1, Phase.STARTED))
    state.apply(event("api", 2, Phase.REGISTERED, task_definition_arn="td:2"))
    job = state.apply(event("api", 3, Phase.UPDATED, deployment_id="ecs-svc/1", task_definition_arn="td:2"))
    assert job is not None
    assert (job.phase, job.deployment_id, job.task_definition_arn) == (Phase.UPDATED, "ecs-svc/1", "td:2")


@pytest.mark.parametrize("replayed_seq", [1, 2])
def test_replayed_or_duplicate_events_change_nothing(state: RunState, replayed_seq: int) -> None:
    state.apply(event("api", 1, Phase.STARTED))
    state.apply(event("api", 2, Phase.IN_PROGRESS))
    assert state.apply(event("api", replayed_seq, Phase.STARTED)) is None
    assert state.jobs[f"{RUN}:api"].phase is Phase.IN_PROGRESS


def test_terminal_phase_is_final(state: RunState) -> None:
    state.apply(event("api", 5, Phase.SUCCEEDED))
    assert state.apply(event("api", 6, Phase.FAILED)) is None
    assert state.jobs[f"{RUN}:api"].phase is Phase.SUCCEEDED


def test_workers_verdict_beats_lost(state: RunState) -> None:
    state.mark_started(f"{RUN}:api", now=0.0)
    [silent] = state.silent_jobs(now=100.0, window_s=30.0)
    state.mark_lost(silent.job_id, now=100.0)
    assert state.jobs[f"{RUN}:api"].phase is Phase.LOST
    assert state.apply(event("api", 9, Phase.IN_PROGRESS)) is None  # lost stays lost for progress
    state.apply(event("api", 10, Phase.ROLLED_BACK))
    assert state.jobs[f"{RUN}:api"].phase is Phase.ROLLED_BACK


def test_duplicate_delivery_is_logged_not_a_state_change(state: RunState) -> None:
    state.apply(event("api", 3, Phase.IN_PROGRESS))
    job = state.apply(event("api", 0, Phase.DUPLICATE))
    assert job is not None and job.phase is Phase.IN_PROGRESS
    assert job.recent[-1].phase is Phase.DUPLICATE


@pytest.mark.parametrize(
    ("started", "last_event", "now", "expected"),
    [
        (None, None, 1000.0, []),  # queued behind the concurrency limit: not silent
        (0.0, None, 10.0, []),
        (0.0, None, 31.0, ["api"]),
        (0.0, 25.0, 31.0, []),  # spoke recently
        (0.0, 25.0, 56.0, ["api"]),
    ],
)
def test_silence_is_measured_from_start_or_last_event(
    state: RunState, started: float | None, last_event: float | None, now: float, expected: list[str]
) -> None:
    if started is not None:
        state.mark_started(f"{RUN}:api", started)
    if last_event is not None:
        state.apply(event("api", 1, Phase.STARTED), received_at=last_event)
    assert [j.target.service for j in state.silent_jobs(now, window_s=30.0)] == expected


def test_next_silence_deadline_is_the_quietest_job(state: RunState) -> None:
    assert state.next_silence_deadline(30.0) is None
    state.mark_started(f"{RUN}:api", 10.0)
    state.mark_started(f"{RUN}:web", 5.0)
    assert state.next_silence_deadline(30.0) == 35.0


def test_results_one_per_container_and_exit_code(state: RunState) -> None:
    state.apply(event("api", 1, Phase.SUCCEEDED, task_definition_arn="api:2"))
    state.apply(event("web", 1, Phase.SKIPPED, task_definition_arn="web:1"))
    results = state.results()
    assert [(r.service, r.container, r.status, r.task_definition_arn) for r in results] == [
        ("api", "app", Phase.SUCCEEDED, "api:2"),
        ("api", "envoy", Phase.SUCCEEDED, "api:2"),
        ("web", "app", Phase.SKIPPED, "web:1"),
    ]
    assert state.done and exit_code(state) == 0


def test_results_report_the_images_the_worker_registered(state: RunState) -> None:
    """The summary's image is what ECS registered (e.g. pinned to a digest), not the plan's copy;
    a container of a job that registered nothing has no image, only the planned one."""
    pinned = "repo/app@sha256:" + "a" * 64
    images = (ContainerChange(container="app", image=pinned), ContainerChange(container="envoy", image="e:9"))
    state.apply(event("api", 1, Phase.REGISTERED, task_definition_arn="api:2", images=images))
    state.apply(event("api", 2, Phase.SUCCEEDED, task_definition_arn="api:2"))
    state.apply(event("web", 1, Phase.FAILED))
    by_line = {(r.service, r.container): (r.image, r.planned_image) for r in state.results()}
    assert by_line == {
        ("api", "app"): (pinned, "repo/app:2"),
        ("api", "envoy"): ("e:9", "repo/envoy:2"),
        ("web", "app"): (None, "repo/app:2"),
    }


def test_a_revert_reports_its_revision_in_its_own_field() -> None:
    revert = DeployJob(
        run_id=RUN,
        job_id=f"{RUN}:api",
        target=Target(cluster="c", service="api", region="eu-west-1", account="123456789012"),
        revision="arn:aws:ecs:eu-west-1:123456789012:task-definition/api:3",
    )
    state = RunState.from_plan(RUN, [PlannedJob(job=revert)])
    state.apply(event("api", 1, Phase.SUCCEEDED))
    [result] = state.results()
    assert (result.container, result.image, result.revision) == (None, None, "api:3")
    assert (result.account, result.region) == ("123456789012", "eu-west-1")
    assert state.jobs[f"{RUN}:api"].image_lines() == [("revision", "api:3")]


@pytest.mark.parametrize("bad", [Phase.FAILED, Phase.ROLLED_BACK, Phase.TIMED_OUT, Phase.LOST])
def test_any_other_end_state_exits_1(state: RunState, bad: Phase) -> None:
    state.apply(event("api", 1, Phase.SUCCEEDED))
    state.apply(event("web", 1, bad))
    assert exit_code(state) == 1


def test_still_rolling_lists_updated_unfinished_jobs(state: RunState) -> None:
    state.apply(event("api", 1, Phase.UPDATED, deployment_id="ecs-svc/9"))
    state.apply(event("web", 1, Phase.STARTED))
    assert [j.target.service for j in state.still_rolling()] == ["api"]


@pytest.mark.parametrize("ok", [Phase.SUCCEEDED, Phase.BAKING, Phase.SKIPPED])
def test_every_success_exits_0_and_the_summary_keeps_its_word(state: RunState, ok: Phase) -> None:
    """`baking` (traffic shifted, ECS still baking) is a success for the exit code, so for
    `--all-or-nothing` too, yet the summary says `baking`, not `succeeded`."""
    state.apply(event("api", 1, Phase.SUCCEEDED))
    state.apply(event("web", 1, ok))
    assert state.done and exit_code(state) == 0
    assert [r.status for r in state.results()] == [Phase.SUCCEEDED, Phase.SUCCEEDED, ok]
