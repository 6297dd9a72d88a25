"""`ecs-fanout attach RUN_ID`: follow a run from another terminal, from its start to its end.

Everything a run did is in Redis: its plan (saved before any job starts) and its event
stream. `EventFeed` replays the stream from the beginning and then follows it live, each
event once, so the attached view folds exactly the events the run's own orchestrator folds
and ends with the same summary. Attaching only reads: it sends nothing, touches no AWS
API, and does not decide that a silent job is lost (the run's orchestrator does); Ctrl-C
stops the viewer, never the run. The command line is `orchestrator.attach_command`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncGenerator
from typing import cast

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.errors import RedisUnavailable
from orchestrator.exits import ExitCode
from orchestrator.feed import EventFeed
from orchestrator.plan import PlannedJob
from orchestrator.render import JsonRenderer, PlainRenderer
from orchestrator.renderer import Renderer
from orchestrator.run import load_plan
from orchestrator.state import RunState, exit_code
from worker.contract import WorkerEvent
from worker.publisher import connect_redis, redact_url

__all__ = ["attach", "follow_run"]


async def follow_run(state: RunState, redis: Redis, renderer: Renderer) -> RunState:
    """Fold the run's events, replayed then live, into `state` until every job has ended."""
    renderer.started(state)
    events = EventFeed(redis, state.run_id).events()
    try:
        async for event in events:
            job = state.apply(event, received_at=time.time())
            if job is not None:
                renderer.changed(job, event)
            if state.done:
                break
    finally:  # unsubscribe now, not whenever the generator is collected
        await cast("AsyncGenerator[WorkerEvent, None]", events).aclose()
    renderer.finished(state)
    return state


async def _load(redis_url: str, run_id: str) -> list[PlannedJob] | None:
    redis = connect_redis(redis_url, max_connections=2)
    try:
        return await load_plan(redis, run_id)
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {redact_url(redis_url)} ({exc}): is REDIS_URL the run's, and is it up?"
        ) from exc
    finally:
        await redis.aclose()


def attach(run_id: str, redis_url: str, output: str, exit_on_done: bool) -> int:
    """Follow run `run_id` to its end; its exit code (as the run's own), 2 for an unknown
    run id, 130 when stopped before the end."""
    planned = anyio.run(_load, redis_url, run_id)
    if planned is None:
        print(
            f"ecs-fanout: no run {run_id!r} in Redis (a run keeps its plan for 7 days; "
            "is REDIS_URL the run's?)",
            file=sys.stderr,
        )
        return ExitCode.CONFIG
    state = RunState.from_plan(run_id, planned)

    async def follow(renderer: Renderer) -> None:
        redis = connect_redis(redis_url, max_connections=4)
        try:
            await follow_run(state, redis, renderer)
        finally:
            with anyio.CancelScope(shield=True):
                await redis.aclose()

    stopped = f"ecs-fanout: stopped following run {run_id}; the run itself goes on"
    if output == "tui":
        from tui import run_tui  # Textual is imported only when the live view is used

        code = run_tui(state, follow, exit_on_done=exit_on_done, confirm_quit=False)
        if code == ExitCode.INTERRUPTED:
            print(stopped, file=sys.stderr)
        return code
    renderer: Renderer = JsonRenderer() if output == "json" else PlainRenderer()
    try:
        anyio.run(follow, renderer)
    except KeyboardInterrupt:
        print(stopped, file=sys.stderr)
        return ExitCode.INTERRUPTED
    return exit_code(state)
