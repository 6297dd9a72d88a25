"""Make moto's ECS roll deployments forward, fail and roll back the way ECS does.

Why: moto 5.2.5 records `update_service(taskDefinition=...)` but starts no deployment:
deployments[0] keeps the old revision, IN_PROGRESS, for ever; and it knows neither deployment
strategies nor service deployments. The tests, the `--sandbox` mode and the benchmarks all
follow deployments, so they need an ECS that rolls out on schedule.

How: `moto_hooks` calls the simulator that claims a backend whenever a service is created,
updated, deleted or read, and for the service-deployments actions. Each deployment's fate is
fixed when it starts (healthy or bad image, its strategy's stages, circuit breaker, alarms,
hooks) and its state at any instant is computed from that schedule when a read is served, so a
reader never waits for a ticker and every timestamp is the scheduled one: the service
deployment (`service_deployments`) walks its stages, and DescribeServices (`ecs_deployments`)
follows it. The state lives on moto's Service objects, so a moto reset drops it with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from moto.ecs.exceptions import InvalidParameterException

from orchestrator.sandbox import deployment_api, ecs_deployments, moto_hooks
from orchestrator.sandbox.cloudwatch_alarms import alarms_in_alarm
from orchestrator.sandbox.ecs_deployments import BREAKER_REASON, Plan, ServiceState
from orchestrator.sandbox.moto_hooks import LOCK, deployment_configuration
from orchestrator.sandbox.one_off_tasks import OneOffTasks
from orchestrator.sandbox.scenario import RolloutScenario
from orchestrator.sandbox.service_deployments import (
    BREAKER,
    FAILURES,
    NEXT_STAGE,
    START,
    AlarmLookup,
    ServiceDeployment,
    Step,
    open_service_deployment,
    parse_service_deployment_arn,
    revision_arn,
    service_revision,
)

__all__ = ["RolloutScenario", "RolloutSimulator"]

_STATE_ATTR = "_ecs_fanout_rollout"
_KEEP_RECORDS = 100  # service deployments listed per service, newest kept


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

    def _services(self, cluster: str | None = None, service: str | None = None) -> list[tuple[Any, Any]]:
        """(backend, service) of the claimed backends: every service, or the one named."""
        found: list[tuple[Any, Any]] = []
        for backend in moto_hooks.ecs_backends():
            if moto_hooks.driver_for(backend) is not self:
                continue
            if service is None:
                found += [(backend, each) for each in list(backend.services.values())]
                continue
            key = f"{(cluster or 'default').split('/')[-1]}:{service.split('/')[-1]}"
            if key in backend.services:
                found.append((backend, backend.services[key]))
        return found

    def advance(self) -> None:
        """Bring every service of the claimed backends up to now (reads do this lazily anyway)."""
        with LOCK:
            for backend, service in self._services():
                self.on_read(backend, service)

    def release_hooks(self, cluster: str, service: str, *, succeed: bool = True) -> int:
        """Answer the lifecycle hook that the service's current deployment waits for (FAILED when
        `succeed` is False, or for the scenario's hook_fail_images: ECS then rolls it back).
        How many hooks answered: 0 when no stage is waiting for one right now."""
        released = 0
        with LOCK:
            for backend, found in self._services(cluster, service):
                self.on_read(backend, found)
                state = self._adopt(backend, found)
                record = state.current if state is not None else None
                if record is not None and record.release_hook(self._clock(), succeed):
                    released += 1
                    self.on_read(backend, found)
        return released

    # --- moto_hooks.Driver: called under LOCK ---------------------------------------------

    def on_create(self, backend: Any, service: Any) -> None:
        self._adopt(backend, service)

    def on_delete(self, backend: Any, service: Any) -> None:
        state: ServiceState | None = getattr(service, _STATE_ATTR, None)
        if state is not None:
            state.tasks.stop_all(backend, self._clock(), "Service deleted")

    def _adopt(self, backend: Any, service: Any) -> ServiceState | None:
        """The service's state; a service met for the first time counts as settled (ECS ran it)."""
        state: ServiceState | None = getattr(service, _STATE_ATTR, None)
        if state is not None:
            return state
        controller = (service.deployment_controller or {}).get("type", "ECS")
        if controller != "ECS" or not service.deployments or not service.task_definition:
            return None
        service.task_definition = backend.describe_task_definition(service.task_definition).arn
        if not hasattr(service, "deployment_configuration"):
            service.deployment_configuration = deployment_configuration(None)
        now = self._clock()
        ecs_deployments.adopt_primary(service, now)
        revision = revision_arn(service.arn, service.cluster_name, service.name, service.deployments[0]["id"])
        state = ServiceState(last_completed=service.task_definition, last_revision=revision)
        setattr(service, _STATE_ATTR, state)
        ecs_deployments.sync_counts(backend, service, state, now)
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
        config = deployment_configuration(
            props.get("deployment_configuration"), service.deployment_configuration
        )
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
        service.deployment_configuration = config
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
        alarms = self._alarm_lookup(backend)
        while self._step(backend, service, state, now, alarms):
            pass
        ecs_deployments.sync_counts(backend, service, state, now)

    def on_service_deployments(self, backend: Any, action: str, params: dict[str, Any]) -> Any:
        if not self._scenario.service_deployments_api:
            raise deployment_api.unknown_operation(action)
        return deployment_api.serve(self, backend, action, params)

    # --- deployment_api.ServiceDeploymentRecords ------------------------------------------

    def service_deployments_of(self, backend: Any, cluster: str, service: str) -> list[ServiceDeployment]:
        found = backend._get_service(cluster, service.split("/")[-1])  # ECS's NotFound errors
        self.on_read(backend, found)
        state: ServiceState | None = getattr(found, _STATE_ATTR, None)
        return list(state.records.values()) if state is not None else []

    def find_service_deployment(self, backend: Any, arn: str) -> tuple[Any, ServiceDeployment] | None:
        parsed = parse_service_deployment_arn(arn)
        if parsed is None or parsed[:2] != (backend.region_name, backend.account_id):
            return None
        service = backend.services.get(f"{parsed[2]}:{parsed[3]}")
        if service is None:
            return None
        self.on_read(backend, service)
        state: ServiceState | None = getattr(service, _STATE_ATTR, None)
        record = state.records.get(arn) if state is not None else None
        return (service, record) if record is not None else None

    def stop_service_deployment(
        self, backend: Any, service: Any, record: ServiceDeployment, stop_type: str
    ) -> None:
        state: ServiceState = getattr(service, _STATE_ATTR)
        now = self._clock()
        primary = service.deployments[0]
        if stop_type == "ABORT":
            record.request_stop(now)
            reason = f"ECS deployment {primary['id']} stopped."
            ecs_deployments.mark_failed(service, primary, state.plans.get(primary["id"]), now, reason, False)
        else:
            record.roll_back(now, "Service deployment rolled back by StopServiceDeployment (ROLLBACK).")
            self._abandon(backend, service, state, record, now, tasks_failed=False)
        self.on_read(backend, service)

    # --- the state machine ---------------------------------------------------------------

    def _alarm_lookup(self, backend: Any) -> AlarmLookup:
        account, region = backend.account_id, backend.region_name
        return lambda names: alarms_in_alarm(account, region, names)

    def _step(self, backend: Any, service: Any, state: ServiceState, now: float, alarms: AlarmLookup) -> bool:
        """Apply the earliest transition due by `now`; False when none is."""
        primary = service.deployments[0] if service.deployments else None
        plan = state.plans.get(primary["id"]) if primary is not None else None
        rollback_end = ecs_deployments.rollback_end(primary, plan)
        record = state.current
        step = record.due(now, alarms) if record is not None else None
        if (
            rollback_end is not None
            and rollback_end[0] <= now
            and (step is None or rollback_end[0] <= step.at)
        ):
            assert plan is not None
            ecs_deployments.end_rollback_deployment(service, state, plan, *rollback_end)
            return True
        if step is None or record is None:
            return False
        if step.kind in FAILURES:
            self._fail(backend, service, state, record, step)
            return True
        record.advance(step)
        if step.kind in (START, NEXT_STAGE) and primary is record.target.deployment and plan is not None:
            self._follow(service, state, record, plan, step)
        return True

    def _fail(
        self, backend: Any, service: Any, state: ServiceState, record: ServiceDeployment, step: Step
    ) -> None:
        """The circuit breaker, an alarm or a hook failed the deployment: ECS rolls it back, or
        stops it where it is (FAILED, its tasks as they were)."""
        breaker = step.kind == BREAKER
        if record.fail(step):
            self._abandon(backend, service, state, record, step.at, tasks_failed=breaker)
            return
        deployment = record.target.deployment
        reason = BREAKER_REASON if breaker else str(record.status_reason)
        plan = state.plans.get(deployment["id"])
        ecs_deployments.mark_failed(service, deployment, plan, step.at, reason, breaker)

    def _follow(
        self, service: Any, state: ServiceState, record: ServiceDeployment, plan: Plan, step: Step
    ) -> None:
        """DescribeServices after the service deployment moved on: tasks start with SCALE_UP,
        `rolloutState` COMPLETED once traffic is shifted, the old deployments gone at the end."""
        primary = record.target.deployment
        if plan.started_at is None:
            plan.started_at = record.scale_up_at
        if record.rolled_out and primary["rolloutState"] == "IN_PROGRESS":
            ecs_deployments.complete_rollout(service, primary, step.at)
        if record.status == "SUCCESSFUL":
            ecs_deployments.settle(service, state, record.target.arn)

    def _abandon(
        self,
        backend: Any,
        service: Any,
        state: ServiceState,
        record: ServiceDeployment,
        at: float,
        tasks_failed: bool,
    ) -> None:
        """The deployment `record` started has failed at `at` and rolls back: FAILED, and a new
        PRIMARY deployment of the revision the service ran last."""
        deployment = record.target.deployment
        reason = BREAKER_REASON if tasks_failed else str(record.status_reason)
        ecs_deployments.mark_failed(
            service, deployment, state.plans.get(deployment["id"]), at, reason, tasks_failed
        )
        service.task_definition = state.last_completed
        rollback = self._start(backend, service, state, state.last_completed, at, rolls_back=record)
        record.rolling_back_to(service_revision(service, rollback).arn)
        ecs_deployments.add_event(
            service,
            at,
            f"(service {service.name}) rolling back to deployment {rollback['id']} ({state.last_completed}).",
        )

    def _start(
        self,
        backend: Any,
        service: Any,
        state: ServiceState,
        td_arn: str,
        at: float,
        rolls_back: ServiceDeployment | None = None,
    ) -> dict[str, Any]:
        """A new PRIMARY deployment of `td_arn`: its plan and, unless it is a rollback, the
        service deployment that drives it."""
        scenario = self._scenario
        td = backend.describe_task_definition(td_arn)
        images = [str(cd.get("image", "")) for cd in td.container_definitions]
        breaker = (service.deployment_configuration or {}).get("deploymentCircuitBreaker") or {}
        sources = [service_revision(service, old) for old in service.deployments]
        deployment = ecs_deployments.new_deployment(service, state, td_arn, at)
        plan = Plan(
            started_at=at if rolls_back else None,  # a rollback's tasks start at once
            rollout_s=scenario.rollout_s,
            failure_s=scenario.effective_failure_s,
            bad_image=scenario.bad_image(images),
            breaker=bool(breaker.get("enable")),
            record=rolls_back,
            is_rollback=rolls_back is not None,
        )
        state.plans[deployment["id"]] = plan
        if rolls_back is None:
            plan.record = open_service_deployment(service, scenario, images, deployment, sources, at)
            _track(state, plan.record, at)
        return deployment


def _track(state: ServiceState, record: ServiceDeployment, at: float) -> None:
    """`record` is the service's newest service deployment: the one before, if still going, is
    STOPPED (a newer UpdateService replaces it); the oldest are forgotten past _KEEP_RECORDS."""
    if state.current is not None and not state.current.terminal:
        state.current.supersede(at, record.arn)
    state.current = state.records[record.arn] = record
    for old in list(state.records)[:-_KEEP_RECORDS]:
        del state.records[old]
