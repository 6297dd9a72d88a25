"""Whether a run's orchestrator is still there, told through Redis.

The orchestrator is the only judge of silence: a job that says nothing for `heartbeat` is
`lost` on its word (`orchestrator.run`). When the orchestrator itself is gone (SIGKILL, a
crashed CI runner, a closed laptop) nobody would judge, and `attach` would wait for ever. So
while a run's orchestrator runs it keeps a key (`worker.keys.run_alive`) set with a short TTL
(`TTL_S`, three refreshes), and deletes it when it ends, however it ends; next to it, the
run's meta (`worker.keys.run_meta`, 7 days like the plan) says what a judge needs: the
heartbeat, the queued window and whether the workers ran in the orchestrator's process
(local executor: they died with it) or elsewhere (Lambda: they go on).

`attach` follows while the key is there and takes the judging over once it is not
(`orchestrator.attach`). Redis being away only delays a refresh; three missed in a row let
the key expire, which `attach` then reads as the orchestrator being gone.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Literal

import anyio
from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.keys import run_alive, run_meta

__all__ = ["REFRESH_S", "TTL_S", "RunMeta", "is_alive", "kept_alive", "load_meta"]

log = logging.getLogger(__name__)

REFRESH_S = 2.0
TTL_S = 3 * REFRESH_S  # missing three refreshes in a row means gone
META_TTL_S = 7 * 24 * 3600  # as long as the plan and the job records
END_WAIT_S = 3.0  # at the end, how long to try to tell Redis (it may be the reason we stop)


class RunMeta(BaseModel):
    """What judging a run's jobs takes, besides its plan and its events."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    heartbeat_s: float
    queued_window_s: float | None = None  # a job still queued for a remote worker may wait this long
    workers: Literal["in-process", "remote"] = "in-process"
    orchestrator: str = ""  # host and pid, for messages
    started_at: float = 0.0
    ended_at: float | None = None
    ended: str | None = None  # "finished" (every job ended) or "stopped" (with jobs unfinished)


async def save_meta(redis: Redis, run_id: str, meta: RunMeta) -> None:
    await redis.set(run_meta(run_id), meta.model_dump_json(), ex=META_TTL_S)


async def load_meta(redis: Redis, run_id: str) -> RunMeta | None:
    """The run's meta; None for a run that saved none (older than this, or not ours)."""
    raw = await redis.get(run_meta(run_id))
    return None if raw is None else RunMeta.model_validate_json(raw)


async def is_alive(redis: Redis, run_id: str) -> bool:
    return bool(await redis.exists(run_alive(run_id)))


async def _refresh(redis: Redis, run_id: str, who: str) -> None:
    while True:
        await anyio.sleep(REFRESH_S)
        try:
            await redis.set(run_alive(run_id), who, ex=int(TTL_S))
        except (RedisError, OSError) as exc:  # Redis away: the next refresh may make it
            log.info("run %s: liveness not refreshed (%s)", run_id, exc)


@asynccontextmanager
async def kept_alive(
    redis: Redis,
    run_id: str,
    *,
    heartbeat_s: float,
    queued_window_s: float | None = None,
    remote_workers: bool = False,
    finished: Callable[[], bool] | None = None,
) -> AsyncIterator[RunMeta]:
    """Save the run's meta and keep its liveness key while the block runs; on the way out,
    however it is left, delete the key and note in the meta how the run ended (`finished()`
    says whether every job had ended)."""
    who = f"{socket.gethostname()} pid {os.getpid()}"
    meta = RunMeta(
        heartbeat_s=heartbeat_s,
        queued_window_s=queued_window_s,
        workers="remote" if remote_workers else "in-process",
        orchestrator=who,
        started_at=time.time(),
    )
    await save_meta(redis, run_id, meta)
    await redis.set(run_alive(run_id), who, ex=int(TTL_S))
    log.debug("run %s: liveness key %s kept (TTL %.0fs) by %s", run_id, run_alive(run_id), TTL_S, who)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_refresh, redis, run_id, who)
            try:
                yield meta
            finally:
                tg.cancel_scope.cancel()
    finally:
        ended = "finished" if finished is not None and finished() else "stopped"
        with anyio.CancelScope(shield=True), anyio.move_on_after(END_WAIT_S):
            try:
                await redis.delete(run_alive(run_id))
                await save_meta(
                    redis, run_id, meta.model_copy(update={"ended_at": time.time(), "ended": ended})
                )
            except (RedisError, OSError) as exc:  # the key expires by itself within TTL_S
                log.info("run %s: its end not recorded in Redis (%s)", run_id, exc)
