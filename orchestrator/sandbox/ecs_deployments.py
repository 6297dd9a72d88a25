"""DescribeServices' side of a simulated service: its deployments, their counts, its events.

Why apart from the simulator: moto hands out `service.deployments` (plain dicts) and
`service.events` as they are, so what DescribeServices shows is whatever these functions write
there: a new PRIMARY, `rolloutState` COMPLETED or FAILED, old deployments drained and dropped,
counts ramping over SCALE_UP. The simulator (`simulator`) decides when; these functions say how,
as ECS shows it. Callers hold the lock.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.sandbox.ecs_tasks import ServiceTasks
from orchestrator.sandbox.service_deployments import ServiceDeployment, service_revision

__all__ = [
    "BREAKER_REASON",
    "Plan",
    "ServiceState",
    "add_event",
    "complete_rollout",
    "end_rollback_deployment",
    "mark_failed",
    "new_deployment",
    "rollback_end",
    "settle",
    "sync_counts",
    "utc",
]

BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
_MAX_EVENTS = 100  # describe_services shows the latest 100 events
_SLACK_S = 1e-3  # (t0 + f) - t0 lands a few 1e-7 short of f at epoch-sized t0


@dataclass
class Plan:
    """A deployment's fate, fixed when it starts; `started_at` is when its tasks start coming up
    (SCALE_UP), None until then. `record` is the service deployment that started it or, for a
    rollback deployment, the one it rolls back."""

    started_at: float | None
    rollout_s: float
    failure_s: float
    bad_image: str | None
    breaker: bool
    record: ServiceDeployment | None = None
    is_rollback: bool = False


@dataclass
class ServiceState:
    """What the simulator keeps on a moto Service (so a moto reset drops it with the service)."""

    last_completed: str  # task definition ARN a rollback goes back to
    last_revision: str  # its service revision ARN
    plans: dict[str, Plan] = field(default_factory=dict)
    base_running: dict[str, int] = field(default_factory=dict)  # superseded deployment -> tasks then
    tasks: ServiceTasks = field(default_factory=ServiceTasks)
    records: dict[str, ServiceDeployment] = field(default_factory=dict)  # by ARN, oldest first
    current: ServiceDeployment | None = None  # the newest: the only one that still moves on its own


def utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None)  # moto serialises naive UTC


def add_event(service: Any, at: float, message: str) -> None:
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": utc(at), "message": message})
    del service.events[_MAX_EVENTS:]


def _finish(deployment: dict[str, Any], rollout_state: str, reason: str | None = None) -> None:
    deployment["rolloutState"] = rollout_state
    deployment["rolloutStateReason"] = reason or f"ECS deployment {deployment['id']} {rollout_state.lower()}."


def new_deployment(service: Any, state: ServiceState, td_arn: str, at: float) -> dict[str, Any]:
    """A new PRIMARY deployment of `td_arn`, IN_PROGRESS; the previous one becomes ACTIVE."""
    previous = service.deployments[0] if service.deployments else {}
    dep_id = f"ecs-svc/{random.randrange(10**18, 10**19)}"  # ECS ids are 19 digits
    deployment: dict[str, Any] = {
        "id": dep_id,
        "status": "PRIMARY",
        "taskDefinition": td_arn,
        "desiredCount": service.desired_count,
        "pendingCount": 0,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": utc(at),
        "updatedAt": utc(at),
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
    }
    for key in ("launchType", "platformVersion", "platformFamily", "networkConfiguration"):
        if key in previous:
            deployment[key] = previous[key]
    if service.launch_type:
        deployment["launchType"] = service.launch_type
    for old in service.deployments:
        if old["status"] == "PRIMARY":
            old["status"] = "ACTIVE"
            old["updatedAt"] = utc(at)
        state.base_running.setdefault(old["id"], int(old["runningCount"]))
    service.deployments.insert(0, deployment)
    return deployment


def adopt_primary(service: Any, at: float) -> None:
    """A service met for the first time: one PRIMARY, settled (ECS ran it)."""
    primary = service.deployments[0]
    primary.update(
        id=f"ecs-svc/{random.randrange(10**18, 10**19)}",
        status="PRIMARY",
        taskDefinition=service.task_definition,
        desiredCount=service.desired_count,
        runningCount=service.desired_count,
        pendingCount=0,
        failedTasks=0,
        createdAt=utc(at),
        updatedAt=utc(at),
    )
    _finish(primary, "COMPLETED")
    del service.deployments[1:]
    add_event(service, at, f"(service {service.name}) has reached a steady state.")


def complete_rollout(service: Any, deployment: dict[str, Any], at: float) -> None:
    """All its tasks run and production traffic is on it: `rolloutState` COMPLETED."""
    deployment.update(runningCount=deployment["desiredCount"], pendingCount=0, updatedAt=utc(at))
    _finish(deployment, "COMPLETED")
    add_event(service, at, f"(service {service.name}) (deployment {deployment['id']}) deployment completed.")
    add_event(service, at, f"(service {service.name}) has reached a steady state.")


def settle(service: Any, state: ServiceState, revision: str) -> None:
    """The PRIMARY is the service's for good: the others are drained and dropped."""
    primary = service.deployments[0]
    for gone in service.deployments[1:]:
        gone.update(desiredCount=0, runningCount=0, pendingCount=0)  # what its revision now runs
        state.plans.pop(gone["id"], None)
        state.base_running.pop(gone["id"], None)
    del service.deployments[1:]
    state.last_completed, state.last_revision = primary["taskDefinition"], revision


