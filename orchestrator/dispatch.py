"""Sending jobs to the queue: SendMessageBatch, 10 entries a call, retrying `Failed[]`.

A partly failed batch still answers 200, so every response is checked entry by entry.
Entries that failed through no fault of theirs are retried with backoff; a sender fault (or
retries spent) is reported for that job alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from orchestrator.errors import ConfigError
from worker.contract import DeployJob, dedup_id, group_id

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

__all__ = ["MAX_MESSAGE_BYTES", "batches", "check_sizes", "send_jobs"]

MAX_ENTRIES = 10
MAX_MESSAGE_BYTES = 256 * 1024  # per message and per batch
ENTRY_RETRIES = 5


def check_sizes(jobs: Sequence[DeployJob]) -> None:
    """Refuse, before anything is sent, a job too large for one SQS message."""
    for job in jobs:
        size = len(job.model_dump_json().encode())
        if size > MAX_MESSAGE_BYTES:
            raise ConfigError(
                f"job for {job.cluster}/{job.service} is {size} bytes, "
                f"over SQS's {MAX_MESSAGE_BYTES}-byte limit"
            )


def batches(jobs: Sequence[DeployJob]) -> list[list[DeployJob]]:
    """Groups of at most 10 jobs whose bodies together fit in one SendMessageBatch (pure)."""
    result: list[list[DeployJob]] = []
    current: list[DeployJob] = []
    size = 0
    for job in jobs:
        body = len(job.model_dump_json().encode())
        if current and (len(current) == MAX_ENTRIES or size + body > MAX_MESSAGE_BYTES):
            result.append(current)
            current, size = [], 0
        current.append(job)
        size += body
    if current:
        result.append(current)
    return result


async def _send_batch(
    sqs: SQSClient,
    queue_url: str,
    batch: list[DeployJob],
    on_sent: Callable[[DeployJob], None],
    on_failed: Callable[[DeployJob, str], None],
) -> None:
    pending = {str(i): job for i, job in enumerate(batch)}
    delay = 0.2
    for attempt in range(ENTRY_RETRIES + 1):
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {
                "Id": entry_id,
                "MessageBody": job.model_dump_json(),
                "MessageGroupId": group_id(job),
                "MessageDeduplicationId": dedup_id(job),
            }
            for entry_id, job in pending.items()
        ]
        response = await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        for ok in response.get("Successful", []):
            on_sent(pending.pop(ok["Id"]))
        for failed in response.get("Failed", []):
            if failed.get("SenderFault") or attempt == ENTRY_RETRIES:
                on_failed(
                    pending.pop(failed["Id"]),
                    f"SQS refused the job: {failed.get('Code')}: {failed.get('Message')}",
                )
        if not pending:
            return
        await anyio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def send_jobs(
    sqs: SQSClient,
    queue_url: str,
    jobs: Sequence[DeployJob],
    on_sent: Callable[[DeployJob], None],
    on_failed: Callable[[DeployJob, str], None],
) -> None:
    """Send every job; `on_sent` as SQS accepts each, `on_failed` for those it never does."""
    check_sizes(jobs)
    async with anyio.create_task_group() as tg:
        for batch in batches(jobs):
            tg.start_soon(_send_batch, sqs, queue_url, batch, on_sent, on_failed)
