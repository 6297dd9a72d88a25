"""A job's voice: its events, published in sequence, with its lease kept alive meanwhile.

Redis may go away while the job runs: its events then wait in the outbox and its lease
renewals fail quietly (nobody can take the job from a Redis that is down), and the job goes
on. A delivery's last event (terminal, or a hand-over) waits for Redis, and the terminal
phase is recorded in the ledger first, patiently, with whatever else of the record waited.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.contract import DeployJob, EventDetails, Phase, WorkerEvent
from worker.ledger import JobLedger
from worker.outbox import DRAIN_PATIENCE_S, Outbox
from worker.rollout import Rollout

__all__ = ["Reporter", "rollout_details"]


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

    async def emit(self, phase: Phase, message: str, details: EventDetails | None = None) -> None:
        event = WorkerEvent(
            run_id=self.job.run_id,
            job_id=self.job.job_id,
            seq=self.seq + 1,
            phase=phase,
            message=message,
            details=details or EventDetails(),
        )
        if phase.terminal:
            await self.ledger.record(self.job, wait_s=DRAIN_PATIENCE_S, terminal=phase.value)
        # The publisher numbers the event after any the job has (a duplicate's report may have
        # taken the number we asked for): go on from the number it was given.
        self.seq = await self.outbox.send(event)
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
