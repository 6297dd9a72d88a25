"""The `local` executor: the workers' own code, run in this process.

Jobs run concurrently up to a limit, each through `worker.engine.Deployer`, exactly as a
Lambda worker would run them; their events go through Redis like a Lambda's do, so the run
core cannot tell the two executors apart. A worker that crashes cannot report its end: its
job is ended here, with ECS's word on what its deployment became (`Deployer.report_crash`: a
rollout ECS completed is `succeeded`, never `failed`), or `failed` when even that fails.

Set-up early: given the run's jobs up front (`set_up_for`), `prepare` starts the workers' loop
and makes there what the jobs will need and changes nothing (their Redis client, a deployer
and its ECS client per account and region, a role's credentials) while the run core does its
own start-up and preflight runs, and looks whether ECS's events rule and queue are in place
(reads only); `run_all` then writes what is missing of them (only for a run preflight passed:
usually nothing, they stay from the last run) and starts the jobs. A run that preflight
refuses closes the executor with no job sent and nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup
from anyio.from_thread import BlockingPortal, start_blocking_portal
from redis.asyncio import Redis

if TYPE_CHECKING:
    from orchestrator.ecs_event_feed import EcsEventFeed

from worker.access import Access
from worker.aws import AwsAccess
from worker.contract import DeployJob
from worker.credentials import Clients
from worker.ecs_calls import KnownRevisions
from worker.engine import Deployer
from worker.wakeups import Wakeups

__all__ = ["LocalExecutor"]

log = logging.getLogger(__name__)


_Handed = tuple[Sequence[DeployJob], Callable[[DeployJob], None], Callable[[DeployJob, str], None]]


class _Workers:
    """What the workers share in their own loop: clients, a Redis client, the deployers and
    ECS's events; made by `set_up`, closed with the stack it is given."""

    def __init__(
        self, executor: LocalExecutor, stack: AsyncExitStack, redis: Redis, jobs: Sequence[DeployJob]
    ) -> None:
        self._executor = executor
        self._stack = stack
        self._redis = redis
        self._jobs = jobs  # the run's, set up for (the jobs handed over may be one wave of them)
        self.clients = Clients(stack, executor.aws, jobs[0].run_id if jobs else "local")
        self.limit = anyio.CapacityLimiter(executor.max_parallel)  # for every hand-over
        self.feed: EcsEventFeed | None = None  # ECS's events, once set up for some scope
        self._events: EcsEventFeed | None = None
        self.deployers: _Deployers | None = None
        self._events_lock = anyio.Lock()
        self._events_done = False

    async def set_up(self) -> None:
        """The lookers' task group and one deployer (and its ECS client) per account and region,
        so that the first job finds it made. Calls no AWS API that changes anything: a run that
        preflight then refuses must have changed nothing."""
        looking = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(looking.cancel_scope.cancel)  # the lookers serve no one any more
        executor = self._executor
        self.deployers = _Deployers(
            self.clients, self._redis, executor.allowed_registries, executor.deployer, looking, executor.known
        )
        self._events = executor.events_feed(self.clients, self._redis, self._jobs)
        async with anyio.create_task_group() as tg:
            for job in {(job.target.scope, job.access): job for job in self._jobs}.values():
                tg.start_soon(self.deployers.get, job)
            if self._events is not None:  # which scopes have ECS's events in place already
                tg.start_soon(self._events.look, self._jobs)

    async def _events_set_up(self) -> None:
        """ECS's events rule and queue of the jobs' scopes where `set_up` did not find them in
        place (writing changes AWS: once the jobs are handed over, before the first of them
        starts), the first time only."""
        async with self._events_lock:
            if self._events_done:
                return
            assert self.deployers is not None, "set_up first"
            if self._events is not None:
                self.deployers.wake_in(await self._events.set_up(self._jobs))
                self.feed = self._events if self.deployers.woken else None
            self._events_done = True

    async def run(self, handed: _Handed) -> None:
        """Run the jobs handed over (all of the run's, or a wave of them) to their ends."""
        jobs, on_start, on_failed = handed
        deployers = self.deployers
        assert deployers is not None, "set_up first"
        await self._events_set_up()

        async def run_one(job: DeployJob) -> None:
            async with self.limit:
                on_start(job)
                deployer: Deployer | None = None
                try:
                    deployer = await deployers.get(job)
                    await deployer.run(job)
                except Exception as exc:  # a crash must end the job visibly, not kill the run
                    log.exception("worker for %s crashed", job.target)
                    await _report_crash(deployer, job, exc, on_failed)

        async with anyio.create_task_group() as outer:
            if self.feed is not None:  # ECS's events wake the followers (`orchestrator.ecs_event_feed`)
                outer.start_soon(self.feed.consume, self._jobs, deployers.wakeups.ended)
            async with anyio.create_task_group() as tg:
                for job in jobs:
                    tg.start_soon(run_one, job)
            outer.cancel_scope.cancel()


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
        set_up_for: Sequence[DeployJob] | None = None,
        known: KnownRevisions | None = None,
    ) -> None:
        self._on_note = on_note  # set: ECS's events are set up for jobs that follow them (`follow`)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis = redis
        self.max_parallel = max_parallel
        self.aws = aws
        self.allowed_registries = allowed_registries
        self.deployer = deployer  # the workers' class (a test bed may make them crash)
        self._set_up_for = set_up_for  # the run's jobs, known before they start: set up early
        self._early: _Early | None = None
        self.known = known  # the task definitions preflight read (filled before the jobs start)

    async def prepare(self) -> None:
        """With `set_up_for`: the workers' loop and all the jobs will need, made now (see the
        module's docstring). Without: nothing, `run_all` makes it."""
        if self._set_up_for is None or self._early is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._early = _Early(self)
        await self._early.start(self._set_up_for)

    async def aclose(self) -> None:
        """End the workers' loop if `prepare` started it and no job was handed over."""
        if self._early is not None:
            await self._early.close()

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

        if self._early is not None:
            await self._early.run((jobs, start, failed))
            return
        with start_blocking_portal() as portal:
            await asyncio.wrap_future(portal.start_task_soon(self._run_here, (jobs, start, failed)))

    async def _run_here(self, handed: _Handed) -> None:
        """Set up for the jobs `handed`, then run them."""
        redis = _client_like(self._redis)  # a client belongs to one loop: this one needs its own
        try:
            async with AsyncExitStack() as stack:
                workers = _Workers(self, stack, redis, handed[0])
                await workers.set_up()
                await workers.run(handed)
        finally:
            with anyio.CancelScope(shield=True):
                await redis.aclose()

    async def serve_early(
        self, jobs: Sequence[DeployJob], ready: Future[_Workers], closing: Future[None]
    ) -> None:
        """In the workers' loop: set up for `jobs`, hand the workers over on `ready`, and keep
        them (their clients, lookers and Redis client) until `closing` is done."""
        redis = _client_like(self._redis)
        try:
            async with AsyncExitStack() as stack:
                workers = _Workers(self, stack, redis, jobs)
                try:
                    await workers.set_up()
                except BaseException as exc:
                    if not ready.done():  # cancelled: the checks refused the run meanwhile
                        ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
                    raise
                if ready.done():  # cancelled: no job will come
                    return
                ready.set_result(workers)
                await asyncio.wrap_future(closing)
        finally:
            with anyio.CancelScope(shield=True):
                await redis.aclose()

    def events_feed(self, clients: Clients, redis: Redis, jobs: Sequence[DeployJob]) -> EcsEventFeed | None:
        """ECS's events for the jobs that follow them, not set up yet; None when not wanted."""
        if self._on_note is None:
            return None
        from orchestrator.ecs_event_feed import EcsEventFeed

        on_note, loop = self._on_note, self._loop
        assert loop is not None, "prepare or run_all sets it"

        def note(message: str) -> None:
            loop.call_soon_threadsafe(on_note, message)

        return EcsEventFeed(clients, redis, jobs[0].run_id if jobs else "local", note)


