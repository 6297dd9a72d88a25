"""A run whose checks go beside the executor's set-up: start-up in one event loop.

The deploy path (`orchestrator.deploy_steps`) runs its checks (preflight, the gates' alarms
and task definitions) in the run's own loop, while an executor whose set-up changes nothing
in AWS sets up (`Executor.prepare`: the local executor's workers' loop, Redis client,
deployers and their clients). The jobs start only once the checks passed, and whatever set-up
changes in AWS (ECS's events rule and queue; the lambda executor's function, queues and
mappings: `set_up_beside=False`) comes after them: a run they refuse sends no job and changes
nothing. What set-up says meanwhile is held (`_Held`) and shown after the run's first line:
a refused run prints nothing on stdout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from orchestrator.plan import PlannedJob
from orchestrator.renderer import Renderer
from orchestrator.run import Executor
from orchestrator.session import ExecutorFactory, check_redis, drive_run
from orchestrator.state import RunState
from orchestrator.waves import WavePlan
from worker.contract import DeployJob
from worker.credentials import Clients
from worker.publisher import connect_redis

if TYPE_CHECKING:
    from orchestrator.gate_events import GateEvent
    from orchestrator.state import JobState
    from orchestrator.wave_state import WaveState
    from worker.contract import WorkerEvent

__all__ = ["Check", "Checked", "run_checked"]

Checked = tuple[list[PlannedJob], WavePlan | None]  # the plan to run (pinned by preflight), its waves
Check = Callable[[], Awaitable[Checked]]  # raises (exit 2, nothing changed) to refuse the run


class _Held:
    """A renderer that holds what set-up says until the run has started (its checks passed)."""

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer
        self._held: list[tuple[str, str, str]] | None = []

    def started(self, state: RunState) -> None:
        self._renderer.started(state)
        held, self._held = self._held or [], None
        for step, status, message in held:
            self._renderer.setup_changed(step, status, message)

    def setup_changed(self, step: str, status: str, message: str) -> None:
        if self._held is not None:
            self._held.append((step, status, message))
        else:
            self._renderer.setup_changed(step, status, message)

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        self._renderer.changed(job, event)

    def gate_changed(self, wave: WaveState, event: GateEvent) -> None:
        self._renderer.gate_changed(wave, event)

    def finished(self, state: RunState) -> None:
        self._renderer.finished(state)


class _Prepared:
    """An executor whose `prepare` already ran (beside the checks): the run core's call is a no-op."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def prepare(self) -> None:
        pass

    async def run_all(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        await self._executor.run_all(jobs, on_start, on_failed)


async def _beside(prepare: Callable[[], Awaitable[None]], check: Check) -> Checked:
    """`check()`'s answer once `prepare()` is done too; a refusal cancels the set-up and is
    raised as itself."""
    answer: list[Checked] = []

    async def checking() -> None:
        answer.append(await check())

    async def preparing() -> None:
        await prepare()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(preparing)
            tg.start_soon(checking)
    except BaseExceptionGroup as group:
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup) and len(first.exceptions) == 1:
            first = first.exceptions[0]
        raise first from None
    return answer[0]


async def run_checked(
    check: Check,
    started: list[RunState],
    *,
    run_id: str,
    redis_url: str,
    renderer: Renderer,
    heartbeat_s: float,
    executor_factory: ExecutorFactory,
    clients: Clients,
    queued_window_s: float | None = None,
    remote_workers: bool = False,
    set_up_beside: bool = True,
) -> None:
    """Check and set up side by side (`set_up_beside`; else check, then set up), then run to the
    end; the run's state is appended to `started` once its jobs may start (for the caller's
    report of an interruption). `clients`: the loop's, shared with the checks (a silent job is
    asked of ECS, gates read AWS)."""
    await check_redis(redis_url)  # refuse before any set-up, as bad configuration
    redis = connect_redis(redis_url)
    held = _Held(renderer)
    try:
        async with executor_factory(redis, held) as executor:
            if set_up_beside:
                planned, waves = await _beside(executor.prepare, check)
                executor = _Prepared(executor)
            else:  # the run core sets it up, after the checks
                planned, waves = await check()
            state = RunState.from_plan(run_id, planned, waves)
            started.append(state)
            await drive_run(
                state,
                planned,
                redis,
                executor,
                held,
                heartbeat_s=heartbeat_s,
                queued_window_s=queued_window_s,
                remote_workers=remote_workers,
                clients=clients,
                waves=waves,
            )
    finally:
        with anyio.CancelScope(shield=True):
            await redis.aclose()
