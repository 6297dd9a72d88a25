"""How to reach AWS: `AwsAccess`, one value per process that every client is made from.

Nothing here reads credentials itself: aioboto3 follows the standard chain (environment,
profile, SSO, container/instance role) and honours `AWS_ENDPOINT_URL`. A test bed (the
sandbox) says where its emulator is through `endpoint_url` and gives throw-away keys through
`static_credentials`, instead of writing the process's environment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient
    from types_aiobotocore_ecs import ECSClient
    from types_aiobotocore_lambda import LambdaClient
    from types_aiobotocore_sqs import SQSClient

__all__ = ["AwsAccess", "retry_config"]

# ECS throttles per account and region (RegisterTaskDefinition: 20 burst then 1/s), shared
# by every parallel worker: the standard mode's backoff with room for many attempts rides
# the bucket out instead of failing the job.
MAX_ATTEMPTS = 12  # including the first (botocore's `max_attempts` counts retries only)


def retry_config(max_attempts: int = MAX_ATTEMPTS, max_pool_connections: int = 50) -> AioConfig:
    return AioConfig(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
    )


@dataclass(frozen=True)
class AwsAccess:
    """The credential chain's profile and, for a test bed, an endpoint and throw-away keys."""

    profile: str | None = None
    endpoint_url: str | None = None
    static_credentials: tuple[str, str] | None = None  # (key id, secret): the sandbox's only

    @asynccontextmanager
    async def client(self, service: str, region: str | None) -> AsyncIterator[Any]:
        """An aioboto3 client of `service` with our retry settings (typed by the wrappers)."""
        import aioboto3  # deferred: `--help` and the pure modules must not pay for it

        key_id, secret = self.static_credentials or (None, None)
        session = aioboto3.Session(
            profile_name=self.profile,
            region_name=region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )
        async with session.client(service, config=retry_config(), endpoint_url=self.endpoint_url) as client:
            yield client

    def ecs(self, region: str | None) -> AbstractAsyncContextManager[ECSClient]:
        return self.client("ecs", region)

    def ecr(self, region: str | None) -> AbstractAsyncContextManager[ECRClient]:
        return self.client("ecr", region)

    def sqs(self, region: str | None) -> AbstractAsyncContextManager[SQSClient]:
        return self.client("sqs", region)

    def lambda_(self, region: str | None) -> AbstractAsyncContextManager[LambdaClient]:
        return self.client("lambda", region)
