"""Lambda: a job waits for its deployment outside any invocation ("parks").

A Lambda worker that stayed alive to follow a 20-minute rollout would bill 20 minutes for a
few seconds of work. With `follow = "events"` and a timer queue configured, a worker instead
ends after its UpdateService (and after each look that is not an end): the follower's sleep
raises `Parked` (`ParkingWakeups`), the job's lease is released, its service stays held for it
(`worker.target_lease`, as for a hand-over), and the job is resumed, one look, by:

- ECS's event on the deployment (the events queue is an event source of the function too;
  `worker.deployment_map` finds the job), or
- its timer: a message on a standard SQS queue (FIFO queues have no per-message delay) with
  `DelaySeconds` = the wait the follower wanted (the safety poll, at most heartbeat/3, never
  past the deadline; <= 900 s): the safety poll, the deadline and the heartbeat in one.

One timer is pending per job (`timer_due` in the job's hash; a timer that is not the job's
current one does nothing), so wakes by events do not multiply timers. A wake that finds the job
held by another invocation sets the deployment's poke (`deployment_map.poke`) and stops; the
holder takes the poke before it parks, and once more after releasing the lease, and looks again:
no wake is lost, and the ledger makes a look twice harmless.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from worker.contract import DeployJob, Phase
from worker.deployment_map import poke, poked
from worker.engine import Deployer
from worker.follow import EVENTS_SAFETY_POLL_S, Parked
from worker.keys import job_hash, job_lease
from worker.wakeups import Wakeups

__all__ = ["MAX_DELAY_S", "ParkingWakeups", "TimerMessage", "is_timer", "resume", "run_parked", "set_timer"]

log = logging.getLogger(__name__)

MAX_DELAY_S = 900  # SQS's longest DelaySeconds
TIMER_FIELD = "timer_due"
TIMER_SLACK_S = 0.5  # a pending timer due this much later than wanted is still good enough

SendTimer = Callable[[str, int], Awaitable[None]]  # (body, delay seconds)


class TimerMessage(BaseModel):
    """The body of a job's timer message (our wire format: strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["timer"] = "timer"
    deployment_id: str
    due: str  # repr of the epoch instant: the job's `timer_due` while this timer is its current one
    job: DeployJob


def is_timer(body: object) -> bool:
    try:
        data = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("kind") == "timer"


class ParkingWakeups(Wakeups):
    """A follower's sleep that parks instead: it returns at once for a deployment this
    invocation was woken for (or poked meanwhile), and raises `Parked` otherwise."""

    parks = True

    def __init__(self, redis: Redis, job: DeployJob) -> None:
        super().__init__()
        self.redis = redis
        self._job = job
        self._resumed: set[str] = set()

    def wake(self, key: str, said: str = "", *, completed: bool = False) -> None:
        super().wake(key, said, completed=completed)
        self._resumed.add(key)

    async def sleep(self, key: str, seconds: float) -> bool:
        if key in self._resumed:
            self._resumed.discard(key)
            self.forget_pending(key)
            return True
        if await poked(self.redis, key):
            return True
        raise Parked(key, await self._park_for(seconds))

    async def _park_for(self, seconds: float) -> float:
        """Each look costs an invocation: wait at least the safety poll, never past the deadline."""
        options = self._job.options
        wanted = max(seconds, options.poll_max_s, min(EVENTS_SAFETY_POLL_S, options.heartbeat_s / 3))
        deadline = await self.redis.hget(job_hash(self._job.run_id, self._job.job_id), "deadline")
        left = float(deadline) - time.time() if deadline is not None else wanted
        return max(0.0, min(wanted, left))

    def forget_pending(self, key: str) -> None:
        self._pending.discard(key)

    def staying(self) -> Wakeups | None:
        return None  # a rollback of ours is followed in this invocation, by polling


async def run_parked(
    deployer: Deployer, wakeups: ParkingWakeups, job: DeployJob, hand_over_at: float | None, send: SendTimer
) -> Phase | None:
    """Run `job` until it ends, hands over, or parks (None; its timer is set)."""
    redis = wakeups.redis
    while True:
        try:
            return await deployer.run(job, hand_over_at=hand_over_at)
        except Parked as parked:
            await set_timer(redis, job, parked.deployment_id, parked.wait_s, send)
            if not await poked(redis, parked.deployment_id):
                return None
            wakeups.wake(parked.deployment_id)  # a wake came while we held the job: look again


async def set_timer(redis: Redis, job: DeployJob, deployment_id: str, wait_s: float, send: SendTimer) -> None:
    """Make sure the job is resumed within `wait_s` (one timer pending per job)."""
    now = time.time()
    wait = max(0.0, min(wait_s, MAX_DELAY_S))
    key = job_hash(job.run_id, job.job_id)
    current = await redis.hget(key, TIMER_FIELD)
    if current is not None and now < float(current) <= now + wait + TIMER_SLACK_S:
        return  # the pending timer comes soon enough
    due = repr(now + wait)
    await redis.hset(key, TIMER_FIELD, due)
    timer = TimerMessage(deployment_id=deployment_id, due=due, job=job)
    await send(timer.model_dump_json(), math.ceil(wait))
    log.info("job %s parked; its timer is due in %.0fs", job.job_id, wait)


async def resume(
    deployer: Deployer,
    wakeups: ParkingWakeups,
    job: DeployJob,
    deployment_id: str,
    hand_over_at: float | None,
    send: SendTimer,
    *,
    said: str = "",
    timer_due: str | None = None,
) -> Phase | None:
    """Resume a parked job for ECS's event (`said`) or its timer (`timer_due`): one look.

    Does nothing for a job that ended, or for a timer that is not the job's current one; pokes
    the job when another invocation holds it."""
    redis = wakeups.redis
    key = job_hash(job.run_id, job.job_id)
    terminal, due = (_text(v) for v in await redis.hmget(key, ["terminal", TIMER_FIELD]))
    if terminal is not None:
        return Phase(terminal)
    if timer_due is not None and due != timer_due:
        return None  # a timer replaced by a later one: that one resumes the job
    # Poke first, then look at the lease: a holder takes the poke after releasing the lease, so
    # whichever way the two interleave, one of us looks.
    await poke(redis, deployment_id)
    if await redis.exists(job_lease(job.run_id, job.job_id)):
        return None
    await poked(redis, deployment_id)  # ours to act on: take it back
    wakeups.wake(deployment_id, said)
    phase = await run_parked(deployer, wakeups, job, hand_over_at, send)
    if phase is Phase.HANDED_OVER:  # this invocation's time ran out: its timer resumes it at once
        await set_timer(redis, job, deployment_id, 0.0, send)
    return phase


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
