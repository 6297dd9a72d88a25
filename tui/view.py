"""What a pane shows, derived from a job's state. Pure: no Textual, no clock of its own.

The run core folds events into `JobState`, which keeps only the latest details. A pane wants
more than the latest event: the revision change (`api:1 -> api:2`) and the last known task
counts survive events that do not carry them (a rollback step, a heartbeat), and so does
where ECS's service deployment stands (strategy, lifecycle stage, traffic, bake time, a hook
holding it). `JobView` remembers them, reading each event once, so coalesced updates (a pane
refreshed once for many events) lose nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from orchestrator.ecs_strategy import deployment_text, speaks_of_deployment
from orchestrator.state import FAILED_PHASES, OK_PHASES, JobState
from worker.contract import EventDetails, Phase, WorkerEvent

__all__ = [
    "JobView",
    "elapsed_text",
    "event_lines",
    "phase_group",
    "phase_icon",
    "revision_name",
    "short_arns",
]

# Single-cell symbols only: emoji would be two cells wide in some terminals.
_ICONS = {
    Phase.QUEUED: "○",
    Phase.ROLLING_BACK: "↺",
    Phase.SUCCEEDED: "✔",
    Phase.BAKING: "◐",  # traffic shifted, ECS still baking: a success, not a whole one yet
    Phase.SKIPPED: "=",
    Phase.FAILED: "✖",
    Phase.ROLLED_BACK: "↺",
    Phase.TIMED_OUT: "✖",
    Phase.LOST: "?",
    Phase.NOT_STARTED: "·",
}


def phase_icon(phase: Phase) -> str:
    return _ICONS.get(phase, "●")


def phase_group(phase: Phase) -> str:
    """The style group of a phase: `queued`, `active`, `ok` or `failed` (one CSS class each).
    A job whose wave never started looks like one still queued: it did nothing, and its wave's
    header says why."""
    if phase in FAILED_PHASES:
        return "failed"
    if phase in OK_PHASES:
        return "ok"
    return "queued" if phase in (Phase.QUEUED, Phase.NOT_STARTED) else "active"


_TASK_DEFINITION_ARN = re.compile(r"arn:aws[\w-]*:ecs:[\w-]*:\d*:task-definition/")


def revision_name(arn: str) -> str:
    """`arn:aws:ecs:...:task-definition/api:2` -> `api:2`."""
    return arn.rsplit("/", 1)[-1]


def short_arns(text: str) -> str:
    """Task-definition ARNs in a message, as `family:revision`: a pane line has no room for more."""
    return _TASK_DEFINITION_ARN.sub("", text)


def elapsed_text(seconds: float | None) -> str:
    """`0:07`, `12:34`, `1:02:03`; an em dash when the job has not started."""
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class JobView:
    """What a pane remembers of one job across events."""

    previous_arn: str | None = None
    target_arn: str | None = None
    running: int | None = None
    desired: int | None = None
    failed_tasks: int | None = None
    # Where ECS's service deployment stands, as of `deployment_at` (the event's time).
    deployment: EventDetails = field(default_factory=EventDetails)
    deployment_at: float = 0.0
    _seen_seq: int = -1

    def absorb(self, job: JobState) -> None:
        """Read the events of `job.recent` not read yet (at most the last 50 are kept)."""
        for event in job.recent:
            if event.phase is not Phase.DUPLICATE and event.seq > self._seen_seq:
                self._read(event)
        self._seen_seq = max(self._seen_seq, job.last_seq)

    def _read(self, event: WorkerEvent) -> None:
        details = event.details
        if details.previous_task_definition_arn:
            # Only the forward rollout carries both: a rollback's events name no "previous".
            self.previous_arn = details.previous_task_definition_arn
            self.target_arn = details.task_definition_arn or self.target_arn
        elif event.phase is Phase.SKIPPED and details.task_definition_arn:
            self.previous_arn = details.task_definition_arn
        if details.desired is not None:
            self.running, self.desired = details.running, details.desired
            self.failed_tasks = details.failed_tasks
        self._read_deployment(event)

    def _read_deployment(self, event: WorkerEvent) -> None:
        """The strategy and ECS's status hold until told otherwise; the stage, the traffic, the
        bake time left and a holding hook are what the latest event that speaks of them says."""
        details, known = event.details, self.deployment
        sticky = {
            name: getattr(known, name) if getattr(details, name) is None else getattr(details, name)
            for name in ("strategy", "service_deployment_status")
        }
        if not speaks_of_deployment(details):
            self.deployment = known.model_copy(update={"strategy": sticky["strategy"]})
            return
        current = ("lifecycle_stage", "traffic_percent", "bake_left_s", "hook", "hook_since")
        self.deployment = EventDetails(**sticky, **{name: getattr(details, name) for name in current})
        self.deployment_at = event.ts

    def deployment_text(self, now: float) -> str:
        """`waiting for hook check for 3m12s · POST_TEST_TRAFFIC_SHIFT · traffic 0% · BLUE_GREEN
        IN_PROGRESS`, as of `now`; "" while nothing is known of a service deployment."""
        return deployment_text(self.deployment, now, self.deployment_at)

    def revision_text(self, phase: Phase) -> str:
        if phase is Phase.SKIPPED and self.previous_arn:
            return f"{revision_name(self.previous_arn)} (unchanged)"
        if self.previous_arn and self.target_arn:
            arrow = " ← " if phase is Phase.ROLLING_BACK else " → "
            return revision_name(self.previous_arn) + arrow + revision_name(self.target_arn)
        return "revision pending"

    def progress(self, phase: Phase) -> float:
        """The share of desired tasks running (0..1); a finished success is full."""
        if phase in OK_PHASES:
            return 1.0
        if not self.desired:
            return 0.0
        return min(1.0, (self.running or 0) / self.desired)

    def counts_text(self) -> str:
        if self.desired is None:
            return ""
        return f"{self.running or 0}/{self.desired} running"


def event_lines(job: JobState, count: int) -> list[tuple[str, str]]:
    """The latest `count` events as (offset from the job's start, message), oldest first."""
    start = job.started_at
    lines = []
    for event in list(job.recent)[-count:]:
        offset = "" if start is None else "+" + elapsed_text(event.ts - start)
        lines.append((offset, short_arns(event.message or event.phase.value)))
    # Decided by the orchestrator (`lost`), or by `attach` (`not_started`, no event): no event says so.
    if job.phase is Phase.LOST or (job.phase is Phase.NOT_STARTED and not job.recent):
        lines.append(("", short_arns(job.message)))
    return lines[-count:]
