"""AWS clients for the workers: the standard credential chain, the standard retry mode.

Nothing here reads credentials itself: aioboto3 follows the usual chain (environment,
profile, container/instance role) and honours `AWS_ENDPOINT_URL`, which is how the sandbox
and the tests point every call at the emulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig

if TYPE_CHECKING:
    from types_aiobotocore_ecs import ECSClient

__all__ = ["aws_client", "ecs_client", "retry_config"]

# ECS throttles per account and region (RegisterTaskDefinition: 20 burst then 1/s), shared
# by every parallel worker: the standard mode's backoff with room for many attempts rides
# the bucket out instead of failing the job.
MAX_ATTEMPTS = 12  # including the first (botocore's `max_attempts` counts retries only)


def retry_config(max_attempts: int = MAX_ATTEMPTS, max_pool_connections: int = 50) -> AioConfig:
    return AioConfig(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
    )


@asynccontextmanager
async def aws_client(
    service: str, region: str | None = None, profile: str | None = None
) -> AsyncIterator[Any]:
    """An aioboto3 client of `service` with our retry settings (typed by the wrappers)."""
    import aioboto3  # deferred: `--help` and the pure modules must not pay for it

    session = aioboto3.Session(profile_name=profile, region_name=region)
    async with session.client(service, config=retry_config()) as client:
        yield client


def ecs_client(
    region: str | None = None, profile: str | None = None
) -> AbstractAsyncContextManager[ECSClient]:
    return aws_client("ecs", region, profile)
