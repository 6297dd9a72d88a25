"""The run core: one anyio task group that subscribes, starts the jobs and folds their events.

Order matters: the feed is subscribed before the first job can publish. Events are pushed by
Redis; the only timer is the silence deadline of the quietest running job, after which that
job is reported `lost`.

Redis may go away during the run and come back. Silence counts only while we listen: no job is
found lost while the feed is disconnected, and after it reconnects every running job gets a
whole `heartbeat` again (its worker held its events meanwhile and publishes them now). And
the run's plan is written back if the Redis that came back lost it, so that `attach` still
knows the run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.feed import EventFeed
from orchestrator.plan import PlannedJob
from orchestrator.renderer import Renderer  # re-exported: its home is `orchestrator.renderer`
from orchestrator.state import RunState
from worker.contract import DeployJob, Phase, WorkerEvent
from worker.keys import run_plan

__all__ = ["Executor", "Renderer", "load_plan", "run_jobs", "save_plan"]

log = logging.getLogger(__name__)

CRASH_SEQ = 1 << 40  # beyond any seq a worker reaches: a crash report always folds in
WORKER_GRACE_S = 5.0  # after the last terminal event, time for workers to release their leases


class Executor(Protocol):
    async def prepare(self) -> None:
        """Set-up that runs while the feed subscribes; jobs start only after both."""

    async def run_all(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        """Start every job: `on_start` when a job is handed to a worker, `on_failed` when it
        never will be or its worker died (the message says why)."""


PLAN_TTL_S = 7 * 24 * 3600
_PLAN = TypeAdapter(list[PlannedJob])


async def save_plan(
    redis: Redis, run_id: str, planned: Sequence[PlannedJob], *, if_missing: bool = False
) -> None:
    """Keep the run's plan for `attach` (`if_missing`: unless it is there already)."""
    await redis.set(run_plan(run_id), _PLAN.dump_json(list(planned)), ex=PLAN_TTL_S, nx=if_missing)


async def load_plan(redis: Redis, run_id: str) -> list[PlannedJob] | None:
    """The plan a run saved, or None when no such run is known (or it expired)."""
    raw = await redis.get(run_plan(run_id))
    return None if raw is None else _PLAN.validate_json(raw)


def _restart_silence(state: RunState, now: float) -> None:
    """We heard nothing while Redis was away: count every running job's silence from `now`."""
    for job in state.jobs.values():
        if not job.terminal and job.last_event_at is not None:
            job.last_event_at = max(job.last_event_at, now)


async def _pump(feed: EventFeed, send: MemoryObjectSendStream[WorkerEvent]) -> None:
    async with send:
        async for event in feed.events():
            await send.send(event)


async def _fold(
    state: RunState,
    receive: MemoryObjectReceiveStream[WorkerEvent],
    renderer: Renderer,
    heartbeat_s: float,
    queued_window_s: float | None,
    listening: Callable[[], bool],
) -> None:
    while not state.done:
        deadline = state.next_silence_deadline(heartbeat_s, queued_window_s)
        timeout = math.inf if deadline is None else max(0.0, deadline - time.time())
        with anyio.move_on_after(timeout):
            event = await receive.receive()
            job = state.apply(event, received_at=time.time())
            if job is not None:
                renderer.changed(job, event)
            continue
        now = time.time()
        if not listening():  # Redis is away: nobody could have heard them
            _restart_silence(state, now)
            continue
        for job in state.silent_jobs(now, heartbeat_s, queued_window_s):
            renderer.changed(state.mark_lost(job.job_id, now), None)


async def run_jobs(
    state: RunState,
    planned: Sequence[PlannedJob],
    redis: Redis,
    executor: Executor,
    renderer: Renderer,
    *,
    heartbeat_s: float,
    queued_window_s: float | None = None,
) -> RunState:
    """Run every planned job to a terminal phase; `state` is updated in place as events come."""

    async def after_reconnect() -> None:
        _restart_silence(state, time.time())
        try:  # a Redis that came back empty lost it
            await save_plan(redis, state.run_id, planned, if_missing=True)
        except (RedisConnectionError, RedisTimeoutError):
            raise  # away again: the feed reconnects and comes back here
        except RedisError as exc:  # e.g. a read-only replica: it costs `attach`, not the run
            log.info("could not write the run's plan back to Redis (%s)", exc)

    feed = EventFeed(redis, state.run_id, on_reconnect=after_reconnect)
    send, receive = anyio.create_memory_object_stream[WorkerEvent](max_buffer_size=math.inf)
    renderer.started(state)
    await save_plan(redis, state.run_id, planned)

    def on_start(job: DeployJob) -> None:
        state.mark_started(job.job_id, time.time())

    def on_failed(job: DeployJob, message: str) -> None:
        failure = WorkerEvent(
            run_id=job.run_id, job_id=job.job_id, seq=CRASH_SEQ, phase=Phase.FAILED, message=message
        )
        send.send_nowait(failure)

    workers_done = anyio.Event()

    async def run_workers() -> None:
        await executor.run_all([p.job for p in planned], on_start, on_failed)
        workers_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(_pump, feed, send.clone())
        await executor.prepare()
        await feed.wait_subscribed()
        tg.start_soon(run_workers)
        await _fold(state, receive, renderer, heartbeat_s, queued_window_s, lambda: feed.connected)
        with anyio.move_on_after(WORKER_GRACE_S):
            await workers_done.wait()
        tg.cancel_scope.cancel()
    renderer.finished(state)
    return state
