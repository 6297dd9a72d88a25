"""The orchestrator's own AWS clients (Lambda, SQS, ECR), with the workers' retry settings."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from worker.aws import aws_client

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient
    from types_aiobotocore_lambda import LambdaClient
    from types_aiobotocore_sqs import SQSClient

__all__ = ["ecr_client", "lambda_client", "sqs_client"]


def lambda_client(region: str | None, profile: str | None) -> AbstractAsyncContextManager[LambdaClient]:
    return aws_client("lambda", region, profile)


def sqs_client(region: str | None, profile: str | None) -> AbstractAsyncContextManager[SQSClient]:
    return aws_client("sqs", region, profile)


def ecr_client(region: str | None, profile: str | None) -> AbstractAsyncContextManager[ECRClient]:
    return aws_client("ecr", region, profile)
