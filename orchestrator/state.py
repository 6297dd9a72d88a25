"""Folding worker events into the state of a run. Pure: no I/O, no clock of its own.

Events may arrive twice (a replay after a reconnect overlaps the live feed) or late (a
terminal event after the job was declared lost); folding is idempotent per (job, seq) and a
job's terminal phase is final, except that a worker's own verdict beats the orchestrator's:
our `lost` guess, and the end ECS gave of a silent job's rollout (published with
`ORCHESTRATOR_SEQ`, which the worker's later events go past).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from orchestrator.exits import ExitCode
from orchestrator.gate_events import GateEvent
from orchestrator.plan import PlannedJob
from orchestrator.wave_state import WaveBoard, WaveState
from orchestrator.waves import WavePlan
from worker.contract import TERMINAL_PHASES, ContainerChange, EventDetails, Phase, WorkerEvent
from worker.target import Target

__all__ = [
    "FAILED_PHASES",
    "OK_PHASES",
    "ORCHESTRATOR_SEQ",
    "JobState",
    "RunState",
    "TargetResult",
    "exit_code",
]

EVENTS_KEPT = 50
# The ends that count as success: for the exit code, `--all-or-nothing` and every view. `baking`
# (done_when = "traffic_shifted") is one, qualified: ECS is still baking and may yet roll back.
OK_PHASES = frozenset({Phase.SUCCEEDED, Phase.BAKING, Phase.SKIPPED})
FAILED_PHASES = TERMINAL_PHASES - OK_PHASES  # failed, rolled back, timed out, lost: exit code 1
ORCHESTRATOR_SEQ = 1 << 40  # beyond any seq a worker reaches: the seq of the orchestrator's verdicts


class TargetResult(BaseModel):
    """One line of the summary: one container of one service (a revert: the service)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str | None
    region: str | None
    cluster: str
    service: str
    container: str | None  # None on a revert's line: it puts a whole revision back
    image: str | None  # what the container was registered with (or ran, when skipped)
    planned_image: str | None  # what the spec asked for (pinned to a digest with pin_digests)
    revision: str | None  # a revert: the revision it puts back
    status: Phase
    task_definition_arn: str | None
    message: str
    wave: str | None = None  # the wave it was deployed in; None in a run without waves


@dataclass
class JobState:
    job_id: str
    target: Target
    changes: tuple[ContainerChange, ...]  # planned: container -> image
    revision: str | None = None  # a revert's revision
    images: dict[str, str] = field(default_factory=dict)  # registered, from the worker's events
    phase: Phase = Phase.QUEUED
    message: str = "queued"
    details: EventDetails = field(default_factory=EventDetails)
    last_seq: int = -1
    last_event_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    task_definition_arn: str | None = None
    deployment_id: str | None = None
    recent: deque[WorkerEvent] = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT))
    confirming: bool = False  # silent, and ECS is being asked what its rollout became
    wave: str | None = None  # its wave (orchestrator.waves); None in a run without waves

    @property
    def judged_outside(self) -> bool:
        """Its end is the orchestrator's word (`lost`, or ECS's end of a silent job's rollout),
        which the worker's own verdict beats."""
        return self.phase is Phase.LOST or (self.terminal and self.last_seq == ORCHESTRATOR_SEQ)

    @property
    def terminal(self) -> bool:
        return self.phase.terminal

    @property
    def name(self) -> str:
        return self.target.name

    def image_lines(self) -> list[tuple[str, str]]:
        """(container, image) to show: the image registered once known, else the planned one;
        a revert has one line, the revision it puts back."""
        if self.revision is not None:
            return [("revision", self.revision.rsplit("/", 1)[-1])]
        return [(c.container, self.images.get(c.container, c.image)) for c in self.changes]


