"""ECS's service deployments as the simulator keeps them: one record per deployment it starts.

Why: since 2025 ECS tells how a deployment goes through its *service deployment* (status,
lifecycle stage, traffic weights, bake, rollback), and tools follow that rather than task counts
and `rolloutState`, which say COMPLETED while a blue/green deployment still bakes. moto has none
of it. Each record walks its strategy's stages (`deploy_schedule`) lazily, like the rest of the
simulator: `due(now)` names the next transition that is due, the simulator applies it (and what
it means for DescribeServices), and nothing ticks in the background. Callers hold the lock.
"""

from __future__ import annotations

import copy
import random
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from orchestrator.sandbox.deploy_schedule import Schedule, Timing, build_schedule
from orchestrator.sandbox.scenario import RolloutScenario

__all__ = [
    "STOPPABLE",
    "TERMINAL",
    "AlarmLookup",
    "Fate",
    "Revision",
    "ServiceDeployment",
    "Step",
    "open_service_deployment",
    "parse_service_deployment_arn",
    "revision_arn",
    "service_revision",
]

TERMINAL = frozenset({"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"})
STOPPABLE = frozenset({"PENDING", "IN_PROGRESS"})
_ID_CHARS = string.ascii_letters + string.digits

# Step kinds. The first ones only move the record on; the failures also change the service.
START, NEXT_STAGE, ROLLBACK_STARTED, ROLLBACK_ENDED, STOPPED = (
    "start",
    "next_stage",
    "rollback_started",
    "rollback_ended",
    "stopped",
)
BREAKER, HOOK_FAILED, ALARM = "breaker", "hook_failed", "alarm"
FAILURES = frozenset({BREAKER, HOOK_FAILED, ALARM})

AlarmLookup = Callable[[Sequence[str]], Mapping[str, float]]
"""Which of these CloudWatch alarms are in ALARM, and since when (epoch seconds)."""


class Step(NamedTuple):
    """A transition due at `at`; `detail` names the hook or the alarms that failed it."""

    at: float
    kind: str
    detail: tuple[str, ...] = ()


@dataclass
class Revision:
    """A service revision and the DescribeServices deployment that runs it (live counts)."""

    arn: str
    deployment: dict[str, Any]


@dataclass(frozen=True)
class Fate:
    """What the scenario decided when the deployment started."""

    bad_image: bool
    failure_s: float  # into SCALE_UP, when the circuit breaker trips on a bad image
    hook_hold_s: float | None  # None: hooks answer when released
    hook_fails: bool
    pause_s: float  # how long PENDING, ROLLBACK_REQUESTED and STOP_REQUESTED last


def _short_id() -> str:
    return "".join(random.choices(_ID_CHARS, k=21))


def _arn_prefix(service_arn: str) -> str:
    partition, _, region, account = service_arn.split(":")[1:5]
    return f"arn:{partition}:ecs:{region}:{account}"


def _new_arn(service_arn: str, cluster: str, service: str) -> str:
    return f"{_arn_prefix(service_arn)}:service-deployment/{cluster}/{service}/{_short_id()}"


def revision_arn(service_arn: str, cluster: str, service: str, deployment_id: str) -> str:
    """The revision a DescribeServices deployment `ecs-svc/N` runs: `.../service-revision/.../N`."""
    return f"{_arn_prefix(service_arn)}:service-revision/{cluster}/{service}/{deployment_id.split('/')[-1]}"


def service_revision(service: Any, deployment: dict[str, Any]) -> Revision:
    """The revision a deployment of moto's `service` runs."""
    return Revision(
        revision_arn(service.arn, service.cluster_name, service.name, deployment["id"]), deployment
    )


