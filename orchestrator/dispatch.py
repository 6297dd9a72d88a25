"""Sending jobs to the queue: SendMessageBatch, 10 entries a call, retrying `Failed[]`.

A partly failed batch still answers 200, so every response is checked entry by entry.
Entries that failed through no fault of theirs are retried with backoff; a sender fault (or
retries spent) is reported for that job alone. A call that fails as a whole (timeout, 5xx,
throttling, after botocore's own retries) is retried the same way for its pending entries,
then reported for each of them: a job is never left neither sent nor reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from orchestrator.errors import ConfigError
from worker.contract import DeployJob, dedup_id, group_id

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

__all__ = ["MAX_MESSAGE_BYTES", "batches", "check_sizes", "send_jobs"]

MAX_ENTRIES = 10
MAX_MESSAGE_BYTES = 256 * 1024  # per message and per batch
ENTRY_RETRIES = 5
RESEND_WINDOW_S = 240.0  # SQS FIFO drops a resent copy within 5 minutes of the first send
# 4xx codes that mean "slow down" or "try again", not "your request is wrong" (matched as parts)
_RETRYABLE_CODE_WORDS = ("Throttl", "TooManyRequests", "RequestTimeout", "SlowDown", "LimitExceeded")


def check_sizes(jobs: Sequence[DeployJob]) -> None:
    """Refuse, before anything is sent, a job too large for one SQS message."""
    for job in jobs:
        size = len(job.model_dump_json().encode())
        if size > MAX_MESSAGE_BYTES:
            raise ConfigError(
                f"job for {job.target} is {size} bytes, over SQS's {MAX_MESSAGE_BYTES}-byte limit"
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


def _status(exc: BotoCoreError | ClientError) -> int:
    """The HTTP status SQS answered with; 0 when no answer came."""
    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return 0


def _retryable(exc: BotoCoreError | ClientError) -> bool:
    """A fault of the network or of SQS's side (5xx, throttling), not one of our request."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = _status(exc)
        return status >= 500 or status == 429 or any(word in code for word in _RETRYABLE_CODE_WORDS)
    # any other BotoCoreError (credentials, parameters) fails the same way every time
    return isinstance(exc, HTTPClientError | BotoConnectionError)


def _call_failed(exc: BotoCoreError | ClientError, job: DeployJob) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        what = f"{error.get('Code', 'error')}: {error.get('Message', '')}"
    else:
        what = f"{type(exc).__name__}: {exc}"
    if not _retryable(exc):
        return f"SendMessageBatch rejected, not retried ({what}); the job was not queued"
    message = f"SendMessageBatch failed ({what}); the job may not have reached the queue"
    # A read timeout, a dropped connection or a 5xx can come after SQS stored the message;
    # a connection never made or a throttling answer cannot.
    if isinstance(exc, HTTPClientError) or _status(exc) >= 500:
        message += (
            f"; SQS may have received it, so a worker may still run it: "
            f"`ecs-fanout attach {job.run_id}` would show it"
        )
    return message


async def _send_batch(
    sqs: SQSClient,
    queue_url: str,
    batch: list[DeployJob],
    on_sent: Callable[[DeployJob], None],
    on_failed: Callable[[DeployJob, str], None],
    retry_delay_s: float,
) -> None:
    pending = {str(i): job for i, job in enumerate(batch)}
    problems: dict[str, str] = {}  # entry id -> why its last attempt failed
    delay = retry_delay_s
    started = time.monotonic()
    for attempt in range(ENTRY_RETRIES + 1):
        if attempt:
            if time.monotonic() - started + delay > RESEND_WINDOW_S:
                break  # past SQS's deduplication window a resend could queue a job twice
            await anyio.sleep(delay)
            delay = min(delay * 2, 5.0)
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {
                "Id": entry_id,
                "MessageBody": job.model_dump_json(),
                "MessageGroupId": group_id(job),
                "MessageDeduplicationId": dedup_id(job),
            }
            for entry_id, job in pending.items()
        ]
        try:
            # Resending keeps each MessageDeduplicationId: SQS FIFO drops a copy sent within
            # 5 minutes, so a call that timed out yet landed does not queue the job twice.
            response = await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            problems = {entry_id: _call_failed(exc, job) for entry_id, job in pending.items()}
            if not _retryable(exc):
                break
            continue
        for ok in response.get("Successful", []):
            on_sent(pending.pop(ok["Id"]))
        for failed in response.get("Failed", []):
            problems[failed["Id"]] = f"SQS refused the job: {failed.get('Code')}: {failed.get('Message')}"
            if failed.get("SenderFault"):
                on_failed(pending.pop(failed["Id"]), problems[failed["Id"]])
        if not pending:
            return
    for entry_id, job in pending.items():
        on_failed(job, problems.get(entry_id, "SQS's answers never mentioned the job; it may not be queued"))


async def send_jobs(
    sqs: SQSClient,
    queue_url: str,
    jobs: Sequence[DeployJob],
    on_sent: Callable[[DeployJob], None],
    on_failed: Callable[[DeployJob, str], None],
    *,
    retry_delay_s: float = 0.2,
) -> None:
    """Send every job; `on_sent` as SQS accepts each, `on_failed` for those it never does.

    A batch is retried with backoff from `retry_delay_s` (doubling, at most 5 s) when an entry
    or the whole call fails transiently; the other batches go on meanwhile.
    """
    check_sizes(jobs)
    async with anyio.create_task_group() as tg:
        for batch in batches(jobs):
            tg.start_soon(_send_batch, sqs, queue_url, batch, on_sent, on_failed, retry_delay_s)
