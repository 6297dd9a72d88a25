"""Our own rollback of a job's deployment: ECS's StopServiceDeployment where it allows it, else
UpdateService back to the previous revision; either way followed to its end.

StopServiceDeployment(stopType=ROLLBACK) is ECS's own way back for every strategy: a blue/green
deployment shifts traffic back to the revision still running beside it instead of starting
another deployment, and a hook-held one is released. ECS takes it only while the deployment is
under way (PENDING, IN_PROGRESS); a deployment ECS already stopped or failed, one we follow
through `rolloutState`, or a refusal, goes back the way it always did: UpdateService.

Every result is a sentence; one that starts "rolled back" means the service is back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from worker.contract import DeployJob, EventDetails, Phase
from worker.ecs_calls import JobAborted, Unavailable
from worker.follow import Followed, follow
from worker.patience import NoAnswer
from worker.reporter import rollout_details
from worker.rollout import RolloutState, primary_flight
from worker.strategy import STOPPABLE
from worker.verdict import timed_out
from worker.watch import Watch, open_watch

if TYPE_CHECKING:
    from worker.ecs_calls import ServiceCalls
    from worker.patience import Patience

__all__ = ["after_deadline", "revert_by_stop", "roll_back"]


async def roll_back(watch: Watch, patience: Patience, *, stoppable: bool) -> str:
    """Put `watch.previous` back; `stoppable`: the service deployment is still under way."""
    previous, job = watch.previous, watch.job
    if previous is None:
        return "no previous revision is known, nothing rolled back"
    rolling = patience.at(Phase.ROLLING_BACK, deadline=_rollback_deadline(watch, patience))
    refused = ""
    if stoppable and watch.service_deployment_arn is not None:
        stopped = await _stop(watch, rolling)
        if stopped is not None:
            return stopped
        refused = "; ECS refused StopServiceDeployment, so by UpdateService"
    await rolling.reporter.emit(
        Phase.ROLLING_BACK, f"rolling back to {previous}", EventDetails(task_definition_arn=previous)
    )
    try:
        deployment_id = await watch.calls.update(job, previous, rolling)
    except JobAborted as exc:
        return f"rollback to {previous} failed: {exc}"
    except NoAnswer as exc:
        return f"rollback to {previous} not confirmed: {exc}; check the service"
    # Followed like the job's own deployment: through its service deployment (a blue/green one
    # is back only once its bake is over), with the other jobs' looks; not woken by events.
    back = await open_watch(watch.calls, job, rolling, deployment_id, previous, None, looker=watch.looker)
    return _said(await follow(back, rolling), previous, deployment_id) + refused


def _rollback_deadline(watch: Watch, patience: Patience) -> float:
    """The rollback gets its own budget: the job's deadline may already be spent. It is not
    handed over (a continuation would resume our failed deployment, not the rollback), so it
    ends, unfinished if need be, before the worker's time does."""
    deadline = time.time() + max(watch.job.options.timeout_s, 60.0)
    hand_over_at = patience.reporter.hand_over_at
    return deadline if hand_over_at is None else min(deadline, hand_over_at)


async def _stop(watch: Watch, rolling: Patience) -> str | None:
    """StopServiceDeployment(ROLLBACK), followed; None when ECS refused it or the deployment
    completed before the stop took (then UpdateService goes back)."""
    arn = watch.service_deployment_arn
    assert arn is not None
    try:
        refusal = await watch.calls.stop_service_deployment(watch.job, arn, rolling)
    except NoAnswer as exc:
        return f"rollback to {watch.previous} not confirmed: {exc}; check the service"
    if refusal is not None:
        return None
    await rolling.reporter.emit(
        Phase.ROLLING_BACK,
        f"asked ECS to roll service deployment {arn.rsplit('/', 1)[-1]} back to {watch.previous} "
        "(StopServiceDeployment)",
        EventDetails(task_definition_arn=watch.previous, service_deployment_arn=arn),
    )
    followed = await follow(watch.for_rollback(), rolling)
    if followed.rollout is not None and followed.rollout.state is RolloutState.COMPLETED:
        return None
    return _said(followed, watch.previous, watch.deployment_id, how=" by ECS (StopServiceDeployment)")


def _said(followed: Followed, previous: str | None, deployment_id: str, how: str = "") -> str:
    rollout = followed.rollout
    done = RolloutState.ROLLED_BACK if how else RolloutState.COMPLETED
    if rollout is not None and rollout.state is done:
        return f"rolled back to {previous}{how}"
    if rollout is not None:
        state = f"ended {rollout.state}: {rollout.reason}"
    elif followed.silence is not None:
        state = f"not confirmed: no answer from ECS ({followed.silence.error})"
    else:
        state = "did not finish in time"
    return f"rollback to {previous} (deployment {deployment_id}){how} {state}"


async def after_deadline(watch: Watch, patience: Patience, followed: Followed) -> tuple[str, EventDetails]:
    """The deadline passed with the deployment unfinished (as last seen): roll it back when ECS
    answers and rollback is on; the message says what ECS showed last, and the details."""
    job, seen_last = watch.job, followed.last_seen
    if seen_last is not None:
        details = rollout_details(seen_last, watch.deployment_id, watch.arn, watch.previous)
    else:
        details = EventDetails(
            deployment_id=watch.deployment_id,
            task_definition_arn=watch.arn,
            service_deployment_arn=watch.service_deployment_arn,
        )
    if followed.silence is not None:
        note = "not rolled back: ECS is not answering, check the service"
    elif job.options.rollback:
        progress = seen_last.progress if seen_last is not None else None
        note = await roll_back(watch, patience, stoppable=progress is None or progress.status in STOPPABLE)
    else:
        note = "rollback is off"
    message = timed_out(job.options.timeout_s, watch.deployment_id, seen_last, followed.silence, note)
    return message, details


async def revert_by_stop(
    calls: ServiceCalls, job: DeployJob, service: Mapping[str, Any], patience: Patience
) -> tuple[Phase, str, EventDetails] | None:
    """A revert job (`job.revision`) whose service is still rolling out of that revision (a
    blue/green deployment baking, say): ECS rolls that service deployment back (traffic goes
    back to the revision still running beside it). None: no such deployment under way, or ECS
    refused; the revert then goes by UpdateService."""
    deployments: Sequence[Mapping[str, Any]] = service.get("deployments") or ()
    flight = primary_flight(service)
    beside = any(d.get("status") == "ACTIVE" and d.get("taskDefinition") == job.revision for d in deployments)
    if flight is None or not beside:
        return None
    deployment_id = flight.deployment_id
    try:
        sd_arn = await calls.find_service_deployment(job, deployment_id, patience)
    except Unavailable:
        return None
    sd = await calls.describe_service_deployment(job, sd_arn, patience) if sd_arn else None
    if sd_arn is None or sd is None or sd.get("status") not in STOPPABLE:
        return None
    watch = Watch(calls, job, deployment_id, flight.task_definition, job.revision, sd_arn)
    said = await _stop(watch, patience.at(Phase.ROLLING_BACK, deadline=_rollback_deadline(watch, patience)))
    if said is None:
        return None
    phase = Phase.SUCCEEDED if said.startswith("rolled back") else Phase.FAILED
    return phase, said, EventDetails(task_definition_arn=job.revision, service_deployment_arn=sd_arn)
