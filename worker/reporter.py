"""A job's voice: its events, published in sequence, with its lease kept alive meanwhile.

A job that waits (for the account's API budget, a slow answer, a busy event loop) says so:
`keep_alive` repeats its last event whenever it has been silent for a third of its heartbeat,
so the run never takes a waiting job for a lost one.

Redis may go away while the job runs: its events then wait in the outbox and its lease
renewals fail quietly (nobody can take the job from a Redis that is down), and the job goes
on. A delivery's last event (terminal, or a hand-over) waits for Redis, and the terminal
phase is recorded in the ledger first, patiently, with whatever else of the record waited.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import anyio

from worker.contract import DeployJob, EventDetails, Phase, WorkerEvent
from worker.ledger import JobLedger
from worker.outbox import DRAIN_PATIENCE_S, Outbox
from worker.rollout import Rollout

__all__ = ["Reporter", "rollout_details"]

log = logging.getLogger(__name__)


@dataclass
class Reporter:
    """Publishes a job's events in sequence and keeps its lease alive while doing so."""

    job: DeployJob
    outbox: Outbox
    ledger: JobLedger
    owner: str
    lease_s: float
    seq: int
    hand_over_at: float | None = None
    _last: tuple[Phase, str, EventDetails] | None = field(default=None, init=False)
    _last_at: float = field(default_factory=time.monotonic, init=False)
    _said_last_word: bool = field(default=False, init=False)  # terminal, or handed over
    _lock: anyio.Lock = field(default_factory=anyio.Lock, init=False)  # one event at a time

    async def emit(self, phase: Phase, message: str, details: EventDetails | None = None) -> None:
        async with self._lock:
            await self._send(phase, message, details or EventDetails())

    async def keep_alive(self) -> None:
        """Repeat the last event (at first: "starting") whenever the job has said nothing for a
        third of its heartbeat, until cancelled; never after its last word. Never raises."""
        every_s = self.job.options.heartbeat_s / 3
        while True:
            await anyio.sleep(max(0.0, self._last_at + every_s - time.monotonic()))
            with anyio.CancelScope(shield=True):  # an event is published whole or not at all
                async with self._lock:
                    if self._said_last_word or time.monotonic() - self._last_at < every_s:
                        continue
                    phase, message, details = self._last or (
                        Phase.STARTED,
                        f"{self.job.target}: starting",
                        EventDetails(),
                    )
                    try:
                        await self._send(phase, message, details)
                    except Exception:  # a heartbeat that could not be sent must not end the job
                        log.warning("job %s: heartbeat not sent", self.job.job_id, exc_info=True)
                        self._last_at = time.monotonic()

    async def _send(self, phase: Phase, message: str, details: EventDetails) -> None:
        event = WorkerEvent(
            run_id=self.job.run_id,
            job_id=self.job.job_id,
            seq=self.seq + 1,
            phase=phase,
            message=message,
            details=details,
        )
        if phase.terminal:
            await self.ledger.record(self.job, wait_s=DRAIN_PATIENCE_S, terminal=phase.value)
        # The publisher numbers the event after any the job has (a duplicate's report may have
        # taken the number we asked for): go on from the number it was given.
        self.seq = await self.outbox.send(event)
        self._last, self._last_at = (phase, message, details), time.monotonic()
        self._said_last_word = phase.terminal or phase is Phase.HANDED_OVER
        if phase.terminal or phase is Phase.HANDED_OVER:
            await self.outbox.drain()  # this delivery's last word: it must get out
        else:
            await self.ledger.renew(self.job, self.owner, self.lease_s)


def rollout_details(rollout: Rollout, deployment_id: str, arn: str, previous: str | None) -> EventDetails:
    details = EventDetails(
        running=rollout.running,
        desired=rollout.desired,
        pending=rollout.pending,
        failed_tasks=rollout.failed_tasks,
        deployment_id=deployment_id,
        task_definition_arn=arn,
        previous_task_definition_arn=previous,
        rollout_state_reason=rollout.reason or None,
        service_events=rollout.service_events,
        following="rollout_state",
    )
    progress = rollout.progress
    if progress is None:
        return details
    return details.model_copy(
        update={
            "following": "service_deployment",
            "service_deployment_arn": progress.service_deployment_arn,
            "service_deployment_status": progress.status,
            "strategy": progress.strategy,
            "lifecycle_stage": progress.stage,
            "traffic_percent": progress.traffic_percent,
            "bake_left_s": progress.bake_left_s,
            "hook": progress.hook,
            "hook_since": progress.hook_since,
        }
    )