def parse_service_deployment_arn(arn: str) -> tuple[str, str, str, str] | None:
    """(region, account, cluster, service) of a service deployment ARN; None if it is not one."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "ecs" or not parts[5].startswith("service-deployment/"):
        return None
    path = parts[5].split("/")
    return (parts[3], parts[4], path[1], path[2]) if len(path) == 4 else None


@dataclass
class ServiceDeployment:
    """One service deployment: where it is in its schedule, and what ECS says of it."""

    arn: str
    service_arn: str
    cluster_arn: str
    config: dict[str, Any]  # the service's deploymentConfiguration when it started
    schedule: Schedule
    fate: Fate
    target: Revision
    sources: list[Revision]
    created_at: float
    status: str = "PENDING"
    status_reason: str | None = None
    stage: int = -1  # index into schedule.stages; -1 while PENDING
    stage_at: float = 0.0  # when the current stage (or PENDING) began
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    stopped_at: float | None = None
    scale_up_at: float | None = None
    hook_answer: tuple[float, bool] | None = None  # (when, succeeded): the current stage's, once released
    requested_at: float | None = None  # since when ROLLBACK_REQUESTED / STOP_REQUESTED
    rollback_outcome: tuple[float, bool] | None = None  # the rollback deployment's (when, succeeded)
    rollback: dict[str, Any] | None = None
    breaker_tripped: bool = False
    triggered_alarms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.stage_at = self.updated_at = self.created_at

    # --- where it is ---------------------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def stage_name(self) -> str | None:
        return self.schedule.stages[self.stage].name if self.stage >= 0 else None

    @property
    def rolled_out(self) -> bool:
        """Production traffic is all on the new revision: `rolloutState` says COMPLETED."""
        return self.stage >= self.schedule.rolled_out

    def replaced_tasks(self, running: int) -> int:
        """How many tasks of the revisions it replaces are gone when the new one runs `running`:
        a rolling update replaces them as it goes; the others keep them (the blue environment)
        until CLEAN_UP."""
        if self.schedule.strategy == "ROLLING":
            return running
        return 0 if self.stage < self.schedule.index("CLEAN_UP") else running + 10**9

    def _monitoring(self) -> bool:
        """Alarms watch a deployment from SCALE_UP to the end of BAKE_TIME."""
        return self.scale_up_at is not None and self.stage < self.schedule.index("CLEAN_UP")

    # --- what comes next -----------------------------------------------------------------

    def due(self, now: float, alarms: AlarmLookup) -> Step | None:
        """The earliest transition due by `now`, if any (a stage's end before a failure at the
        same instant: the stage was done)."""
        ready = [step for step in self._next_steps(now, alarms) if step.at <= now]
        return min(ready, key=lambda step: step.at) if ready else None

    def _next_steps(self, now: float, alarms: AlarmLookup) -> list[Step]:
        pause_s = self.fate.pause_s
        if self.status == "PENDING":
            return [Step(self.created_at + pause_s, START)]
        if self.status == "ROLLBACK_REQUESTED":
            return [Step(self._requested() + pause_s, ROLLBACK_STARTED)]
        if self.status == "STOP_REQUESTED":
            return [Step(self._requested() + pause_s, STOPPED)]
        if self.status == "ROLLBACK_IN_PROGRESS" and self.rollback_outcome is not None:
            return [Step(max(self.rollback_outcome[0], self._requested() + pause_s), ROLLBACK_ENDED)]
        if self.status != "IN_PROGRESS":
            return []
        steps = [step for step in (self._stage_end(), self._breaker_trip()) if step is not None]
        alarm = self._alarm_trip(now, alarms)
        return [*steps, alarm] if alarm is not None else steps

    def _requested(self) -> float:
        assert self.requested_at is not None
        return self.requested_at

    def _work_done_at(self) -> float:
        return self.stage_at + self.schedule.stages[self.stage].duration_s

    def _stage_end(self) -> Step | None:
        stage = self.schedule.stages[self.stage]
        if stage.name == "SCALE_UP" and self.fate.bad_image:
            return None  # its tasks never start: the breaker, an alarm or a stop ends it
        done = self._work_done_at()
        if not stage.hooks:
            return Step(done, NEXT_STAGE)
        if self.hook_answer is not None:
            answered_at, succeeded = self.hook_answer
        elif self.fate.hook_hold_s is not None:
            answered_at, succeeded = done + self.fate.hook_hold_s, True
        else:
            return None  # waiting for release_hooks
        failed = self.fate.hook_fails or not succeeded
        return Step(answered_at, HOOK_FAILED if failed else NEXT_STAGE, stage.hooks[:1])

    def _breaker_trip(self) -> Step | None:
        breaker = self.config.get("deploymentCircuitBreaker") or {}
        if self.stage_name != "SCALE_UP" or not self.fate.bad_image or not breaker.get("enable"):
            return None
        return Step(self.stage_at + self.fate.failure_s, BREAKER)

    def _alarm_trip(self, now: float, alarms: AlarmLookup) -> Step | None:
        config = self.config.get("alarms") or {}
        names = list(config.get("alarmNames") or ())
        if not config.get("enable") or not names or not self._monitoring():
            return None
        in_alarm = alarms(names)
        if not in_alarm:
            return None
        assert self.scale_up_at is not None
        at = min(now, max(min(in_alarm.values()), self.scale_up_at, self.stage_at))
        return Step(at, ALARM, tuple(sorted(in_alarm)))

    # --- transitions -----------------------------------------------------------------------

    def advance(self, step: Step) -> None:
        """Apply a step that only moves the record on (not a failure)."""
        if step.kind in (START, NEXT_STAGE):
            if step.kind == START:
                self.status, self.started_at = "IN_PROGRESS", step.at
            self._enter(self.stage + 1, step.at)
        elif step.kind == ROLLBACK_STARTED:
            self._set_status("ROLLBACK_IN_PROGRESS", step.at)
        elif step.kind == ROLLBACK_ENDED:
            assert self.rollback_outcome is not None
            succeeded = self.rollback_outcome[1]
            self._end("ROLLBACK_SUCCESSFUL" if succeeded else "ROLLBACK_FAILED", step.at)
            if not succeeded:
                self.status_reason = f"{self.status_reason} The rollback deployment failed too."
        elif step.kind == STOPPED:
            self._end("STOPPED", step.at)

    def _enter(self, index: int, at: float) -> None:
        self.hook_answer = None
        if index >= len(self.schedule.stages):
            self._end("SUCCESSFUL", at)
            return
        self.stage, self.stage_at, self.updated_at = index, at, at
        if self.stage_name == "SCALE_UP":
            self.scale_up_at = at

    def _set_status(self, status: str, at: float) -> None:
        self.status, self.updated_at = status, at

    def _end(self, status: str, at: float) -> None:
        self._set_status(status, at)
        self.finished_at = at
        if status == "STOPPED":
            self.stopped_at = at

    def fail(self, step: Step) -> bool:
        """A failure step: ROLLBACK_REQUESTED (True) or STOPPED (False), saying why."""
        names = ", ".join(step.detail)
        if step.kind == BREAKER:
            self.breaker_tripped = True
            rolls_back = bool((self.config.get("deploymentCircuitBreaker") or {}).get("rollback"))
            why = "the deployment circuit breaker tripped: tasks failed to start"
        elif step.kind == ALARM:
            self.triggered_alarms = step.detail
            rolls_back = bool((self.config.get("alarms") or {}).get("rollback"))
            why = f"CloudWatch alarm(s) {names} went into ALARM"
        else:
            rolls_back = True  # a hook that answers FAILED always rolls the deployment back
            why = f"lifecycle hook {names} answered FAILED at {self.stage_name}"
        if rolls_back:
            self.roll_back(step.at, f"Service deployment rolled back because {why}.")
        else:
            self.status_reason = f"Service deployment stopped because {why}."
            self._end("STOPPED", step.at)
        return rolls_back

    def roll_back(self, at: float, reason: str) -> None:
        self.status_reason, self.requested_at = reason, at
        self.rollback = {"reason": reason, "startedAt": at}
        self._set_status("ROLLBACK_REQUESTED", at)

    def rolling_back_to(self, revision: str) -> None:
        """The revision the rollback deployment runs (known once the simulator started it)."""
        assert self.rollback is not None
        self.rollback["serviceRevisionArn"] = revision

    def rollback_finished(self, at: float, succeeded: bool) -> None:
        if self.status in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"):
            self.rollback_outcome = (at, succeeded)

    def request_stop(self, at: float) -> None:
        """StopServiceDeployment(ABORT): stopped where it is."""
        self.status_reason = "Service deployment stopped by StopServiceDeployment (ABORT)."
        self.requested_at = at
        self._set_status("STOP_REQUESTED", at)

    def supersede(self, at: float, by: str) -> None:
        self.status_reason = f"Service deployment stopped because a newer service deployment started: {by}."
        self._end("STOPPED", at)

    def release_hook(self, at: float, succeeded: bool) -> bool:
        """Answer the hook the current stage waits for; False if it waits for none now."""
        if self.status != "IN_PROGRESS" or self.hook_answer is not None:
            return False
        if not self.schedule.stages[self.stage].hooks or at < self._work_done_at():
            return False
        self.hook_answer = (at, succeeded)
        return True


def open_service_deployment(
    service: Any,
    scenario: RolloutScenario,
    images: Sequence[str],
    target: dict[str, Any],
    sources: Sequence[Revision],
    at: float,
) -> ServiceDeployment:
    """The service deployment an UpdateService of moto's `service` starts at `at`, towards the
    DescribeServices deployment `target`, under the service's deploymentConfiguration now."""
    config = copy.deepcopy(service.deployment_configuration)
    return ServiceDeployment(
        arn=_new_arn(service.arn, service.cluster_name, service.name),
        service_arn=service.arn,
        cluster_arn=service.cluster_arn,
        config=config,
        schedule=build_schedule(config, Timing(scenario.rollout_s, scenario.stage_s, scenario.minute_s)),
        fate=Fate(
            bad_image=scenario.bad_image(images) is not None,
            failure_s=scenario.effective_failure_s,
            hook_hold_s=scenario.hook_hold_s,
            hook_fails=scenario.hook_fails(images),
            pause_s=scenario.stage_s,
        ),
        target=service_revision(service, target),
        sources=list(sources),
        created_at=at,
    )
