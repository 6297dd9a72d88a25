"""Judging a wave's gate from what AWS and the run say. Pure: no I/O, no clock of its own.

The gate's runner (`orchestrator.gate_run`) asks AWS and calls these; each returns a `Verdict`
(passed or not, and why in one line) or what a step needs to go on:

- `halt_verdict`: the wave's own results. Any target that did not succeed (or already run its
  image) stops the run when `halt` is on; with `halt = false` it is only said.
- `soak_problem`: while soaking, what ECS says of each of the wave's services: a PRIMARY
  deployment that no longer runs the revision the wave put there (rolled back, or deployed
  over), or a deployment that FAILED, stops the run.
- `alarm_verdict`: CloudWatch alarm states: ALARM (or an alarm that does not exist) stops the
  run; INSUFFICIENT_DATA is not OK yet (`waiting`); all OK passes.
- `smoke_verdict`: a one-off task (DescribeTasks): running until STOPPED, then passed only when
  its container exited 0; `log_location` says where its logs are (awslogs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.state import OK_PHASES, JobState
from worker.target import Target

__all__ = [
    "AlarmVerdict",
    "SmokeVerdict",
    "Verdict",
    "alarm_verdict",
    "halt_verdict",
    "log_location",
    "poll_interval",
    "services_text",
    "smoke_verdict",
    "soak_problem",
    "wanted_revisions",
]

POLL_MIN_S, POLL_MAX_S = 0.5, 15.0


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str


def halt_verdict(halt: bool, jobs: Sequence[JobState]) -> Verdict:
    """The wave's results: every target OK passes; else `halt` stops the run, or it goes on."""
    troubled = [job for job in jobs if job.phase not in OK_PHASES]
    if not troubled:
        return Verdict(True, f"{services_text(len(jobs))} deployed")
    named = ", ".join(f"{job.name} {job.phase.value}" for job in troubled[:3])
    more = f" and {len(troubled) - 3} more" if len(troubled) > 3 else ""
    what = f"{len(troubled)} of {services_text(len(jobs))} did not succeed ({named}{more})"
    if halt:
        return Verdict(False, f"{what}: halt stops the run")
    return Verdict(True, f"{what}; halt = false: the run goes on")


def services_text(count: int) -> str:
    """`1 service`, `3 services`."""
    return f"{count} service" if count == 1 else f"{count} services"


def wanted_revisions(jobs: Iterable[JobState]) -> dict[Target, str]:
    """The revision each of the wave's services runs by the wave's doing: what a soak watches."""
    return {
        job.target: job.task_definition_arn
        for job in jobs
        if job.phase in OK_PHASES and job.task_definition_arn is not None
    }


def _revision(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def soak_problem(wanted: Mapping[Target, str], services: Mapping[Target, dict[str, Any] | str]) -> str | None:
    """Why the soak stops the run (the first service in trouble), or None while all is well."""
    for target, revision in wanted.items():
        service = services.get(target, "not read")
        if isinstance(service, str):
            return f"{target.name}: {service}"
        deployments: list[dict[str, Any]] = service.get("deployments") or []
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        if primary is None:
            return f"{target.name}: ECS shows no PRIMARY deployment"
        running = str(primary.get("taskDefinition", ""))
        if running != revision:
            return (
                f"{target.name}: ECS runs {_revision(running)} now, not the wave's {_revision(revision)} "
                "(rolled back, or deployed over)"
            )
        for deployment in deployments:
            if deployment.get("rolloutState") == "FAILED":
                reason = deployment.get("rolloutStateReason") or "no reason given"
                return (
                    f"{target.name}: deployment {deployment.get('id')} of "
                    f"{_revision(str(deployment.get('taskDefinition', '')))} FAILED: {reason}"
                )
    return None


@dataclass(frozen=True)
class AlarmVerdict:
    state: Literal["ok", "waiting", "stopped"]
    message: str


def alarm_verdict(states: Mapping[str, str | None]) -> AlarmVerdict:
    """From each alarm's StateValue (None: no such alarm): stopped, waiting for data, or ok."""
    missing = [name for name, state in states.items() if state is None]
    firing = [name for name, state in states.items() if state == "ALARM"]
    if firing:
        return AlarmVerdict("stopped", f"alarm {_names(firing)} in ALARM")
    if missing:
        return AlarmVerdict("stopped", f"no alarm named {_names(missing)} in CloudWatch")
    unknown = [name for name, state in states.items() if state != "OK"]
    if unknown:
        said = ", ".join(f"{name} {states[name]}" for name in unknown)
        return AlarmVerdict("waiting", f"not OK yet: {said}")
    return AlarmVerdict("ok", f"alarm {_names(list(states))} OK")


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if len(names) > 1 else names[0]


@dataclass(frozen=True)
class SmokeVerdict:
    done: bool
    passed: bool
    message: str
    exit_code: int | None = None
    stop_reason: str | None = None


def smoke_verdict(task: Mapping[str, Any], container: str | None) -> SmokeVerdict:
    """A one-off task as DescribeTasks shows it: still going, or its end and why."""
    status = str(task.get("lastStatus", "PROVISIONING"))
    task_id = str(task.get("taskArn", "")).rsplit("/", 1)[-1]
    if status != "STOPPED":
        return SmokeVerdict(False, False, f"task {task_id} {status}")
    containers: list[dict[str, Any]] = task.get("containers") or []
    chosen = next((c for c in containers if c.get("name") == container), None)
    if chosen is None and container is None and containers:
        chosen = containers[0]
    stop_reason = str(task.get("stoppedReason") or "") or None
    name = container or (chosen or {}).get("name", "?")
    if chosen is None:
        return SmokeVerdict(True, False, f"task {task_id} stopped without container {name}: {stop_reason}")
    exit_code = chosen.get("exitCode")
    if exit_code is None:
        reason = chosen.get("reason") or stop_reason or "no reason given"
        return SmokeVerdict(True, False, f"container {name} has no exit code: {reason}", None, stop_reason)
    if exit_code == 0:
        return SmokeVerdict(True, True, f"container {name} exited 0", 0, stop_reason)
    said = f"container {name} exited {exit_code} ({stop_reason or 'stopped'})"
    return SmokeVerdict(True, False, said, exit_code, stop_reason)


def log_location(
    task_definition: Mapping[str, Any], container: str | None, task_arn: str, region: str | None
) -> tuple[str, str | None, str | None] | None:
    """(group, stream, region) of the container's awslogs, if its task definition sends any there."""
    definitions: list[dict[str, Any]] = task_definition.get("containerDefinitions") or []
    first = definitions[0] if definitions else None
    chosen = next((c for c in definitions if c.get("name") == container), first)
    if chosen is None:
        return None
    config = chosen.get("logConfiguration") or {}
    options: dict[str, str] = config.get("options") or {}
    if config.get("logDriver") != "awslogs" or "awslogs-group" not in options:
        return None
    prefix = options.get("awslogs-stream-prefix")
    stream = f"{prefix}/{chosen.get('name')}/{task_arn.rsplit('/', 1)[-1]}" if prefix else None
    return options["awslogs-group"], stream, options.get("awslogs-region", region)


def poll_interval(window_s: float) -> float:
    """How often a gate asks AWS during a wait of `window_s`: ten times, within 0.5 s to 15 s."""
    return min(POLL_MAX_S, max(POLL_MIN_S, window_s / 10))
