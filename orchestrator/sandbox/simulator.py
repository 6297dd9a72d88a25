"""Make moto's ECS roll deployments forward, fail and roll back the way ECS does.

Why: moto 5.2.5 records `update_service(taskDefinition=...)` but starts no deployment:
deployments[0] keeps the old revision, IN_PROGRESS, for ever. The tests, the `--sandbox` mode
and the benchmarks all follow deployments, so they need an ECS that rolls out on schedule.

How: `moto_hooks` calls the simulator that claims a backend whenever a service is created,
updated, deleted or read. Each deployment's fate is fixed when it starts (healthy or bad image,
circuit breaker settings) and its state at any instant is computed from that schedule when a
read is served, so a reader never waits for a ticker and every timestamp is the scheduled one.
The state lives on moto's Service objects, so a moto reset drops it with them.
"""

from __future__ import annotations

import fnmatch
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.ecs.exceptions import InvalidParameterException

from orchestrator.sandbox import moto_hooks
from orchestrator.sandbox.ecs_tasks import ServiceTasks
from orchestrator.sandbox.moto_hooks import LOCK, deployment_configuration
from orchestrator.sandbox.one_off_tasks import OneOffTasks

__all__ = ["RolloutScenario", "RolloutSimulator"]

_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
_MAX_EVENTS = 100  # describe_services shows the latest 100 events
_STATE_ATTR = "_ecs_fanout_rollout"


@dataclass(frozen=True)
class RolloutScenario:
    """How simulated rollouts behave: how long they take and which images never start."""

    rollout_s: float = 3.0  # until a healthy rollout COMPLETES
    failure_s: float | None = None  # until a bad image's rollout FAILS; None = rollout_s
    bad_images: tuple[str, ...] = ()  # fnmatch patterns against the new revision's images
    task_s: float = 1.5  # a one-off task (RunTask) runs this long, then stops
    failing_tasks: tuple[str, ...] = ()  # fnmatch patterns: a one-off task's command or image exits 1

    def __post_init__(self) -> None:
        if self.rollout_s < 0 or (self.failure_s is not None and self.failure_s < 0):
            raise ValueError("rollout_s and failure_s must not be negative")

    @property
    def effective_failure_s(self) -> float:
        return self.rollout_s if self.failure_s is None else self.failure_s

    def bad_image(self, images: Iterable[str]) -> str | None:
        """The first image that matches a bad pattern, if any."""
        for image in images:
            if any(fnmatch.fnmatchcase(image, pattern) for pattern in self.bad_images):
                return image
        return None


@dataclass
class _Plan:
    """A deployment's fate, fixed when it starts."""

    started_at: float
    rollout_s: float
    failure_s: float
    bad_image: str | None
    breaker: bool
    rollback: bool
    is_rollback: bool = False


@dataclass
class _ServiceState:
    last_completed: str  # task definition ARN the circuit breaker rolls back to
    plans: dict[str, _Plan] = field(default_factory=dict)
    base_running: dict[str, int] = field(default_factory=dict)  # superseded deployment -> tasks then
    tasks: ServiceTasks = field(default_factory=ServiceTasks)


