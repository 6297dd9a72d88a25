"""Asking ECS what a silent job's deployment became, before the run core calls it `lost`.

A worker may die without a word after UpdateService (an OOM, a killed invocation): its job goes
silent, and the run core would say `lost` of a rollout ECS may well have completed. So, when
the job had started a deployment (its events named the deployment and the revision), the run
core asks ECS once (`worker.confirm.ask_ecs`, bounded to `CONFIRM_S`) and `silent_end` turns
the answer into the job's end (`worker.verdict`): ECS's own end when the rollout ended
(`succeeded` "confirmed by ECS after the worker went silent", `rolled_back`, `failed`), else
`lost` as before, with what ECS says (or last said) of the deployment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker.confirm import ask_ecs
from worker.contract import DeployJob, EventDetails, Phase
from worker.ecs_calls import ServiceCalls
from worker.ledger import TargetLeases
from worker.reporter import rollout_details
from worker.rollout import Rollout, RolloutState
from worker.verdict import Silence, confirmed, replaced, replacer

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from orchestrator.state import JobState
    from worker.credentials import Clients

__all__ = ["SILENT_CAUSE", "Confirm", "SilentEnd", "ecs_confirm", "silent_end"]

SILENT_CAUSE = "the worker went silent"


@dataclass(frozen=True)
class SilentEnd:
    """A silent job's end: `lost` (nothing to say for sure), or ECS's own end of its rollout."""

    phase: Phase
    message: str
    details: EventDetails | None = None  # for ECS's end: what it reported of the deployment


# The job as planned, and what the run knows of it -> its end.
Confirm = Callable[[DeployJob, "JobState", float], Awaitable[SilentEnd]]


def silent_end(
    fault: str,
    job: JobState,
    now: Rollout | Silence | None,
    replaced_by: str | None = None,
) -> SilentEnd:
    """The end of a silent job (`fault`: how long it was silent, its last word) from what ECS
    says `now` of its deployment (None: ECS runs no deployment of its revision)."""
    deployment_id, arn = job.deployment_id, job.task_definition_arn
    assert deployment_id is not None and arn is not None
    if now is None:
        return SilentEnd(Phase.LOST, f"{fault}; ECS runs no deployment {deployment_id} of {arn}")
    last_seen = _last_seen(job)
    verdict = confirmed(
        fault,
        deployment_id,
        arn,
        now,
        unconfirmed=Phase.LOST,
        cause=SILENT_CAUSE,
        replaced_by=replaced_by,
        last_seen=last_seen,
    )
    if verdict.phase is Phase.LOST or not isinstance(now, Rollout):
        return SilentEnd(Phase.LOST, verdict.message)
    previous = job.details.previous_task_definition_arn
    return SilentEnd(verdict.phase, verdict.message, rollout_details(now, deployment_id, arn, previous))


def _last_seen(job: JobState) -> Rollout | None:
    """The counts the worker last reported, as a `Rollout` (for "last seen: ..."), if any."""
    d = job.details
    if d.running is None or d.desired is None:
        return None
    return Rollout(
        RolloutState.IN_PROGRESS,
        running=d.running,
        desired=d.desired,
        pending=d.pending or 0,
        failed_tasks=d.failed_tasks or 0,
    )


def ecs_confirm(clients: Clients, redis: Redis) -> Confirm:
    """The run core's `confirm`: one DescribeServices (DescribeServiceDeployments when the job
    follows one) per silent job, with the client of the job's access and region (`clients`),
    the target's lease (`redis`) to say who replaced it."""
    leases = TargetLeases(redis)

    async def confirm(job: DeployJob, state: JobState, silent_for: float) -> SilentEnd:
        fault = f"no event for {silent_for:.0f}s (last: {state.message})"
        assert state.deployment_id is not None and state.task_definition_arn is not None
        ecs = await clients.get("ecs", job.target.region, job.access)
        previous = state.details.previous_task_definition_arn
        now = await ask_ecs(
            ServiceCalls(ecs),
            job,
            state.deployment_id,
            state.task_definition_arn,
            service_deployment_arn=state.details.service_deployment_arn,
            previous=previous,
        )
        by = None
        if isinstance(now, Rollout) and now.terminal and replaced(now, previous):
            holder = await leases.holder(job)
            by = replacer(holder.run_id if holder else None, job.run_id)
        return silent_end(fault, state, now, by)

    return confirm
