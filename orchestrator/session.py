"""One run from the user's side: connect, run the core, render, and exit cleanly on Ctrl-C.

On Ctrl-C (and SIGTERM or SIGHUP: `orchestrator.stop_signals`) the workers are cancelled, but
ECS goes on rolling out what was already updated: we say which services those are and how to
look at them, instead of a traceback, and exit 130 (143 for SIGTERM). A closed stdout
(`| head`) ends the run the same way (the boundary then exits quietly).
The live view (`output="tui"`) runs the very same coroutine inside the Textual app, as a
worker on the app's loop; detaching from it is reported like Ctrl-C.

While the run core runs, the run's liveness key is kept in Redis (`orchestrator.liveness`):
if this process dies without a word, `attach` sees it go and judges the silent jobs itself.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, suppress

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.confirm_silent import ecs_confirm
from orchestrator.errors import RedisUnavailable
from orchestrator.exits import ExitCode
from orchestrator.liveness import kept_alive
from orchestrator.local import LocalExecutor
from orchestrator.plan import PlannedJob
from orchestrator.render import JsonRenderer, PlainRenderer
from orchestrator.renderer import Renderer
from orchestrator.run import Executor, run_jobs
from orchestrator.state import RunState, exit_code
from orchestrator.stop_signals import stop_code, stop_reason
from orchestrator.wave_run import approver, wave_schedule
from orchestrator.waves import WavePlan
from worker.aws import AwsAccess
from worker.contract import DeployJob
from worker.credentials import Clients
from worker.ecs_calls import KnownRevisions
from worker.publisher import connect_redis, redact_url

__all__ = [
    "ExecutorFactory",
    "check_redis",
    "drive_run",
    "local_executor",
    "make_renderer",
    "run_session",
    "run_to_end",
]


def make_renderer(output: str, spec_path: str, caller: str | None) -> Renderer:
    if output == "json":
        return JsonRenderer(spec_path=spec_path, caller=caller)
    return PlainRenderer(caller=caller)


def interrupted_report(state: RunState, why: str = "interrupted") -> str:
    lines = [
        f"ecs-fanout: {why}; run {state.run_id} (`ecs-fanout status {state.run_id}` shows what ECS runs)"
    ]
    rolling = state.still_rolling()
    if rolling:
        lines.append("still rolling out on the AWS side (ECS finishes or its circuit breaker rolls back):")
        lines += [
            f"  {job.name}: deployment {job.deployment_id} ({job.task_definition_arn})" for job in rolling
        ]
    else:
        lines.append("no service was left mid-rollout")
    return "\n".join(lines)


ExecutorFactory = Callable[[Redis, Renderer], AbstractAsyncContextManager[Executor]]


def local_executor(
    max_parallel: int,
    aws: AwsAccess,
    allowed_registries: Sequence[str] = (),
    *,
    events: bool = False,
    set_up_for: Sequence[DeployJob] | None = None,
    known: KnownRevisions | None = None,
) -> ExecutorFactory:
    """`events`: some jobs follow ECS's events; a scope that cannot have them is said once.
    `set_up_for`: the run's jobs, for the executor to set up for in `prepare` (`LocalExecutor`);
    `known`: the task definitions preflight read, for the jobs to register from."""

    @asynccontextmanager
    async def make(redis: Redis, renderer: Renderer) -> AsyncIterator[Executor]:
        def note(message: str) -> None:
            renderer.setup_changed("ecs-events", "polling", message)

        executor = LocalExecutor(
            redis,
            max_parallel=max_parallel,
            aws=aws,
            allowed_registries=allowed_registries,
            on_note=note if events else None,
            set_up_for=set_up_for,
            known=known,
        )
        try:
            yield executor
        finally:
            await executor.aclose()

    return make


async def check_redis(url: str) -> None:
    redis = connect_redis(url)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {redact_url(url)}: {exc}; start it, or point REDIS_URL at one"
        ) from exc
    finally:
        await redis.aclose()


async def drive_run(
    state: RunState,
    planned: Sequence[PlannedJob],
    redis: Redis,
    executor: Executor,
    renderer: Renderer,
    *,
    heartbeat_s: float,
    queued_window_s: float | None,
    remote_workers: bool,
    clients: Clients | None,
    waves: WavePlan | None,
    replayed_to: str = "0-0",
) -> None:
    """The run core over `planned`, its liveness kept in Redis meanwhile; with `clients`, a
    silent job that started a deployment is asked of ECS before it is called `lost`, and `waves`
    (which need them) are deployed wave by wave through their gates."""
    async with kept_alive(
        redis,
        state.run_id,
        heartbeat_s=heartbeat_s,
        queued_window_s=queued_window_s,
        remote_workers=remote_workers,
        finished=lambda: state.done,
    ):
        schedule = None
        if waves is not None:
            assert clients is not None, "a run with waves calls AWS at its gates"
            schedule = await wave_schedule(waves, state, planned, redis, clients)
        await run_jobs(
            state,
            planned,
            redis,
            executor,
            renderer,
            heartbeat_s=heartbeat_s,
            queued_window_s=queued_window_s,
            confirm=None if clients is None else ecs_confirm(clients, redis),
            schedule=schedule,
            replayed_to=replayed_to,
        )


def run_session(
    planned: Sequence[PlannedJob],
    *,
    run_id: str,
    redis_url: str,
    output: str,
    spec_path: str,
    heartbeat_s: float,
    executor_factory: ExecutorFactory,
    queued_window_s: float | None = None,
    exit_on_done: bool = False,
    remote_workers: bool = False,
    caller: str | None = None,
    aws: AwsAccess | None = None,
    waves: WavePlan | None = None,
    resumed: tuple[RunState, str] | None = None,
) -> int:
    """Run `planned` to its end and render it; the exit code. `caller` (who runs it, as STS
    says) is shown in the output's header. With `aws` (the run's way to AWS), a silent job
    that started a deployment is asked of ECS before it is called `lost`. `waves`: deploy wave
    by wave, through each wave's gate (needs `aws`). `resumed`: a run taken over, its state
    folded from its stream up to the id given (`orchestrator.resume`)."""
    anyio.run(check_redis, redis_url)  # refuse before any set-up, as bad configuration
    state = resumed[0] if resumed is not None else RunState.from_plan(run_id, planned, waves)

    async def drive(renderer: Renderer) -> None:
        redis = connect_redis(redis_url)
        try:
            async with AsyncExitStack() as clients_stack, executor_factory(redis, renderer) as executor:
                await drive_run(
                    state,
                    planned,
                    redis,
                    executor,
                    renderer,
                    heartbeat_s=heartbeat_s,
                    queued_window_s=queued_window_s,
                    remote_workers=remote_workers,
                    clients=None if aws is None else Clients(clients_stack, aws, run_id),
                    waves=waves,
                    replayed_to=resumed[1] if resumed is not None else "0-0",
                )
        finally:
            with anyio.CancelScope(shield=True):
                await redis.aclose()

    if output == "tui":
        from tui import run_tui  # Textual is imported only when the live view is used

        code = run_tui(
            state,
            drive,
            spec_path=spec_path,
            exit_on_done=exit_on_done,
            caller=caller,
            decide=None if waves is None else approver(redis_url, run_id),
        )
        if code == ExitCode.INTERRUPTED:  # the user detached while jobs ran, or a signal came
            _say(interrupted_report(state, stop_reason()))
            return stop_code()
        return code
    return run_to_end(lambda: anyio.run(drive, make_renderer(output, spec_path, caller)), lambda: state)


def run_to_end(run: Callable[[], object], state_of: Callable[[], RunState | None]) -> int:
    """`run()` (the run, in an event loop of its own) to its exit code. Interrupted, or its stdout
    closed, once it had a state (`state_of`): which services ECS is still rolling out is said."""
    try:
        run()
    except KeyboardInterrupt:
        state = state_of()
        if state is None:  # nothing was started: the boundary says why it stopped
            raise
        _say(interrupted_report(state, stop_reason()))
        return stop_code()
    except BaseException as exc:
        state = state_of()
        if state is not None and _stdout_closed(exc):  # it ended the run: say so, then exit quietly
            print(interrupted_report(state, "stdout was closed, so the run stopped"), file=sys.stderr)
        raise
    state = state_of()
    assert state is not None, "a run that ended has a state"
    return exit_code(state)


def _say(text: str) -> None:
    """The report on stderr, unless stderr is gone (SIGHUP: the terminal was closed)."""
    with suppress(OSError):
        print(text, file=sys.stderr, flush=True)


def _stdout_closed(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(BrokenPipeError) is not None
    return isinstance(exc, BrokenPipeError)
