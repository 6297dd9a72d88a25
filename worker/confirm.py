"""Asking ECS what a service runs, before a job reports an end ECS did not give.

A deadline, an AWS error or a crashed worker ends a job without ECS's word on its deployment:
ECS may have completed it meanwhile (then the job `succeeded`, "confirmed by ECS after" the
fault), failed or rolled it back, or still be rolling it out. One DescribeServices, bounded to
`CONFIRM_S`, says which; `worker.verdict` turns the answer into the job's end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from worker.aws_errors import aws_failure_message, error_message
from worker.contract import DeployJob, EventDetails, Phase
from worker.reporter import rollout_details
from worker.rollout import Rollout, RolloutState, evaluate_rollout
from worker.verdict import Silence, Verdict, confirmed, replaced, replacer, revision
from worker.watch import Watch

if TYPE_CHECKING:
    from worker.ecs_calls import ServiceCalls
    from worker.ledger import JobRecord, TargetLeases

__all__ = ["CONFIRM_S", "after_aws_error", "ask_ecs", "verdict_after"]

CONFIRM_S = 5.0  # one DescribeServices (botocore's few attempts included) at most this long


async def ask_ecs(
    calls: ServiceCalls,
    job: DeployJob,
    deployment_id: str | None,
    arn: str,
    within_s: float = CONFIRM_S,
    *,
    service_deployment_arn: str | None = None,
    previous: str | None = None,
) -> Rollout | Silence | None:
    """What ECS says now of `deployment_id` (running `arn`); without an id, of the PRIMARY
    deployment if it runs `arn`, None if it does not (UpdateService never took effect).
    Given the deployment's `service_deployment_arn`, ECS's word is that service deployment's
    (a blue/green PRIMARY is COMPLETED while it still bakes). `Silence` when ECS gives no
    answer within `within_s`, or an error."""
    started = time.monotonic()
    with anyio.move_on_after(within_s):
        try:
            if deployment_id is not None and service_deployment_arn is not None:
                watch = Watch(calls, job, deployment_id, arn, previous, service_deployment_arn)
                looked = await watch.look()
                return looked or Rollout(RolloutState.INACTIVE, reason="service deployment is gone")
            service = await calls.poll(job)
        except (ClientError, BotoCoreError) as exc:
            return Silence(time.monotonic() - started, error_message(exc))
        if service is None:
            return Rollout(RolloutState.INACTIVE, reason="service disappeared")
        if deployment_id is None:
            primary = next(
                (d for d in service.get("deployments") or () if d.get("status") == "PRIMARY"), None
            )
            if primary is None or primary.get("taskDefinition") != arn:
                return None
            deployment_id = str(primary["id"])
        return evaluate_rollout(service, deployment_id, arn)
    return Silence(within_s, f"no answer within {within_s:g}s")


async def verdict_after(
    calls: ServiceCalls,
    leases: TargetLeases,
    job: DeployJob,
    record: JobRecord,
    fault: str,
    *,
    cause: str,
    last_seen: Rollout | None = None,
) -> tuple[Verdict, EventDetails]:
    """The end of a job that `fault` stopped, from ECS: what the job's deployment (in its
    `record`) became; `failed` only when ECS does not say it completed or was rolled back.
    `cause` is the fault in a few words, for "confirmed by ECS after ..."."""
    arn, previous = record.task_definition_arn, record.previous_task_definition_arn
    if arn is None:
        return Verdict(
            Phase.FAILED, f"{fault}; nothing was changed (UpdateService was never sent)"
        ), EventDetails()
    now = await ask_ecs(
        calls,
        job,
        record.deployment_id,
        arn,
        service_deployment_arn=record.service_deployment_arn,
        previous=previous,
    )
    if now is None:
        return (
            Verdict(Phase.FAILED, f"{fault}; ECS runs no deployment of {revision(arn)}: nothing was changed"),
            EventDetails(task_definition_arn=arn, previous_task_definition_arn=previous),
        )
    deployment_id = record.deployment_id or (now.primary_deployment_id if isinstance(now, Rollout) else None)
    deployment_id = deployment_id or "unknown"
    by = None
    if isinstance(now, Rollout) and now.terminal and replaced(now, previous):
        holder = await leases.holder(job)
        by = replacer(holder.run_id if holder else None, job.run_id)
    verdict = confirmed(
        fault,
        deployment_id,
        arn,
        now,
        unconfirmed=Phase.FAILED,
        cause=cause,
        replaced_by=by,
        last_seen=last_seen,
    )
    if isinstance(now, Rollout):
        return verdict, rollout_details(now, deployment_id, arn, previous)
    return verdict, EventDetails(
        deployment_id=deployment_id, task_definition_arn=arn, previous_task_definition_arn=previous
    )


async def after_aws_error(
    calls: ServiceCalls,
    leases: TargetLeases,
    job: DeployJob,
    at_start: JobRecord,
    now: JobRecord,
    exc: ClientError | BotoCoreError,
) -> tuple[Verdict, EventDetails]:
    """The end of a job an AWS error stopped (its record when the worker took it, and now):
    `failed`, saying what the error left behind, unless ECS says what the job's deployment
    became (it may have completed)."""
    message = aws_failure_message(exc, at_start, now)
    if now.task_definition_arn is None:  # nothing was sent that could change the service
        return Verdict(Phase.FAILED, message), EventDetails()
    cause = f"an AWS error ({error_message(exc)})"
    return await verdict_after(calls, leases, job, now, message, cause=cause)
