"""`ecs-fanout attach RUN_ID`: follow a run from another terminal, from its start to its end.

Everything a run did is in Redis: its plan (saved before any job starts), its meta and its
event stream. `EventFeed` replays the stream from the beginning and then follows it live,
each event once, so the attached view folds exactly the events the run's own orchestrator
folds and ends with the same summary. Attaching only reads: it sends nothing and touches no
AWS API. While the run's orchestrator lives, it alone decides that a silent job is lost;
once it is gone (`orchestrator.liveness`), attach applies the same rule itself
(`orchestrator.takeover`), so following a run whose orchestrator was killed ends too, with
a summary and the run's exit code. Ctrl-C stops the viewer, never the run. The command line
is `orchestrator.attach_command`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import cast

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.errors import RedisUnavailable
from orchestrator.exits import ExitCode
from orchestrator.feed import EventFeed, FeedItem, stream_id_key
from orchestrator.gate_events import GateEvent
from orchestrator.liveness import REFRESH_S, RunMeta, is_alive, load_meta
from orchestrator.plan import PlannedJob
from orchestrator.render import JsonRenderer, PlainRenderer
from orchestrator.renderer import Renderer
from orchestrator.run import load_plan
from orchestrator.state import JobState, RunState, exit_code
from orchestrator.stop_signals import stop_code
from orchestrator.takeover import Judge, local_time
from orchestrator.wave_state import WaveState
from orchestrator.wave_store import load_waves
from orchestrator.waves import WavePlan
from worker.keys import event_stream
from worker.publisher import connect_redis, redact_url

__all__ = ["attach", "follow_run"]

LIVENESS_CHECK_S = REFRESH_S / 2  # how often a follower looks whether the orchestrator is there


async def follow_run(
    state: RunState,
    redis: Redis,
    renderer: Renderer,
    *,
    planned: Sequence[PlannedJob] = (),
    meta: RunMeta | None = None,
) -> RunState:
    """Fold the run's events, replayed then live, into `state` until every job has ended.

    While the run's orchestrator is alive, only follows; once it is gone (and the replay
    caught up), judges silent jobs itself (`orchestrator.takeover.Judge`)."""
    renderer.started(state)
    run_id = state.run_id
    judge = Judge(state, planned, meta)
    feed = EventFeed(redis, run_id)
    tail = await _stream_tail(redis, run_id)
    to_local = local_time(await redis.time())
    send, receive = anyio.create_memory_object_stream[tuple[FeedItem, float]](max_buffer_size=math.inf)

    async def pump() -> None:
        async with send:
            async for event in feed.events():
                await send.send((event, to_local(feed.last_id)))

    def changed(job: JobState) -> None:
        renderer.changed(job, None)

    def gate_changed(wave: WaveState, event: GateEvent) -> None:
        renderer.gate_changed(wave, event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        next_check = 0.0
        while not state.done:
            now = time.time()
            caught_up = stream_id_key(feed.last_id) >= tail  # the replay reached today's end
            if caught_up and now >= next_check:
                next_check = now + LIVENESS_CHECK_S
                try:
                    alive = await is_alive(redis, run_id)
                except (RedisError, OSError):  # Redis away: nobody can tell; the feed reconnects
                    pass
                else:
                    judge.orchestrator_seen(alive, now, changed, gate_changed)
            deadline = min(
                next_check if caught_up else now + LIVENESS_CHECK_S, judge.next_deadline() or math.inf
            )
            with anyio.move_on_after(max(0.0, deadline - time.time())):
                _fold(state, renderer, *await receive.receive())
                continue
            judge.judge(time.time(), changed)
        tg.cancel_scope.cancel()  # unsubscribe now
    renderer.finished(state)
    return state


def _fold(state: RunState, renderer: Renderer, item: FeedItem, received_at: float) -> None:
    if isinstance(item, GateEvent):
        wave = state.apply_gate(item)
        if wave is not None:
            renderer.gate_changed(wave, item)
        return
    job = state.apply(item, received_at=received_at)
    if job is not None:
        renderer.changed(job, item)


async def _stream_tail(redis: Redis, run_id: str) -> tuple[int, int]:
    """The id of the stream's last event now: the replay has caught up once it is seen."""
    last = cast("list[tuple[bytes, object]]", await redis.xrevrange(event_stream(run_id), count=1))
    return stream_id_key(last[0][0].decode()) if last else (0, 0)


async def _load(
    redis_url: str, run_id: str
) -> tuple[list[PlannedJob] | None, RunMeta | None, WavePlan | None]:
    redis = connect_redis(redis_url, max_connections=2)
    try:
        return await load_plan(redis, run_id), await load_meta(redis, run_id), await load_waves(redis, run_id)
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {redact_url(redis_url)} ({exc}): is REDIS_URL the run's, and is it up?"
        ) from exc
    finally:
        await redis.aclose()


def attach(run_id: str, redis_url: str, output: str, exit_on_done: bool) -> int:
    """Follow run `run_id` to its end; its exit code (as the run's own), 2 for an unknown
    run id, 130 when stopped before the end."""
    planned, meta, waves = anyio.run(_load, redis_url, run_id)
    if planned is None:
        print(
            f"ecs-fanout: no run {run_id!r} in Redis (a run keeps its plan for 7 days; "
            "is REDIS_URL the run's?)",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    state = RunState.from_plan(run_id, planned, waves)

    async def follow(renderer: Renderer) -> None:
        redis = connect_redis(redis_url, max_connections=4)
        try:
            await follow_run(state, redis, renderer, planned=planned, meta=meta)
        finally:
            with anyio.CancelScope(shield=True):
                await redis.aclose()

    stopped = f"ecs-fanout: stopped following run {run_id}; the run itself goes on"
    if output == "tui":
        from tui import run_tui  # Textual is imported only when the live view is used

        code = run_tui(state, follow, exit_on_done=exit_on_done, confirm_quit=False)
        if code == ExitCode.INTERRUPTED:
            print(stopped, file=sys.stderr)
            return stop_code()
        return code
    renderer: Renderer = JsonRenderer() if output == "json" else PlainRenderer()
    try:
        anyio.run(follow, renderer)
    except KeyboardInterrupt:
        print(stopped, file=sys.stderr)
        return stop_code()
    return exit_code(state)
