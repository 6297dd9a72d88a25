"""`ecs-fanout approve` and `stop`: a person's word on a running run, and taking a run over.

The word is recorded in the run's Redis (`orchestrator.approval`), where the run's gate reads
it. Then, when the run waits for it (a wave's `approve` step), the command waits a few seconds
for the run to take it (its gate says so: the wave is no longer awaited) and exits 0. If the
run's orchestrator is gone instead (killed while it waited: its liveness key expired), nobody
would ever take it: this command takes the run over. It claims the run's liveness key (`SET
NX`, so two commands cannot both), folds the run's stream into its state (the waves done, the
one waiting), and runs the rest as the run itself would (`orchestrator.session.run_session`
with the run's waves, from the waiting wave's `approve` step on): the same run id, stream and
summary, so an `attach` that was following sees the run go on and end. Its workers run in this
process (the local executor, `max_parallel` as the run had it); with `--all-or-nothing` (as
the run had it) every service changed goes back at the end if not every target succeeded.
Its exit code is then the run's.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.approval import Decision, awaiting, decide, request_stop, who
from orchestrator.errors import ConfigError, RedisUnavailable
from orchestrator.exits import ExitCode
from orchestrator.feed import read_entries
from orchestrator.gate_events import GateEvent
from orchestrator.liveness import TTL_S, RunMeta, is_alive, load_meta
from orchestrator.plan import PlannedJob
from orchestrator.run import load_plan
from orchestrator.state import RunState
from orchestrator.takeover import GONE_FOR_S
from orchestrator.wave_store import load_waves
from orchestrator.waves import WavePlan
from worker.aws import AwsAccess
from worker.keys import run_alive
from worker.publisher import connect_redis, redact_url

__all__ = ["Run", "give_word"]

TAKEN_WITHIN_S = TTL_S + GONE_FOR_S + 2.0  # a live orchestrator takes a decision within 0.5 s
LOOK_S = 0.25


@dataclass
class Run:
    """What Redis holds of a run: its plan, waves and meta, and its state folded to `last_id`."""

    planned: list[PlannedJob]
    waves: WavePlan
    meta: RunMeta | None
    state: RunState
    last_id: str


async def load_run(redis: Redis, run_id: str) -> Run:
    planned, waves = await load_plan(redis, run_id), await load_waves(redis, run_id)
    if planned is None:
        raise ConfigError(
            f"no run {run_id!r} in Redis (a run keeps its plan for 7 days; is REDIS_URL the run's?)"
        )
    if waves is None:
        raise ConfigError(f"run {run_id} has no waves: there is no gate to approve or stop")
    state = RunState.from_plan(run_id, planned, waves)
    entries = await read_entries(redis, run_id)
    for _, item in entries:
        if isinstance(item, GateEvent):
            state.apply_gate(item)
        else:
            state.apply(item, received_at=item.ts)
    last_id = entries[-1][0] if entries else "0-0"
    return Run(planned, waves, await load_meta(redis, run_id), state, last_id)


def _wave_to_decide(run: Run, wave: str | None, decision: Decision) -> str | None:
    """The wave the word is about: `--wave`, else the one waiting (a stop may have none)."""
    board = run.state.waves
    if board.finished:
        raise ConfigError(f"run {run.state.run_id} has ended: its waves are all decided")
    if wave is not None:
        if wave not in board.waves:
            raise ConfigError(
                f"run {run.state.run_id} has no wave {wave!r} (waves: {', '.join(board.waves)})"
            )
        if board.waves[wave].decided:
            raise ConfigError(
                f"wave {wave} of run {run.state.run_id} is past its gate ({board.waves[wave].status})"
            )
        return wave
    waiting = board.awaiting()
    if waiting is None and decision == "approve":
        raise ConfigError(
            f"run {run.state.run_id} waits for no approval now; give --wave NAME to approve a wave before "
            "its gate comes"
        )
    return None if waiting is None else waiting.name


async def _record(
    redis_url: str, run_id: str, wave: str | None, decision: Decision
) -> tuple[Run, str | None]:
    redis = connect_redis(redis_url, max_connections=4)
    try:
        run = await load_run(redis, run_id)
        chosen = _wave_to_decide(run, wave, decision)
        if decision == "stop":
            await request_stop(redis, run_id, who())
        else:
            assert chosen is not None
            await decide(redis, run_id, chosen, "approve", who())
        return run, chosen
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {redact_url(redis_url)} ({exc}): is REDIS_URL the run's?"
        ) from exc
    finally:
        await redis.aclose()


async def _taken_or_orphaned(redis_url: str, run_id: str, wave: str) -> bool:
    """Whether the run took the word on `wave` (True) or its orchestrator is gone (False) and
    this process claimed the run (a claim lost to another process counts as taken)."""
    redis = connect_redis(redis_url, max_connections=2)
    try:
        deadline = time.monotonic() + TAKEN_WITHIN_S
        missing_since: float | None = None
        while time.monotonic() < deadline:
            if await awaiting(redis, run_id) != wave:
                return True
            if await is_alive(redis, run_id):
                missing_since = None
            elif missing_since is None:
                missing_since = time.monotonic()
            elif time.monotonic() - missing_since >= GONE_FOR_S:
                claimed = await redis.set(run_alive(run_id), f"{who()} (taking over)", ex=int(TTL_S), nx=True)
                return not claimed
            await anyio.sleep(LOOK_S)
        return True  # alive but slow: it will take it at its next look
    finally:
        await redis.aclose()


def give_word(
    run_id: str, redis_url: str, wave: str | None, decision: Decision, output: str, aws: AwsAccess
) -> int:
    """Record the word; wait for the run to take it, or take the run over. The exit code."""
    run, chosen = anyio.run(_record, redis_url, run_id, wave, decision)
    what = f"wave {chosen} of run {run_id}" if chosen is not None else f"run {run_id}"
    said = "approved" if decision == "approve" else "stopped: it starts no further wave"
    print(f"ecs-fanout: {what} {said} (by {who()})", file=sys.stderr)
    waiting = run.state.waves.awaiting()
    if waiting is None or (chosen is not None and waiting.name != chosen):
        return ExitCode.OK  # nobody waits on it now: the run's gate reads it when it comes
    if anyio.run(_taken_or_orphaned, redis_url, run_id, waiting.name):
        print(f"ecs-fanout: run {run_id} took it", file=sys.stderr)
        return ExitCode.OK
    print(
        f"ecs-fanout: the orchestrator of run {run_id} is gone; this process takes the run over "
        f"from wave {waiting.name}",
        file=sys.stderr,
    )
    return _take_over(run_id, redis_url, output, aws)


def _take_over(run_id: str, redis_url: str, output: str, aws: AwsAccess) -> int:
    from orchestrator.revert import put_back
    from orchestrator.session import local_executor, run_session

    async def reload() -> Run:  # again, now that the run is ours: nothing moves it but us
        redis = connect_redis(redis_url, max_connections=2)
        try:
            return await load_run(redis, run_id)
        finally:
            await redis.aclose()

    run = anyio.run(reload)
    heartbeat_s = run.meta.heartbeat_s if run.meta else max(p.job.options.heartbeat_s for p in run.planned)

    def session(jobs: list[PlannedJob], session_run_id: str) -> int:
        resumed = session_run_id == run_id
        return run_session(
            jobs,
            run_id=session_run_id,
            redis_url=redis_url,
            output=output,
            spec_path=f"run {run_id}, taken over" if resumed else f"--all-or-nothing of {run_id}",
            heartbeat_s=heartbeat_s,
            executor_factory=local_executor(run.waves.max_parallel, aws),
            aws=aws,
            waves=run.waves if resumed else None,
            resumed=(run.state, run.last_id) if resumed else None,
        )

    code = session(run.planned, run_id)
    if code == ExitCode.FAILED and run.waves.all_or_nothing:
        put_back(session, redis_url, run_id)
    return code
