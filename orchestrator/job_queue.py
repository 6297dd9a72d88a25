"""The job queue (SQS FIFO + its dead-letter queue) and the Lambda event-source mapping.

FIFO with `MessageGroupId = cluster/service`: two deploys of one service never overlap. The
visibility timeout must be at least 6x the function timeout or Lambda refuses the mapping.
Mappings are listed first and updated, never blindly created: a second create of the same
mapping fails on AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import anyio
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_aiobotocore_lambda import LambdaClient
    from types_aiobotocore_sqs import SQSClient

__all__ = ["JobQueue", "MappingChange", "delete_queue", "ensure_mapping", "ensure_queue", "queue_attributes"]

MAX_RECEIVE_COUNT = 5
MAX_VISIBILITY_S = 12 * 3600
DLQ_RETENTION_S = 14 * 24 * 3600
BATCH_SIZE = 10  # FIFO sources allow at most 10 and no batching window
MAPPING_WAIT_S = 120.0


@dataclass(frozen=True)
class JobQueue:
    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


class MappingChange(StrEnum):
    """What `ensure_mapping` had to do; its value is how the set-up says it. True if anything changed."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "up to date"

    def __bool__(self) -> bool:
        return self is not MappingChange.UNCHANGED


def queue_attributes(function_timeout_s: int, dlq_arn: str) -> dict[str, str]:
    """The job queue's attributes (pure)."""
    return {
        "VisibilityTimeout": str(min(MAX_VISIBILITY_S, 6 * function_timeout_s)),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}),
    }


async def _ensure_one(sqs: SQSClient, name: str, attributes: dict[Any, str]) -> tuple[str, str]:
    try:
        url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            raise
        url = (await sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", **attributes}))[
            "QueueUrl"
        ]
    else:
        if attributes:
            await sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    return url, arn


async def ensure_queue(sqs: SQSClient, name: str, function_timeout_s: int) -> JobQueue:
    """Create or bring up to date `<name>.fifo` and its dead-letter queue `<name>-dlq.fifo`."""
    dlq_url, dlq_arn = await _ensure_one(
        sqs, f"{name}-dlq.fifo", {"MessageRetentionPeriod": str(DLQ_RETENTION_S)}
    )
    url, arn = await _ensure_one(sqs, f"{name}.fifo", queue_attributes(function_timeout_s, dlq_arn))
    return JobQueue(url, arn, dlq_url, dlq_arn)


async def delete_queue(sqs: SQSClient, queue: JobQueue) -> None:
    for url in (queue.url, queue.dlq_url):
        await sqs.delete_queue(QueueUrl=url)


async def ensure_mapping(
    client: LambdaClient, function_name: str, queue_arn: str, max_concurrency: int
) -> tuple[str, MappingChange]:
    """The mapping's UUID, and whether it had to be created, changed or neither."""
    wanted: dict[str, Any] = {
        "BatchSize": BATCH_SIZE,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": max_concurrency},
        "Enabled": True,
    }
    listed = await client.list_event_source_mappings(EventSourceArn=queue_arn, FunctionName=function_name)
    mappings = listed.get("EventSourceMappings", [])
    if not mappings:
        created = await client.create_event_source_mapping(
            EventSourceArn=queue_arn, FunctionName=function_name, **wanted
        )
        uuid, change = created["UUID"], MappingChange.CREATED
    else:
        current = mappings[0]
        uuid = current["UUID"]
        changed = (
            current.get("BatchSize") != BATCH_SIZE
            or current.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]
            or (current.get("ScalingConfig") or {}).get("MaximumConcurrency") != max_concurrency
            or current.get("State") not in ("Enabled", "Enabling", "Updating", "Creating")
        )
        change = MappingChange.UPDATED if changed else MappingChange.UNCHANGED
        if changed:
            await client.update_event_source_mapping(UUID=uuid, **wanted)
    await _wait_enabled(client, uuid)
    return uuid, change


async def _wait_enabled(client: LambdaClient, uuid: str) -> None:
    delay = 0.2
    with anyio.fail_after(MAPPING_WAIT_S):
        while (await client.get_event_source_mapping(UUID=uuid)).get("State") != "Enabled":
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)
