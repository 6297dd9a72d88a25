"""The orchestrator's own AWS clients (Lambda, SQS), with the workers' retry settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from worker.aws import retry_config

if TYPE_CHECKING:
    from types_aiobotocore_lambda import LambdaClient
    from types_aiobotocore_sqs import SQSClient

__all__ = ["lambda_client", "sqs_client"]


@asynccontextmanager
async def lambda_client(region: str | None, profile: str | None) -> AsyncIterator[LambdaClient]:
    import aioboto3

    session = aioboto3.Session(profile_name=profile, region_name=region)
    async with session.client("lambda", config=retry_config()) as client:
        yield client


@asynccontextmanager
async def sqs_client(region: str | None, profile: str | None) -> AsyncIterator[SQSClient]:
    import aioboto3

    session = aioboto3.Session(profile_name=profile, region_name=region)
    async with session.client("sqs", config=retry_config()) as client:
        yield client
