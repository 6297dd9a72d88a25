"""A person's word on a run: approve a wave's gate, or stop the run. Kept in the run's Redis.

Decisions are keys under the run's namespace (`worker.keys`): `approval:WAVE` (approve or
stop, by whom, when) and `stop` (the whole run). Anyone who reaches the run's Redis may write
them: the live view's prompt, `ecs-fanout approve RUN_ID` and `ecs-fanout stop RUN_ID` from a
CI job or another terminal. The run's gate reads them (`orchestrator.gate_run`), so a decision
given while nobody is waiting yet (`approve --wave NAME` ahead of the wave) is kept for when
the gate comes to it. While a gate waits for a person, `awaiting` names its wave: that is how
`approve RUN_ID` without `--wave` knows what it approves. Decisions live 7 days, like the run.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time
from typing import Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.keys import run_approval, run_awaiting, run_stop

__all__ = [
    "Decided",
    "Decision",
    "awaiting",
    "decide",
    "decision_for",
    "request_stop",
    "set_awaiting",
    "stop_requested",
    "who",
]

log = logging.getLogger(__name__)

Decision = Literal["approve", "stop"]
DECISION_TTL_S = 7 * 24 * 3600
RETRY_S = 1.0


class Decided(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    by: str
    at: float = Field(default_factory=time.time)


def who() -> str:
    """`user@host`: who decided, as the run says it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


async def decide(redis: Redis, run_id: str, wave: str, decision: Decision, by: str) -> Decided:
    """Record a decision on `wave`'s approval (stop: the run stops at that gate)."""
    decided = Decided(decision=decision, by=by)
    await redis.set(run_approval(run_id, wave), decided.model_dump_json(), ex=DECISION_TTL_S)
    return decided


async def request_stop(redis: Redis, run_id: str, by: str) -> Decided:
    """`ecs-fanout stop`: the run starts no further wave."""
    decided = Decided(decision="stop", by=by)
    await redis.set(run_stop(run_id), decided.model_dump_json(), ex=DECISION_TTL_S)
    return decided


async def stop_requested(redis: Redis, run_id: str) -> Decided | None:
    """A stop of the run, if one was asked; None too while Redis is away (the next look sees it)."""
    try:
        raw = await redis.get(run_stop(run_id))
    except (RedisError, OSError):
        return None
    return None if raw is None else Decided.model_validate_json(raw)


async def decision_for(redis: Redis, run_id: str, wave: str) -> Decided | None:
    """What was decided of `wave`'s approval: a stop of the run wins over an approval."""
    stop = await stop_requested(redis, run_id)
    if stop is not None:
        return stop
    raw = await redis.get(run_approval(run_id, wave))
    return None if raw is None else Decided.model_validate_json(raw)


async def set_awaiting(redis: Redis, run_id: str, wave: str | None) -> None:
    """Say which wave waits for a person now (None: none does); while Redis is away, again
    every second (`approve` without `--wave` reads it)."""
    while True:
        try:
            if wave is None:
                await redis.delete(run_awaiting(run_id))
            else:
                await redis.set(run_awaiting(run_id), wave, ex=DECISION_TTL_S)
            return
        except (RedisError, OSError) as exc:
            log.warning("could not say in Redis that wave %s waits (%s); trying again", wave, exc)
            await anyio.sleep(RETRY_S)


async def awaiting(redis: Redis, run_id: str) -> str | None:
    raw = await redis.get(run_awaiting(run_id))
    return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)