class RolloutSimulator(OneOffTasks):
    """Drives moto's ECS deployments (and one-off tasks: `one_off_tasks`) for the backends of one
    account/region (None = any).

    `install()` claims the backends (the last simulator installed for a key wins);
    `uninstall()` gives them back to plain moto. Several simulators may serve different
    regions or accounts of the same in-process moto.
    """

    def __init__(
        self,
        scenario: RolloutScenario | None = None,
        *,
        account_id: str | None = None,
        region: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._scenario = scenario or RolloutScenario()
        self.key = (account_id, region)
        self._clock = clock

    @property
    def scenario(self) -> RolloutScenario:
        return self._scenario

    @scenario.setter
    def scenario(self, scenario: RolloutScenario) -> None:
        with LOCK:  # applies to deployments that start from now on
            self._scenario = scenario

    @property
    def installed(self) -> bool:
        return moto_hooks.holder(self.key) is self

    def install(self) -> None:
        moto_hooks.claim(self.key, self)

    def uninstall(self) -> None:
        moto_hooks.release(self.key, self)

    def __enter__(self) -> RolloutSimulator:
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def advance(self) -> None:
        """Bring every service of the claimed backends up to now (reads do this lazily anyway)."""
        with LOCK:
            for backend in moto_hooks.ecs_backends():
                if moto_hooks.driver_for(backend) is self:
                    for service in list(backend.services.values()):
                        self.on_read(backend, service)

    # --- moto_hooks.Driver: called under LOCK ---------------------------------------------

    def on_create(self, backend: Any, service: Any) -> None:
        self._adopt(backend, service)

    def on_delete(self, backend: Any, service: Any) -> None:
        state: _ServiceState | None = getattr(service, _STATE_ATTR, None)
        if state is not None:
            state.tasks.stop_all(backend, self._clock(), "Service deleted")

    def _adopt(self, backend: Any, service: Any) -> _ServiceState | None:
        """The service's state; a service met for the first time counts as settled (ECS ran it)."""
        state: _ServiceState | None = getattr(service, _STATE_ATTR, None)
        if state is not None:
            return state
        controller = (service.deployment_controller or {}).get("type", "ECS")
        if controller != "ECS" or not service.deployments or not service.task_definition:
            return None
        service.task_definition = backend.describe_task_definition(service.task_definition).arn
        if not hasattr(service, "deployment_configuration"):
            service.deployment_configuration = deployment_configuration(None)
        now = self._clock()
        primary = service.deployments[0]
        primary.update(
            id=_deployment_id(),
            status="PRIMARY",
            taskDefinition=service.task_definition,
            desiredCount=service.desired_count,
            runningCount=service.desired_count,
            pendingCount=0,
            failedTasks=0,
            createdAt=_utc(now),
            updatedAt=_utc(now),
        )
        _finish(primary, "COMPLETED")
        del service.deployments[1:]
        state = _ServiceState(last_completed=service.task_definition)
        setattr(service, _STATE_ATTR, state)
        _event(service, now, f"(service {service.name}) has reached a steady state.")
        self._sync(backend, service, state, now)
        return state

    def on_update(self, backend: Any, original: Callable[..., Any], props: dict[str, Any]) -> Any:
        cluster_str = props.get("cluster") or "default"
        service = backend._get_service(cluster_str, str(props.get("service", "")).split("/")[-1])
        state = self._adopt(backend, service)
        if state is None:
            controller = (service.deployment_controller or {}).get("type")
            if props.get("task_definition") and controller == "CODE_DEPLOY":
                raise InvalidParameterException(
                    "Unable to update task definition on services with a CODE_DEPLOY deployment "
                    "controller. Use AWS CodeDeploy to trigger a new deployment."
                )
            return original(backend, props)
        self.on_read(backend, service)
        now = self._clock()
        force = bool(props.pop("force_new_deployment", False))  # moto would only rename deployments[0]
        desired = props.get("desired_count")
        cluster = backend._get_cluster(cluster_str)
        saved = (
            cluster.running_tasks_count,
            cluster.pending_tasks_count,
            service.running_count,
            service.pending_count,
        )
        previous_td = service.task_definition
        try:
            result = original(backend, props)
        finally:
            # moto rewrites the counts as if the service were instantly at desiredCount: ours rule
            (cluster.running_tasks_count, cluster.pending_tasks_count) = saved[:2]
            (service.running_count, service.pending_count) = saved[2:]
        # moto stores taskDefinition as given ("family", "family:3"); ECS answers with the ARN
        service.task_definition = backend.describe_task_definition(service.task_definition).arn
        service.deployment_configuration = deployment_configuration(service.deployment_configuration)
        if service.task_definition != previous_td or force:
            self._start(backend, service, state, service.task_definition, now)
        elif desired is not None:  # a scaling, not a deployment: the primary scales in place
            service.deployments[0]["desiredCount"] = service.desired_count
        self.on_read(backend, service)
        return result

    def on_read(self, backend: Any, service: Any) -> None:
        state = self._adopt(backend, service)
        if state is None or service.status != "ACTIVE":
            return
        now = self._clock()
        # apply every scheduled transition that is due, oldest first (a failure may start a
        # rollback that is itself already due to complete)
        while service.deployments:
            primary = service.deployments[0]
            plan = state.plans.get(primary["id"])
            if plan is None or primary.get("rolloutState") != "IN_PROGRESS":
                break
            if plan.bad_image is None and now >= plan.started_at + plan.rollout_s:
                self._complete(service, state, primary, plan.started_at + plan.rollout_s)
            elif plan.bad_image is not None and plan.breaker and now >= plan.started_at + plan.failure_s:
                self._fail(backend, service, state, primary, plan, plan.started_at + plan.failure_s)
            else:
                break
        self._sync(backend, service, state, now)

    # --- the state machine ---------------------------------------------------------------

    def _start(
        self,
        backend: Any,
        service: Any,
        state: _ServiceState,
        td_arn: str,
        at: float,
        is_rollback: bool = False,
    ) -> None:
        scenario = self._scenario
        td = backend.describe_task_definition(td_arn)
        images = [str(cd.get("image", "")) for cd in td.container_definitions]
        breaker = (service.deployment_configuration or {}).get("deploymentCircuitBreaker") or {}
        previous = service.deployments[0] if service.deployments else {}
        dep_id = _deployment_id()
        deployment: dict[str, Any] = {
            "id": dep_id,
            "status": "PRIMARY",
            "taskDefinition": td_arn,
            "desiredCount": service.desired_count,
            "pendingCount": service.desired_count,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": _utc(at),
            "updatedAt": _utc(at),
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
                old["updatedAt"] = _utc(at)
            state.base_running.setdefault(old["id"], int(old["runningCount"]))
        service.deployments.insert(0, deployment)
        state.plans[dep_id] = _Plan(
            started_at=at,
            rollout_s=scenario.rollout_s,
            failure_s=scenario.effective_failure_s,
            bad_image=scenario.bad_image(images),
            breaker=bool(breaker.get("enable")),
            rollback=bool(breaker.get("rollback")) and not is_rollback,  # ECS never rolls a rollback back
            is_rollback=is_rollback,
        )

    def _complete(self, service: Any, state: _ServiceState, primary: dict[str, Any], at: float) -> None:
        primary.update(runningCount=primary["desiredCount"], pendingCount=0, updatedAt=_utc(at))
        _finish(primary, "COMPLETED")
        for gone in service.deployments[1:]:
            state.plans.pop(gone["id"], None)
            state.base_running.pop(gone["id"], None)
        del service.deployments[1:]
        state.last_completed = primary["taskDefinition"]
        _event(service, at, f"(service {service.name}) (deployment {primary['id']}) deployment completed.")
        _event(service, at, f"(service {service.name}) has reached a steady state.")

    def _fail(
        self,
        backend: Any,
        service: Any,
        state: _ServiceState,
        primary: dict[str, Any],
        plan: _Plan,
        at: float,
    ) -> None:
        primary.update(
            failedTasks=_failed_tasks(primary["desiredCount"], plan, at),
            pendingCount=0,
            updatedAt=_utc(at),
        )
        _finish(primary, "FAILED", _BREAKER_REASON)
        _event(
            service,
            at,
            f"(service {service.name}) (deployment {primary['id']}) deployment failed: "
            "tasks failed to start.",
        )
        if not plan.rollback:
            return
        service.task_definition = state.last_completed
        self._start(backend, service, state, state.last_completed, at, is_rollback=True)
        _event(
            service,
            at,
            f"(service {service.name}) rolling back to deployment {service.deployments[0]['id']} "
            f"({state.last_completed}).",
        )

    def _sync(self, backend: Any, service: Any, state: _ServiceState, now: float) -> None:
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
            elapsed = max(0.0, now - plan.started_at)
            if plan.bad_image is not None:
                running, pending = 0, desired
                primary["failedTasks"] = _failed_tasks(desired, plan, now)
            else:
                share = elapsed / plan.rollout_s if plan.rollout_s > 0 else 1.0
                running, pending = max(0, min(desired - 1, math.floor(desired * share))), 0
                pending = desired - running
        if (running, pending) != (primary["runningCount"], primary["pendingCount"]):
            primary.update(runningCount=running, pendingCount=pending, updatedAt=_utc(now))
        # old deployments drain as the new one's tasks come up (minimumHealthyPercent 100)
        replaced = running
        for old in deployments[1:]:
            base = state.base_running.get(old["id"], int(old["runningCount"]))
            taken = min(base, replaced)
            replaced -= taken
            old.update(runningCount=base - taken, pendingCount=0)
        total_running = sum(int(d["runningCount"]) for d in deployments)
        total_pending = sum(int(d["pendingCount"]) for d in deployments)
        cluster = backend.clusters.get(service.cluster_name)
        if cluster is not None:
            cluster.running_tasks_count += total_running - service.running_count
            cluster.pending_tasks_count += total_pending - service.pending_count
        service.running_count, service.pending_count = total_running, total_pending
        bad_images = {dep_id: p.bad_image for dep_id, p in state.plans.items() if p.bad_image}
        state.tasks.sync(backend, service, now, bad_images)


def _failed_tasks(desired: int, plan: _Plan, at: float) -> int:
    """ECS's breaker trips at half the desired count (3..200) failed tasks; time spreads them."""
    threshold = max(3, min(200, math.ceil(desired / 2)))
    elapsed = max(0.0, at - plan.started_at)
    # (t0 + f) - t0 lands a few 1e-7 short of f at epoch-sized t0: compare with some slack
    if plan.failure_s <= 0 or (plan.breaker and elapsed >= plan.failure_s - 1e-3):
        return threshold
    return math.floor(threshold * elapsed / plan.failure_s + 1e-6)


def _finish(deployment: dict[str, Any], rollout_state: str, reason: str | None = None) -> None:
    deployment["rolloutState"] = rollout_state
    deployment["rolloutStateReason"] = reason or f"ECS deployment {deployment['id']} {rollout_state.lower()}."


def _event(service: Any, at: float, message: str) -> None:
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _utc(at), "message": message})
    del service.events[_MAX_EVENTS:]


def _deployment_id() -> str:
    return f"ecs-svc/{random.randrange(10**18, 10**19)}"  # ECS ids are 19 digits


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None)  # moto serialises naive UTC