def rollback_end(primary: dict[str, Any] | None, plan: Plan | None) -> tuple[float, bool] | None:
    """When a rollback deployment in progress completes (True) or its breaker trips (False)."""
    if primary is None or plan is None or not plan.is_rollback or plan.started_at is None:
        return None
    if primary.get("rolloutState") != "IN_PROGRESS":
        return None
    if plan.bad_image is None:
        return plan.started_at + plan.rollout_s, True
    return (plan.started_at + plan.failure_s, False) if plan.breaker else None


def end_rollback_deployment(service: Any, state: ServiceState, plan: Plan, at: float, ok: bool) -> None:
    """The rollback deployment (the PRIMARY) completed or failed: its service deployment says so."""
    primary = service.deployments[0]
    if ok:
        complete_rollout(service, primary, at)
        settle(service, state, service_revision(service, primary).arn)
    else:  # ECS never rolls a rollback back
        mark_failed(service, primary, plan, at, BREAKER_REASON, True)
    if plan.record is not None:
        plan.record.rollback_finished(at, ok)


def ramp(plan: Plan, desired: int, at: float) -> tuple[int, int]:
    """(running, pending) of an IN_PROGRESS deployment at `at`: none before SCALE_UP, then its
    tasks start one after the other over rollout_s (a bad image's never do)."""
    if plan.started_at is None:
        return 0, 0
    if plan.bad_image is not None:
        return 0, desired
    share = (at - plan.started_at) / plan.rollout_s if plan.rollout_s > 0 else 1.0
    running = max(0, min(desired - 1, math.floor(desired * share)))
    return running, desired - running


def failed_tasks(desired: int, plan: Plan, at: float) -> int:
    """ECS's breaker trips at half the desired count (3..200) failed tasks; time spreads them."""
    threshold = max(3, min(200, math.ceil(desired / 2)))
    if plan.started_at is None:
        return 0
    elapsed = max(0.0, at - plan.started_at)
    if plan.failure_s <= 0 or (plan.breaker and elapsed >= plan.failure_s - _SLACK_S):
        return threshold
    return math.floor(threshold * elapsed / plan.failure_s + 1e-6)


def mark_failed(
    service: Any, deployment: dict[str, Any], plan: Plan | None, at: float, reason: str, tasks_failed: bool
) -> None:
    """`rolloutState` FAILED at `at`, its counts frozen as they were then."""
    if plan is not None and deployment.get("rolloutState") == "IN_PROGRESS":
        running, _ = ramp(plan, int(deployment["desiredCount"]), at)
        deployment["runningCount"] = running
        if tasks_failed:
            deployment["failedTasks"] = failed_tasks(int(deployment["desiredCount"]), plan, at)
    deployment.update(pendingCount=0, updatedAt=utc(at))
    _finish(deployment, "FAILED", reason)
    said = "tasks failed to start." if tasks_failed else reason
    add_event(
        service, at, f"(service {service.name}) (deployment {deployment['id']}) deployment failed: {said}"
    )


def sync_counts(backend: Any, service: Any, state: ServiceState, now: float) -> None:
    """Counts of every deployment at `now`, then the service's totals and its tasks."""
    deployments: list[dict[str, Any]] = service.deployments
    if not deployments:
        return
    primary = deployments[0]
    plan = state.plans.get(primary["id"])
    desired = int(primary["desiredCount"])
    running, pending = int(primary["runningCount"]), int(primary["pendingCount"])
    rollout_state = primary.get("rolloutState")
    if rollout_state == "COMPLETED":
        running, pending = desired, 0  # a later desiredCount change scales in place
    elif rollout_state == "IN_PROGRESS" and plan is not None:
        running, pending = ramp(plan, desired, now)
        if plan.bad_image is not None:
            primary["failedTasks"] = failed_tasks(desired, plan, now)
    if (running, pending) != (primary["runningCount"], primary["pendingCount"]):
        primary.update(runningCount=running, pendingCount=pending, updatedAt=utc(now))
    _drain(deployments, state, plan, running)
    total_running = sum(int(d["runningCount"]) for d in deployments)
    total_pending = sum(int(d["pendingCount"]) for d in deployments)
    cluster = backend.clusters.get(service.cluster_name)
    if cluster is not None:
        cluster.running_tasks_count += total_running - service.running_count
        cluster.pending_tasks_count += total_pending - service.pending_count
    service.running_count, service.pending_count = total_running, total_pending
    bad_images = {dep_id: p.bad_image for dep_id, p in state.plans.items() if p.bad_image}
    state.tasks.sync(backend, service, now, bad_images)


def _drain(deployments: list[dict[str, Any]], state: ServiceState, plan: Plan | None, running: int) -> None:
    """Old deployments lose tasks as the new one's come up (minimumHealthyPercent 100), except
    the blue environment of a blue/green, linear or canary deployment, kept until CLEAN_UP."""
    replaced = running
    if plan is not None and plan.record is not None and not plan.is_rollback:
        replaced = plan.record.replaced_tasks(running)
    for old in deployments[1:]:
        base = state.base_running.get(old["id"], int(old["runningCount"]))
        taken = min(base, replaced)
        replaced -= taken
        old.update(runningCount=base - taken, pendingCount=0)
