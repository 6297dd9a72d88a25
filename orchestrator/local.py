"""The `local` executor: the workers' own code, run in this process.

Jobs run concurrently up to a limit, each through `worker.engine.Deployer`, exactly as a
Lambda worker would run them; their events go through Redis like a Lambda's do, so the run
core cannot tell the two executors apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import anyio
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
        self._limit = anyio.CapacityLimiter(max_parallel)
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
        """Run every job; `on_start` when a job gets a slot, `on_failed` if its worker dies."""
        async with ecs_client(self._region, self._profile) as ecs:
            deployer = Deployer.on_redis(
                ecs, self._redis, region=self._region, allowed_registries=self._allowed_registries
            )

            async def run_one(job: DeployJob) -> None:
                async with self._limit:
                    on_start(job)
                    try:
                        await deployer.run(job)
                    except Exception as exc:  # a crash must end the job visibly, not kill the run
                        log.exception("worker for %s/%s crashed", job.cluster, job.service)
                        on_failed(job, f"worker crashed: {exc!r}")

            async with anyio.create_task_group() as tg:
                for job in jobs:
                    tg.start_soon(run_one, job)
