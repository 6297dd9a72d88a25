"""The `local` executor: the workers' own code, run in this process.

Jobs run concurrently up to a limit, each through `worker.engine.Deployer`, exactly as a
Lambda worker would run them; their events go through Redis like a Lambda's do, so the run
core cannot tell the two executors apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import anyio
from anyio.from_thread import start_blocking_portal
from redis.asyncio import Redis

from worker.aws import ecs_client
from worker.contract import DeployJob
from worker.engine import Deployer

__all__ = ["LocalExecutor"]

log = logging.getLogger(__name__)


class LocalExecutor:
    def __init__(
        self,
        redis: Redis,
        *,
        max_parallel: int,
        region: str | None = None,
        profile: str | None = None,
        allowed_registries: Sequence[str] = (),
    ) -> None:
        self._redis = redis
        self._max_parallel = max_parallel
        self._region = region
        self._profile = profile
        self._allowed_registries = allowed_registries

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
            async with ecs_client(self._region, self._profile) as ecs:
                deployer = Deployer.on_redis(
                    ecs, redis, region=self._region, allowed_registries=self._allowed_registries
                )

                async def run_one(job: DeployJob) -> None:
                    async with limit:
                        on_start(job)
                        try:
                            await deployer.run(job)
                        except Exception as exc:  # a crash must end the job visibly, not kill the run
                            log.exception("worker for %s/%s crashed", job.cluster, job.service)
                            on_failed(job, f"worker crashed: {exc!r}")

                async with anyio.create_task_group() as tg:
                    for job in jobs:
                        tg.start_soon(run_one, job)
        finally:
            with anyio.CancelScope(shield=True):
                await redis.aclose()


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