class _Early:
    """The workers' loop started by `prepare`, set up before the first jobs are handed over, and
    kept for every hand-over (a run with waves hands each wave over in turn)."""

    def __init__(self, executor: LocalExecutor) -> None:
        self._executor = executor
        self._portal_cm = start_blocking_portal()
        self._portal: BlockingPortal | None = None
        self._ready: Future[_Workers] = Future()
        self._closing: Future[None] = Future()
        self._served: Future[None] | None = None
        self._closed = False

    async def start(self, jobs: Sequence[DeployJob]) -> None:
        self._portal = self._portal_cm.__enter__()  # starts the loop's thread: a few milliseconds
        self._served = self._portal.start_task_soon(
            self._executor.serve_early, jobs, self._ready, self._closing
        )
        try:
            await asyncio.wrap_future(self._ready)
        except BaseException:
            await self.close()
            raise

    async def run(self, handed: _Handed) -> None:
        assert self._portal is not None and self._ready.done(), "start first"
        workers = self._ready.result()
        await asyncio.wrap_future(self._portal.start_task_soon(workers.run, handed))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._served is not None:
            self._closing.set_result(None)
            if not self._ready.done() or self._ready.cancelled():  # still setting up: no job will come
                self._served.cancel()
            with anyio.CancelScope(shield=True):
                done, _ = await asyncio.wait([asyncio.wrap_future(self._served)])
            for served in done:  # a set-up that failed: `start` raised it already
                if not served.cancelled():
                    served.exception()
        self._portal_cm.__exit__(None, None, None)


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
        known: KnownRevisions | None,
    ) -> None:
        self._looking = looking
        self._known = known
        self._clients = clients
        self._redis = redis
        self._allowed_registries = allowed_registries
        self._deployer = deployer
        self._made: dict[tuple[str, Access], Deployer] = {}
        self._locks: dict[tuple[str, Access], anyio.Lock] = {}  # one scope's making holds up no other
        self.wakeups = Wakeups()  # ECS's events wake the followers of the scopes in `woken`
        self.woken: set[str] = set()

    def wake_in(self, scopes: set[str]) -> None:
        """ECS's events wake the followers of `scopes`: of the deployers made already too."""
        self.woken = scopes
        for (scope, _), deployer in self._made.items():
            if scope in scopes:
                deployer.wakeups = self.wakeups

    async def get(self, job: DeployJob) -> Deployer:
        target = job.target
        async with self._locks.setdefault((target.scope, job.access), anyio.Lock()):
            deployer = self._made.get((target.scope, job.access))
            if deployer is None:
                ecs = await self._clients.get("ecs", target.region, job.access)
                deployer = self._made[target.scope, job.access] = self._deployer.on_redis(
                    ecs,
                    self._redis,
                    scope=target.scope,
                    allowed_registries=self._allowed_registries,
                    known=self._known,
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
