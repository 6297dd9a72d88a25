"""Which job owns an ECS deployment, in Redis: how ECS's events find their job.

ECS's events name a deployment (`ecs-svc/N`), not our run or job. When UpdateService returns
(or a job adopts a deployment still rolling out), the worker writes the deployment's owner:
the whole job (it carries a role to assume, never credentials), so that whoever reads an
event, the local executor's feed or a Lambda invocation, can wake or resume that job. The key
expires a while after the job's deadline. Also here: the once-only mark of an ECS event (its
EventBridge id: deliveries are at least once) and a deployment's "poke" (a wake that found
the job held by another invocation, which looks again before it parks: `worker.park`).

Keys are not per run (an event names no run): `ecs-fanout:deployment:{ID}`,
`ecs-fanout:ecs-event:{ID}`, `ecs-fanout:poke:{ID}`, each its own hash tag.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from worker import keys
from worker.contract import DeployJob
from worker.redis_outage import REDIS_DOWN

__all__ = ["EVENT_SEEN_S", "DeploymentOwner", "first_sight", "owner_of", "poke", "poked", "remember"]

log = logging.getLogger(__name__)

AFTER_DEADLINE_S = 3600.0  # the owner stays known this long past the job's timeout
EVENT_SEEN_S = 24 * 3600  # EventBridge retries for up to 24 hours
POKE_S = 900  # a poke nobody collects is dropped after this long


class DeploymentOwner(BaseModel):
    """The value of a deployment's key (our wire format: strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment_id: str
    job: DeployJob
    # Its follower parks (a Lambda worker, `worker.park`): Lambda's events queue resumes it. Else
    # it follows in a process of its own (the local executor's), whose feed wakes it.
    parked: bool = False


async def remember(redis: Redis, job: DeployJob, deployment_id: str, *, parked: bool = False) -> None:
    """`deployment_id` is `job`'s (`parked`: its follower parks). Never fails the job: without
    it, polling still sees the end."""
    value = DeploymentOwner(deployment_id=deployment_id, job=job, parked=parked).model_dump_json()
    try:
        await redis.set(
            keys.deployment_owner(deployment_id), value, ex=int(job.options.timeout_s + AFTER_DEADLINE_S)
        )
    except REDIS_DOWN as exc:
        log.info(
            "job %s: owner of %s not recorded, Redis is unreachable (%s)", job.job_id, deployment_id, exc
        )


async def owner_of(redis: Redis, deployment_id: str) -> DeploymentOwner | None:
    """Whose deployment `deployment_id` is; None when it is nobody's we know."""
    raw = await redis.get(keys.deployment_owner(deployment_id))
    if raw is None:
        return None
    return DeploymentOwner.model_validate_json(raw)


async def first_sight(redis: Redis, event_id: str) -> bool:
    """True the first time ECS's event `event_id` is seen (a redelivery is False)."""
    if not event_id:
        return True
    return bool(await redis.set(keys.ecs_event_seen(event_id), "1", nx=True, ex=EVENT_SEEN_S))


async def poke(redis: Redis, deployment_id: str) -> None:
    """A wake for `deployment_id` its follower must not miss (it is busy elsewhere)."""
    await redis.set(keys.poke(deployment_id), "1", ex=POKE_S)


async def poked(redis: Redis, deployment_id: str) -> bool:
    """Whether a wake came meanwhile (taking it: the next call is False)."""
    try:
        return await redis.getdel(keys.poke(deployment_id)) is not None
    except REDIS_DOWN:
        return False
