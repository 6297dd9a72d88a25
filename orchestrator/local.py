"""The `local` executor: the workers' own code, run in this process.

Jobs run concurrently up to a limit, each through `worker.engine.Deployer`, exactly as a
Lambda worker would run them; their events go through Redis like a Lambda's do, so the run
core cannot tell the two executors apart. A worker that crashes cannot report its end: its
job is ended here, with ECS's word on what its deployment became (`Deployer.report_crash`: a
rollout ECS completed is `succeeded`, never `failed`), or `failed` when even that fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from anyio.from_thread import start_blocking_portal
from redis.asyncio import Redis

if TYPE_CHECKING:
    from orchestrator.ecs_event_feed import EcsEventFeed

from worker.access import Access
from worker.aws import AwsAccess
from worker.contract import DeployJob
from worker.credentials import Clients
from worker.engine import Deployer
from worker.wakeups import Wakeups

__all__ = ["LocalExecutor"]

log = logging.getLogger(__name__)


class LocalExecutor:
    def __init__(
        self,
        redis: Redis,
        *,
        max_parallel: int,
        aws: AwsAccess,
        allowed_registries: Sequence[str] = (),
        deployer: type[Deployer] = Deployer,
        on_note: Callable[[str], None] | None = None,
    ) -> None:
        self._on_note = on_note  # set: ECS's events are set up for jobs that follow them (`follow`)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis = redis
        self._max_parallel = max_parallel
        self._aws = aws
        self._allowed_registries = allowed_registries
        self._deployer = deployer  # the workers' class (a test bed may make them crash)

    async def prepare(self) -> None:
        """Nothing to set up: the workers are this process."""

    async def run_all(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        """Run every job; `on_start` when a job gets a slot, `on_failed` if its worker dies.

        The workers get an event loop of their own, in a thread: on the run core's loop, every
        botocore answer they parse (~2 ms of CPU each) would delay the reading of the events
        they publish, and the live view's repaints would delay the workers.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop  # the run core's: notes are said there

        def start(job: DeployJob) -> None:
            loop.call_soon_threadsafe(on_start, job)

        def failed(job: DeployJob, message: str) -> None:
            loop.call_soon_threadsafe(on_failed, job, message)

        with start_blocking_portal() as portal:
            await asyncio.wrap_future(portal.start_task_soon(self._run_here, jobs, start, failed))

    async def _run_here(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        limit = anyio.CapacityLimiter(self._max_parallel)
        redis = _client_like(self._redis)  # a client belongs to one loop: this one needs its own
        try:
            async with AsyncExitStack() as stack:
                run_id = jobs[0].run_id if jobs else "local"
                clients = Clients(stack, self._aws, run_id)
                looking = await stack.enter_async_context(anyio.create_task_group())
                deployers = _Deployers(clients, redis, self._allowed_registries, self._deployer, looking)

                async def run_one(job: DeployJob) -> None:
                    async with limit:
                        on_start(job)
                        deployer: Deployer | None = None
                        try:
                            deployer = await deployers.get(job)
                            await deployer.run(job)
                        except Exception as exc:  # a crash must end the job visibly, not kill the run
                            log.exception("worker for %s crashed", job.target)
                            await _report_crash(deployer, job, exc, on_failed)

                feed = await self._ecs_events(clients, redis, jobs, deployers)
                async with anyio.create_task_group() as outer:
                    if feed is not None:  # ECS's events wake the followers (`orchestrator.ecs_event_feed`)
                        outer.start_soon(feed.consume, jobs, deployers.wakeups.wake)
                    async with anyio.create_task_group() as tg:
                        for job in jobs:
                            tg.start_soon(run_one, job)
                    outer.cancel_scope.cancel()
                looking.cancel_scope.cancel()  # the lookers serve no one any more
        finally:
            with anyio.CancelScope(shield=True):
                await redis.aclose()

    async def _ecs_events(
        self, clients: Clients, redis: Redis, jobs: Sequence[DeployJob], deployers: _Deployers
    ) -> EcsEventFeed | None:
        """ECS's events set up for the scopes whose jobs follow them; None when none does."""
        if self._on_note is None:
            return None
        from orchestrator.ecs_event_feed import EcsEventFeed

        on_note, loop = self._on_note, self._loop
        assert loop is not None, "run_all sets it"

        def note(message: str) -> None:
            loop.call_soon_threadsafe(on_note, message)

        feed = EcsEventFeed(clients, redis, jobs[0].run_id if jobs else "local", note)
        deployers.woken = await feed.set_up(jobs)
        return feed if deployers.woken else None


async def _report_crash(
    deployer: Deployer | None, job: DeployJob, exc: Exception, on_failed: Callable[[DeployJob, str], None]
) -> None:
    """End a crashed worker's job with ECS's word on it; `failed` if ECS or Redis cannot say."""
    if deployer is None:  # no worker was ever made for it: nothing reached ECS
        on_failed(job, f"worker crashed: {exc!r}")
        return
    try:
        await deployer.report_crash(job, exc)
    except Exception:
        log.exception("the crash of the worker for %s could not be checked with ECS", job.target)
        on_failed(job, f"worker crashed: {exc!r}")


class _Deployers:
    """One deployer (one ECS client, the job's access) per account and region, made when a job
    first needs it; its throttling budget is that account's and region's, and its jobs look at
    their deployments together (`worker.looker`, served in `looking`)."""

    def __init__(
        self,
        clients: Clients,
        redis: Redis,
        allowed_registries: Sequence[str],
        deployer: type[Deployer],
        looking: TaskGroup,
    ) -> None:
        self._looking = looking
        self._clients = clients
        self._redis = redis
        self._allowed_registries = allowed_registries
        self._deployer = deployer
        self._made: dict[tuple[str, Access], Deployer] = {}
        self._lock = anyio.Lock()
        self.wakeups = Wakeups()  # ECS's events wake the followers of the scopes in `woken`
        self.woken: set[str] = set()

    async def get(self, job: DeployJob) -> Deployer:
        target = job.target
        async with self._lock:
            deployer = self._made.get((target.scope, job.access))
            if deployer is None:
                ecs = await self._clients.get("ecs", target.region, job.access)
                deployer = self._made[target.scope, job.access] = self._deployer.on_redis(
                    ecs, self._redis, scope=target.scope, allowed_registries=self._allowed_registries
                )
                self._looking.start_soon(deployer.look_together().run)
                if target.scope in self.woken:
                    deployer.wakeups = self.wakeups
            return deployer


def _client_like(redis: Redis) -> Redis:
    """A new client with `redis`'s connection settings and a pool of its own."""
    pool = redis.connection_pool
    return Redis.from_pool(
        type(pool)(
            connection_class=pool.connection_class,
            max_connections=pool.max_connections,
            **pool.connection_kwargs,
        )
    )