@dataclass
class RunState:
    run_id: str
    jobs: dict[str, JobState]
    waves: WaveBoard = field(default_factory=WaveBoard)  # empty: a run without waves

    @classmethod
    def from_plan(cls, run_id: str, planned: Iterable[PlannedJob], waves: WavePlan | None = None) -> RunState:
        jobs = {
            p.job.job_id: JobState(p.job.job_id, p.job.target, p.job.changes, p.job.revision, wave=p.wave)
            for p in planned
        }
        return cls(run_id, jobs, WaveBoard.from_plan(waves))

    @property
    def done(self) -> bool:
        """Every job ended and every wave's gate decided (a run without waves: jobs alone)."""
        return all(job.terminal for job in self.jobs.values()) and self.waves.finished

    def apply_gate(self, event: GateEvent) -> WaveState | None:
        """Fold a gate event in; the wave it changed, or None when it is not this run's."""
        return None if event.run_id != self.run_id else self.waves.apply(event)

    def wave_jobs(self, wave: WaveState) -> list[JobState]:
        return [self.jobs[job_id] for job_id in wave.job_ids if job_id in self.jobs]

    def counts(self) -> dict[Phase, int]:
        counts: dict[Phase, int] = {}
        for job in self.jobs.values():
            counts[job.phase] = counts.get(job.phase, 0) + 1
        return counts

    def apply(self, event: WorkerEvent, received_at: float | None = None) -> JobState | None:
        """Fold one event in; the job it changed, or None when it changed nothing.

        Silence is measured on our clock (`received_at`), not on the worker's.
        """
        job = self.jobs.get(event.job_id)
        if job is None or event.run_id != self.run_id:
            return None
        if event.phase is Phase.DUPLICATE:
            # A delivery that did nothing: shown in the log (once: a replay of it is not news),
            # never a change of the job: its phase, message, seq and silence stay as they were.
            if event in job.recent:
                return None
            job.recent.append(event)
            return job
        if event.seq <= job.last_seq:
            return None
        if job.terminal and not (job.judged_outside and event.phase.terminal):
            return None
        job.last_seq = event.seq
        job.last_event_at = received_at if received_at is not None else event.ts
        if event.phase is not Phase.NOT_STARTED:  # the orchestrator's word on a job never sent
            job.started_at = job.started_at or event.ts
        job.phase = event.phase
        job.message = event.message
        job.details = event.details
        job.recent.append(event)
        if event.details.deployment_id and event.phase is not Phase.ROLLING_BACK:
            job.deployment_id = event.details.deployment_id
        if event.details.task_definition_arn and event.phase is not Phase.ROLLING_BACK:
            job.task_definition_arn = event.details.task_definition_arn
        job.images |= {change.container: change.image for change in event.details.images}
        if event.phase.terminal:
            job.ended_at = event.ts
            job.confirming = False
        return job

    def mark_started(self, job_id: str, now: float) -> None:
        """The executor handed the job to a worker: its silence counts from now."""
        job = self.jobs[job_id]
        job.last_event_at = job.last_event_at or now

    def _silence_deadlines(self, window_s: float, queued_window_s: float | None) -> dict[str, float]:
        # A job still waiting in a queue for a worker may rightly stay silent longer.
        return {
            job.job_id: job.last_event_at
            + (queued_window_s if queued_window_s is not None and job.phase is Phase.QUEUED else window_s)
            for job in self.jobs.values()
            if not job.terminal and not job.confirming and job.last_event_at is not None
        }

    def silent_jobs(
        self, now: float, window_s: float, queued_window_s: float | None = None
    ) -> list[JobState]:
        """Jobs handed to a worker that said nothing for longer than their window."""
        deadlines = self._silence_deadlines(window_s, queued_window_s)
        return [self.jobs[job_id] for job_id, deadline in deadlines.items() if now > deadline]

    def mark_lost(self, job_id: str, now: float) -> JobState:
        job = self.jobs[job_id]
        silent_for = now - (job.last_event_at or now)
        job.phase = Phase.LOST
        job.confirming = False
        job.message = f"no event for {silent_for:.0f}s (last: {job.message})"
        job.ended_at = now
        return job

    def mark_not_started(self, job_id: str, now: float, message: str) -> JobState:
        """The orchestrator's word on a job whose wave will not start (`attach`'s, here)."""
        job = self.jobs[job_id]
        job.phase = Phase.NOT_STARTED
        job.message = message
        job.ended_at = now
        return job

    def next_silence_deadline(self, window_s: float, queued_window_s: float | None = None) -> float | None:
        """When the first running job would count as lost, if nothing arrives before."""
        return min(self._silence_deadlines(window_s, queued_window_s).values(), default=None)

    def still_rolling(self) -> list[JobState]:
        """Jobs that changed a service and have not ended: ECS goes on without us."""
        return [j for j in self.jobs.values() if not j.terminal and j.deployment_id is not None]

    def results(self) -> list[TargetResult]:
        return [result for job in self.jobs.values() for result in _results(job)]


def _results(job: JobState) -> list[TargetResult]:
    """A line per planned container; a revert's job has one line, its revision."""
    lines: list[tuple[str | None, str | None, str | None]] = [
        (c.container, job.images.get(c.container), c.image) for c in job.changes
    ] or [(None, None, None)]
    return [
        TargetResult(
            account=job.target.account,
            region=job.target.region,
            cluster=job.target.cluster,
            service=job.target.service,
            container=container,
            image=image,
            planned_image=planned,
            revision=None if job.revision is None else job.revision.rsplit("/", 1)[-1],
            status=job.phase,
            task_definition_arn=job.task_definition_arn,
            message=job.message,
            wave=job.wave,
        )
        for container, image, planned in lines
    ]


def exit_code(state: RunState) -> ExitCode:
    """OK when every target succeeded (`baking` too) or already ran its image, else FAILED."""
    return ExitCode.OK if all(job.phase in OK_PHASES for job in state.jobs.values()) else ExitCode.FAILED
