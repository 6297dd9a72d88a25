"""The run core: one anyio task group that subscribes, starts the jobs and folds their events.

Order matters: the feed is subscribed before the first job can publish. Events are pushed by
Redis; the only timer is the silence deadline of the quietest running job, after which that
job is reported `lost`. With a `confirm` (`orchestrator.confirm_silent`), a silent job that
had started a deployment is first asked of ECS, in a task of its own (folding goes on): ECS's
end of the rollout is published to the run's stream (seq `ORCHESTRATOR_SEQ`: `attach` replays
the same end, and the worker's own verdict still beats it), else the job is `lost`, with what
ECS said.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.confirm_silent import Confirm, SilentEnd
from orchestrator.feed import EventFeed, FeedItem
from orchestrator.gate_events import GateEvent
from orchestrator.plan import PlannedJob
from orchestrator.renderer import Renderer  # re-exported: its home is `orchestrator.renderer`
from orchestrator.state import ORCHESTRATOR_SEQ, JobState, RunState
from worker.contract import DeployJob, Phase, WorkerEvent
from worker.keys import run_plan
from worker.publisher import EventPublisher

__all__ = ["Executor", "Renderer", "Schedule", "StartJobs", "WaitUntil", "load_plan", "run_jobs", "save_plan"]

log = logging.getLogger(__name__)

CRASH_SEQ = ORCHESTRATOR_SEQ  # beyond any seq a worker reaches: a crash report always folds in
ASK_S = 8.0  # a silent job's question to ECS (credentials, then one bounded DescribeServices)
PUBLISH_S = 5.0  # publishing ECS's end of a silent job's rollout, at most this long
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


StartJobs = Callable[[Sequence[DeployJob]], Awaitable[None]]
WaitUntil = Callable[[Callable[[], bool]], Awaitable[None]]
Schedule = Callable[[StartJobs, WaitUntil], Awaitable[None]]
"""When to start which jobs (`orchestrator.wave_run`): given a way to start jobs and a way to wait
until the run's state says something; it returns when it has started every job it will."""


