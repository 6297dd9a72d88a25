"""Rollout evaluation: what has become of *our* deployment? Pure.

We never use the `services_stable` waiter: it reports success after a circuit-breaker
rollback, because the service is stable again, on the old revision. Instead we follow the
deployment id that `update_service` returned and decide from `describe_services` alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Rollout", "RolloutState", "evaluate_rollout", "latest_service_events"]

SERVICE_EVENTS_SHOWN = 3


class RolloutState(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"  # our deployment FAILED and is still the primary one
    ROLLED_BACK = "rolled_back"  # ECS (circuit breaker) put another revision back as primary
    SUPERSEDED = "superseded"  # someone else's deployment replaced ours
    INACTIVE = "inactive"  # the service is DRAINING / INACTIVE / gone


@dataclass(frozen=True)
class Rollout:
    state: RolloutState
    running: int = 0
    desired: int = 0
    pending: int = 0
    failed_tasks: int = 0
    reason: str = ""
    primary_task_definition: str | None = None
    service_events: tuple[str, ...] = field(default=())

    @property
    def terminal(self) -> bool:
        return self.state is not RolloutState.IN_PROGRESS


def latest_service_events(service: Mapping[str, Any], limit: int = SERVICE_EVENTS_SHOWN) -> tuple[str, ...]:
    """The newest service events' messages, newest first (ECS already sorts them so)."""
    events: Sequence[Mapping[str, Any]] = service.get("events") or ()
    ordered = sorted(events, key=lambda e: str(e.get("createdAt", "")), reverse=True)
    return tuple(str(e.get("message", "")) for e in ordered[:limit])


def _primary(deployments: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((d for d in deployments if d.get("status") == "PRIMARY"), None)


def evaluate_rollout(service: Mapping[str, Any], deployment_id: str, task_definition_arn: str) -> Rollout:
    """Decide the state of deployment `deployment_id` (which runs `task_definition_arn`)."""
    events = latest_service_events(service)
    if service.get("status", "ACTIVE") != "ACTIVE":
        return Rollout(
            RolloutState.INACTIVE, reason=f"service is {service.get('status')}", service_events=events
        )
    deployments: Sequence[Mapping[str, Any]] = service.get("deployments") or ()
    primary = _primary(deployments)
    primary_td = str(primary["taskDefinition"]) if primary else None
    ours = next((d for d in deployments if d.get("id") == deployment_id), None)

    if ours is None:
        # Gone from the list. ECS only drops a deployment that has been replaced: if the
        # primary still runs our revision (someone forced a new deployment of it), follow that.
        if primary is not None and primary_td == task_definition_arn:
            return evaluate_rollout(service, str(primary["id"]), task_definition_arn)
        return Rollout(
            RolloutState.ROLLED_BACK,
            reason=f"deployment {deployment_id} is gone; the service runs {primary_td}",
            primary_task_definition=primary_td,
            service_events=events,
        )

    counts = {
        "running": int(ours.get("runningCount", 0)),
        "desired": int(ours.get("desiredCount", 0)),
        "pending": int(ours.get("pendingCount", 0)),
        "failed_tasks": int(ours.get("failedTasks", 0)),
    }
    reason = str(ours.get("rolloutStateReason", ""))
    rollout_state = ours.get("rolloutState")
    is_primary = ours.get("status") == "PRIMARY"

    if rollout_state == "FAILED":
        state = RolloutState.FAILED if is_primary else RolloutState.ROLLED_BACK
    elif not is_primary:
        state = RolloutState.SUPERSEDED
        reason = reason or f"another deployment ({primary_td}) replaced ours"
    elif rollout_state == "COMPLETED" or (
        # Accounts without rolloutState: done when ours is alone and fully running.
        rollout_state is None and len(deployments) == 1 and counts["running"] >= counts["desired"]
    ):
        state = RolloutState.COMPLETED
    else:
        state = RolloutState.IN_PROGRESS
    return Rollout(state, **counts, reason=reason, primary_task_definition=primary_td, service_events=events)
