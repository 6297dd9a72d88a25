"""Rollout evaluation: what has become of *our* deployment? Pure.

We never use the `services_stable` waiter: it reports success after a circuit-breaker
rollback, because the service is stable again, on the old revision. Instead we follow the
deployment id that `update_service` returned and decide from `describe_services` alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "InFlight",
    "Progress",
    "Rollout",
    "RolloutState",
    "completed_as_said",
    "evaluate_rollout",
    "in_flight",
    "latest_service_events",
    "primary_flight",
]

SERVICE_EVENTS_SHOWN = 3


class RolloutState(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"  # our deployment FAILED and is still the primary one
    ROLLED_BACK = "rolled_back"  # ECS (circuit breaker) put another revision back as primary
    SUPERSEDED = "superseded"  # someone else's deployment replaced ours
    INACTIVE = "inactive"  # the service is DRAINING / INACTIVE / gone
    # Production traffic is all on ours and the job was told to stop there (`done_when`);
    # ECS goes on baking. Only ever from a service deployment (`worker.strategy`).
    TRAFFIC_SHIFTED = "traffic_shifted"


@dataclass(frozen=True)
class Progress:
    """What ECS's service deployment says beyond task counts (`worker.strategy`)."""

    service_deployment_arn: str
    status: str  # ECS's: IN_PROGRESS, ROLLBACK_IN_PROGRESS, SUCCESSFUL...
    strategy: str
    stage: str | None = None
    traffic_percent: float | None = None
    bake_left_s: float | None = None
    hook: str | None = None  # the hook the current stage waits for
    hook_since: float | None = None


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
    gone: bool = False  # our deployment is no longer listed: ECS dropped it, someone replaced it
    primary_deployment_id: str | None = None
    primary_rollout_state: str | None = None  # the PRIMARY deployment's (ours or another)
    progress: Progress | None = None  # set when followed through ECS's service deployment

    @property
    def terminal(self) -> bool:
        return self.state is not RolloutState.IN_PROGRESS


def completed_as_said(seen: Rollout) -> Rollout:
    """The rollout last `seen`, ended as ECS's SERVICE_DEPLOYMENT_COMPLETED event says it ended:
    steady (every desired task of it running), its traffic all on it, nothing left to bake."""
    progress = seen.progress
    if progress is not None:
        traffic = None if progress.traffic_percent is None else 100.0
        progress = replace(
            progress,
            status="SUCCESSFUL",
            traffic_percent=traffic,
            bake_left_s=None,
            hook=None,
            hook_since=None,
        )
    return replace(seen, state=RolloutState.COMPLETED, running=seen.desired, pending=0, progress=progress)


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
    about_primary: dict[str, Any] = {
        "primary_task_definition": primary_td,
        "primary_deployment_id": str(primary["id"]) if primary else None,
        "primary_rollout_state": primary.get("rolloutState") if primary else None,
        "service_events": events,
    }
    ours = next((d for d in deployments if d.get("id") == deployment_id), None)

    if ours is None:
        # Gone from the list. ECS only drops a deployment that has been replaced: if the
        # primary still runs our revision (someone forced a new deployment of it), follow that.
        if primary is not None and primary_td == task_definition_arn:
            return evaluate_rollout(service, str(primary["id"]), task_definition_arn)
        return Rollout(
            RolloutState.ROLLED_BACK,
            reason=f"deployment {deployment_id} is gone; the service runs {primary_td}",
            gone=True,
            **about_primary,
        )

    counts: dict[str, Any] = {
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
    return Rollout(state, **counts, reason=reason, **about_primary)


@dataclass(frozen=True)
class InFlight:
    """A deployment ECS is still rolling out: its id, its revision, the revision it replaces."""

    deployment_id: str
    task_definition: str
    replacing: str | None


def in_flight(service: Mapping[str, Any]) -> InFlight | None:
    """The service's PRIMARY deployment while ECS is still rolling it out; None when settled.

    A service "already running" an image may not run it yet: its PRIMARY deployment of that
    revision can be IN_PROGRESS (and may yet fail and be rolled back). Without `rolloutState`
    (older accounts), a primary that is not alone or not fully running is still in flight.
    """
    deployments: Sequence[Mapping[str, Any]] = service.get("deployments") or ()
    primary = _primary(deployments)
    if primary is None:
        return None
    state = primary.get("rolloutState")
    short = int(primary.get("runningCount", 0)) < int(primary.get("desiredCount", 0))
    rolling = state == "IN_PROGRESS" or (state is None and (len(deployments) > 1 or short))
    return primary_flight(service) if rolling else None


def primary_flight(service: Mapping[str, Any]) -> InFlight | None:
    """The service's PRIMARY deployment and the revision it replaces, however far it got."""
    deployments: Sequence[Mapping[str, Any]] = service.get("deployments") or ()
    primary = _primary(deployments)
    if primary is None:
        return None
    replacing = next((d for d in deployments if d.get("status") == "ACTIVE"), None)
    return InFlight(
        deployment_id=str(primary["id"]),
        task_definition=str(primary["taskDefinition"]),
        replacing=str(replacing["taskDefinition"]) if replacing else None,
    )
