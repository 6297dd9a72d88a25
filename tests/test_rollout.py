"""Rollout evaluation: deciding what became of our deployment from describe_services alone."""

from __future__ import annotations

from typing import Any

import pytest

from worker.rollout import RolloutState, evaluate_rollout, latest_service_events

OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:1"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/api:2"


def deployment(
    dep_id: str, td: str, status: str, rollout: str | None, running: int = 0, **extra: Any
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": dep_id,
        "taskDefinition": td,
        "status": status,
        "desiredCount": 2,
        "runningCount": running,
        "pendingCount": 2 - running,
        "failedTasks": extra.pop("failed", 0),
        **extra,
    }
    if rollout is not None:
        d["rolloutState"] = rollout
    return d


def service(*deployments: dict[str, Any], status: str = "ACTIVE", events: int = 0) -> dict[str, Any]:
    return {
        "status": status,
        "deployments": list(deployments),
        "events": [
            {"createdAt": f"2026-01-01T00:00:{i:02d}", "message": f"event {i}"} for i in range(events)
        ],
    }


@pytest.mark.parametrize(
    ("svc", "expected"),
    [
        pytest.param(
            service(
                deployment("ours", NEW, "PRIMARY", "IN_PROGRESS", 1),
                deployment("old", OLD, "ACTIVE", "COMPLETED", 2),
            ),
            RolloutState.IN_PROGRESS,
            id="in-progress",
        ),
        pytest.param(
            service(deployment("ours", NEW, "PRIMARY", "COMPLETED", 2)),
            RolloutState.COMPLETED,
            id="completed",
        ),
        pytest.param(
            service(deployment("ours", NEW, "PRIMARY", "FAILED", 0, rolloutStateReason="circuit breaker")),
            RolloutState.FAILED,
            id="failed-still-primary",
        ),
        pytest.param(
            service(
                deployment("rb", OLD, "PRIMARY", "IN_PROGRESS", 1),
                deployment("ours", NEW, "ACTIVE", "FAILED"),
            ),
            RolloutState.ROLLED_BACK,
            id="circuit-breaker-rollback",
        ),
        pytest.param(
            service(deployment("rb", OLD, "PRIMARY", "COMPLETED", 2)),
            RolloutState.ROLLED_BACK,
            id="ours-gone",
        ),
        pytest.param(
            service(
                deployment("other", "arn:x:task-definition/api:3", "PRIMARY", "IN_PROGRESS"),
                deployment("ours", NEW, "ACTIVE", "IN_PROGRESS"),
            ),
            RolloutState.SUPERSEDED,
            id="superseded",
        ),
        pytest.param(
            service(deployment("ours", NEW, "PRIMARY", "IN_PROGRESS"), status="DRAINING"),
            RolloutState.INACTIVE,
            id="service-draining",
        ),
        pytest.param(
            service(deployment("ours", NEW, "PRIMARY", None, 2)),
            RolloutState.COMPLETED,
            id="no-rollout-state-alone",
        ),
        pytest.param(
            service(deployment("ours", NEW, "PRIMARY", None, 1), deployment("old", OLD, "ACTIVE", None, 1)),
            RolloutState.IN_PROGRESS,
            id="no-rollout-state-with-old",
        ),
        pytest.param(
            service(deployment("forced", NEW, "PRIMARY", "COMPLETED", 2)),
            RolloutState.COMPLETED,
            id="ours-gone-but-same-revision-completed",
        ),
    ],
)
def test_evaluate_rollout_states(svc: dict[str, Any], expected: RolloutState) -> None:
    assert evaluate_rollout(svc, "ours", NEW).state is expected


def test_in_progress_carries_counts() -> None:
    svc = service(
        deployment("ours", NEW, "PRIMARY", "IN_PROGRESS", 1, failed=3),
        deployment("old", OLD, "ACTIVE", "COMPLETED", 2),
    )
    rollout = evaluate_rollout(svc, "ours", NEW)
    assert (rollout.running, rollout.desired, rollout.pending, rollout.failed_tasks) == (1, 2, 1, 3)
    assert not rollout.terminal


def test_rolled_back_names_the_running_revision_and_reason() -> None:
    svc = service(
        deployment("rb", OLD, "PRIMARY", "IN_PROGRESS"),
        deployment("ours", NEW, "ACTIVE", "FAILED", rolloutStateReason="tasks failed to start"),
        events=2,
    )
    rollout = evaluate_rollout(svc, "ours", NEW)
    assert rollout.primary_task_definition == OLD
    assert rollout.reason == "tasks failed to start"
    assert rollout.service_events == ("event 1", "event 0")


@pytest.mark.parametrize(
    ("count", "limit", "expected"),
    [(0, 3, ()), (2, 3, ("event 1", "event 0")), (5, 2, ("event 4", "event 3"))],
)
def test_latest_service_events_newest_first(count: int, limit: int, expected: tuple[str, ...]) -> None:
    assert latest_service_events(service(events=count), limit) == expected
