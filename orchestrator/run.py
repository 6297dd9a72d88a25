"""The run core: one anyio task group that subscribes, starts the jobs and folds their events.

Order matters: the feed is subscribed before the first job can publish. Events are pushed by
Redis; the only timer is the silence deadline of the quietest running job, after which that
job is reported `lost`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import TypeAdapter
from redis.asyncio import Redis

from orchestrator.feed import EventFeed
from orchestrator.plan import PlannedJob
from orchestrator.state import JobState, RunState
from worker.contract import DeployJob, Phase, WorkerEvent
from worker.keys import run_plan

__all__ = ["Executor", "Renderer", "load_plan", "run_jobs", "save_plan"]

CRASH_SEQ = 1 << 40  # beyond any seq a worker reaches: a crash report always folds in
WORKER_GRACE_S = 5.0  # after the last terminal event, time for workers to release their leases


class Renderer(Protocol):
    def started(self, state: RunState) -> None: ...
    def setup_changed(self, step: str, status: str, message: str) -> None:
        """A set-up step of the executor (e.g. `lambda`, `queue`, `mapping`) moved on."""

    def changed(self, job: JobState, event: WorkerEvent | None) -> None: ...
    def finished(self, state: RunState) -> None: ...


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


async def save_plan(redis: Redis, run_id: str, planned: Sequence[PlannedJob]) -> None:
    await redis.set(run_plan(run_id), _PLAN.dump_json(list(planned)), ex=PLAN_TTL_S)


async def load_plan(redis: Redis, run_id: str) -> list[PlannedJob] | None:
    """The plan a run saved, or None when no such run is known (or it expired)."""
    raw = await redis.get(run_plan(run_id))
    return None if raw is None else _PLAN.validate_json(raw)


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
    feed = EventFeed(redis, state.run_id)
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
        await _fold(state, receive, renderer, heartbeat_s, queued_window_s)
        with anyio.move_on_after(WORKER_GRACE_S):
            await workers_done.wait()
        tg.cancel_scope.cancel()
    renderer.finished(state)
    return state