class _Changes:
    """Wakes whoever waits on the run's state each time an event is folded in."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._event.wait()


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


async def _pump(feed: EventFeed, send: MemoryObjectSendStream[_Item]) -> None:
    async with send:
        async for event in feed.events():
            await send.send(event)


@dataclass(frozen=True)
class _Asked:
    """ECS was asked of a silent job (when it had said `seq` last): `lost`, with this message,
    unless it spoke or ended meanwhile (None: ECS's end was published and sent as an event)."""

    job_id: str
    seq: int
    lost_message: str | None


_Item = FeedItem | _Asked


class _Silence:
    """What the run core does with a silent job: `lost` at once, or ask ECS first (`confirm`)."""

    def __init__(
        self,
        state: RunState,
        planned: Sequence[PlannedJob],
        redis: Redis,
        send: MemoryObjectSendStream[_Item],
        confirm: Confirm | None,
    ) -> None:
        self._state = state
        self._jobs = {p.job.job_id: p.job for p in planned}
        self._publisher = EventPublisher(redis)
        self._send = send
        self._confirm = confirm

    def found(self, job: JobState, now: float, start: Callable[..., object], renderer: Renderer) -> None:
        if self._confirm is None or job.deployment_id is None or job.task_definition_arn is None:
            renderer.changed(self._state.mark_lost(job.job_id, now), None)
            return
        job.confirming = True
        start(self._ask, job, now - (job.last_event_at or now))

    async def _ask(self, job: JobState, silent_for: float) -> None:
        assert self._confirm is not None
        seq = job.last_seq
        lost = f"no event for {silent_for:.0f}s (last: {job.message})"
        end: SilentEnd | None = None
        try:
            with anyio.move_on_after(ASK_S):
                end = await self._confirm(self._jobs[job.job_id], job, silent_for)
        except Exception as exc:  # whatever stopped the question: `lost`, as without asking
            log.warning("could not ask ECS about silent job %s: %r", job.name, exc)
            end = SilentEnd(Phase.LOST, f"{lost}; could not ask ECS ({exc})")
        if end is None:
            end = SilentEnd(Phase.LOST, f"{lost}; ECS did not answer within {ASK_S:g}s")
        if end.phase is Phase.LOST or job.terminal or job.last_seq != seq:
            self._send.send_nowait(_Asked(job.job_id, seq, end.message))
            return
        event = WorkerEvent(
            run_id=self._state.run_id,
            job_id=job.job_id,
            seq=ORCHESTRATOR_SEQ,
            phase=end.phase,
            message=end.message,
            details=end.details or job.details,
        )
        try:
            with anyio.fail_after(PUBLISH_S):
                event = event.model_copy(update={"seq": (await self._publisher.publish(event)).seq})
        except (RedisError, OSError, TimeoutError) as exc:  # Redis away: the run still has ECS's word
            log.warning("could not publish the end of silent job %s (%r): `attach` misses it", job.name, exc)
        self._send.send_nowait(event)
        self._send.send_nowait(_Asked(job.job_id, seq, None))

    def answered(self, asked: _Asked, now: float, renderer: Renderer) -> None:
        job = self._state.jobs[asked.job_id]
        job.confirming = False
        if asked.lost_message is None or job.terminal or job.last_seq != asked.seq:
            return  # ECS's end folded in, or the job spoke or ended meanwhile
        lost = self._state.mark_lost(job.job_id, now)
        lost.message = asked.lost_message
        renderer.changed(lost, None)


async def _fold(
    state: RunState,
    receive: MemoryObjectReceiveStream[_Item],
    renderer: Renderer,
    heartbeat_s: float,
    queued_window_s: float | None,
    listening: Callable[[], bool],
    silence: _Silence,
    start: Callable[..., object],
    changes: _Changes,
) -> None:
    while not state.done:
        deadline = state.next_silence_deadline(heartbeat_s, queued_window_s)
        timeout = math.inf if deadline is None else max(0.0, deadline - time.time())
        with anyio.move_on_after(timeout):
            _fold_one(state, await receive.receive(), renderer, silence)
            changes.notify()
            continue
        now = time.time()
        if not listening():  # Redis is away: nobody could have heard them
            _restart_silence(state, now)
            continue
        for job in state.silent_jobs(now, heartbeat_s, queued_window_s):
            silence.found(job, now, start, renderer)
        changes.notify()


def _fold_one(state: RunState, item: _Item, renderer: Renderer, silence: _Silence) -> None:
    if isinstance(item, _Asked):
        silence.answered(item, time.time(), renderer)
    elif isinstance(item, GateEvent):
        wave = state.apply_gate(item)
        if wave is not None:
            renderer.gate_changed(wave, item)
    else:
        job = state.apply(item, received_at=time.time())
        if job is not None:
            renderer.changed(job, item)


async def run_jobs(
    state: RunState,
    planned: Sequence[PlannedJob],
    redis: Redis,
    executor: Executor,
    renderer: Renderer,
    *,
    heartbeat_s: float,
    queued_window_s: float | None = None,
    confirm: Confirm | None = None,
    schedule: Schedule | None = None,
    replayed_to: str = "0-0",
) -> RunState:
    """Run every planned job to a terminal phase; `state` is updated in place as events come.
    `confirm` asks ECS about a silent job's deployment before it is called `lost`; `schedule`
    starts the jobs (by default, all at once); `replayed_to`: the stream id up to which `state`
    was folded already (a run taken over)."""

    async def after_reconnect() -> None:
        _restart_silence(state, time.time())
        try:  # a Redis that came back empty lost it
            await save_plan(redis, state.run_id, planned, if_missing=True)
        except (RedisConnectionError, RedisTimeoutError):
            raise  # away again: the feed reconnects and comes back here
        except RedisError as exc:  # e.g. a read-only replica: it costs `attach`, not the run
            log.info("could not write the run's plan back to Redis (%s)", exc)

    feed = EventFeed(redis, state.run_id, last_id=replayed_to, on_reconnect=after_reconnect)
    changes = _Changes()
    send, receive = anyio.create_memory_object_stream[_Item](max_buffer_size=math.inf)
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

    async def start(jobs: Sequence[DeployJob]) -> None:
        await executor.run_all(jobs, on_start, on_failed)

    async def run_workers() -> None:
        if schedule is None:
            await start([p.job for p in planned])
        else:
            await schedule(start, changes.wait_until)
        workers_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(_pump, feed, send.clone())
        await executor.prepare()
        await feed.wait_subscribed()
        tg.start_soon(run_workers)
        silence = _Silence(state, planned, redis, send.clone(), confirm)
        await _fold(
            state,
            receive,
            renderer,
            heartbeat_s,
            queued_window_s,
            lambda: feed.connected,
            silence,
            tg.start_soon,
            changes,
        )
        with anyio.move_on_after(WORKER_GRACE_S):
            await workers_done.wait()
        tg.cancel_scope.cancel()
    renderer.finished(state)
    return state
