"""Lambda's SQS event-source mapping, emulated: poll the queue, invoke the handler, delete.

Why: moto's own mapping cannot run our function here (it tries Docker inside each
`send_message`; with Docker off it "invokes" nothing and deletes the messages). The sandbox,
the benchmarks and the tests need the real path: the real (moto) queue, the exact event Lambda
builds for SQS, a context whose remaining time runs out, `ReportBatchItemFailures` honoured
(what succeeded is deleted, what failed comes back after the visibility timeout) and an
invocation that overruns its time treated as Lambda treats it: the whole batch comes back.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "EsmStats",
    "EventSourceMappingEmulator",
    "Invocation",
    "LambdaContext",
    "reported_failures",
    "sqs_record",
]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

MAX_BATCH = 10  # ReceiveMessage's maximum, and a FIFO source's
WAIT_TIME_S = 1  # long poll; also how long stop() may wait for a poller to notice
ERROR_BACKOFF_S = 1.0
DEFAULT_MEMORY_MB = "512"  # the Python runtime hands it over as a string, from the environment


class LambdaContext:
    """The `context` argument of a Python Lambda handler; its remaining time counts down."""

    def __init__(self, function_name: str, region: str, account: str, remaining_s: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.memory_limit_in_mb = DEFAULT_MEMORY_MB
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + remaining_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """One call of the handler: its records in batch order and those that were not deleted."""

    message_ids: tuple[str, ...]
    failed: tuple[str, ...]
    error: str | None = None  # the handler raised, answered wrongly or overran its time
    duration_s: float = 0.0  # what Lambda would bill


@dataclass(frozen=True)
class EsmStats:
    invocations: int = 0
    records: int = 0
    failures: int = 0  # records left to come back
    deleted: int = 0
    errors: int = 0  # invocations whose whole batch failed
    busy_s: float = 0.0  # the invocations' summed duration


def _attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda spells it: camelCase keys, binary values in base64."""

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    converted: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [b64(v) for v in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = b64(value["BinaryValue"])
    return converted


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """The record Lambda builds from one received SQS message (pure)."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _attribute_value(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def reported_failures(response: object, message_ids: Sequence[str]) -> tuple[str, ...] | None:
    """The records a handler's response reports as failed; None when Lambda would fail them all.

    As Lambda does: no response or no `batchItemFailures` means all succeeded; an entry that
    names no record of the batch makes the whole batch fail.
    """
    if response is None:
        return ()
    if not isinstance(response, dict):
        return None
    entries = response.get("batchItemFailures") or []
    if not isinstance(entries, list):
        return None
    failed: list[str] = []
    for entry in entries:
        item = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(item, str) or item not in message_ids:
            return None
        failed.append(item)
    return tuple(failed)


class EventSourceMappingEmulator:
    """`max_concurrency` pollers, each long-polling the queue and invoking `handler` per batch.
    Any queue: the job queue (FIFO), and the events and timer queues of ECS's events (standard).

    Use as a context manager or `start()`/`stop()`. The handler runs in the poller's thread,
    as one Lambda invocation at a time per poller.
    """

    def __init__(
        self,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        max_concurrency: int = 5,
        remaining_time_s: float = 900.0,
        region: str,
        endpoint_url: str | None = None,
        credentials: tuple[str, str] | None = None,
        function_name: str = "ecs-fanout-worker",
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}, got {batch_size}")
        if max_concurrency < 1 or remaining_time_s <= 0:
            raise ValueError("max_concurrency must be >= 1 and remaining_time_s > 0")
        self.queue_url = queue_url
        self._handler = handler
        self._batch_size = batch_size
        self._concurrency = max_concurrency
        self._remaining_s = remaining_time_s
        self._region = region
        self._endpoint_url = endpoint_url
        self._credentials = credentials  # (key id, secret); None: the standard chain
        self._function_name = function_name
        self._queue_arn = ""
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # moto answers each request in its own thread and its ReceiveMessage is not atomic:
        # two concurrent receives can hand out one message twice. One receive at a time.
        self._receive_lock = threading.Lock()
        self._stats = EsmStats()
        self._invocations: list[Invocation] = []
        self._running = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> EventSourceMappingEmulator:
        if self._threads:
            return self
        sqs = self._client()
        attributes = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self._queue_arn = str(attributes["Attributes"]["QueueArn"])
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._poll, name=f"esm-poller-{i}", daemon=True)
            for i in range(self._concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop polling; invocations under way finish first (at most their remaining time)."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=self._remaining_s + WAIT_TIME_S + 5)
        self._threads = []

    def __enter__(self) -> EventSourceMappingEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what tests and the sandbox look at -----------------------------------------------

    @property
    def stats(self) -> EsmStats:
        with self._lock:
            return self._stats

    @property
    def invocations(self) -> list[Invocation]:
        with self._lock:
            return list(self._invocations)

    def wait_idle(self, timeout_s: float, poll_s: float = 0.2) -> bool:
        """Wait until the queue holds no message (visible or in flight) and no call is running."""
        sqs = self._client()
        names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        deadline = time.monotonic() + timeout_s
        while True:
            attributes = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
            left = sum(int(attributes["Attributes"].get(name, 0)) for name in names)
            with self._lock:
                running = self._running
            if left == 0 and running == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)

    # --- the pollers ----------------------------------------------------------------------

    def _client(self) -> Any:
        # a session per thread: boto3's default session is not thread-safe
        key_id, secret = self._credentials or (None, None)
        session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret)
        return session.client("sqs", region_name=self._region, endpoint_url=self._endpoint_url)

    def _poll(self) -> None:
        sqs = self._client()
        while not self._stopping.is_set():
            try:
                with self._receive_lock:
                    if self._stopping.is_set():  # waited for the lock while stop() was called
                        return
                    messages = sqs.receive_message(
                        QueueUrl=self.queue_url,
                        MaxNumberOfMessages=self._batch_size,
                        WaitTimeSeconds=WAIT_TIME_S,
                        AttributeNames=["All"],
                        MessageAttributeNames=["All"],
                    ).get("Messages", [])
            except (BotoCoreError, ClientError) as exc:
                log.warning("event-source mapping: receive failed: %s", exc)
                self._stopping.wait(ERROR_BACKOFF_S)
                continue
            if not messages:
                continue
            if self._stopping.is_set():  # received while stopping: give them straight back
                self._release(sqs, messages)
                return
            self._invoke(sqs, messages)

    def _invoke(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        records = [sqs_record(m, self._queue_arn, self._region) for m in messages]
        ids = tuple(str(r["messageId"]) for r in records)
        account = self._queue_arn.split(":")[4]
        context = LambdaContext(self._function_name, self._region, account, self._remaining_s)
        with self._lock:
            self._running += 1
        error: str | None = None
        failed: tuple[str, ...] | None = None
        started = time.monotonic()
        try:
            failed = reported_failures(self._handler({"Records": records}, context), ids)
            if failed is None:
                error = "the handler's batchItemFailures name no record of the batch"
            elif time.monotonic() - started > self._remaining_s:
                error = f"the invocation ran past its {self._remaining_s:g}s: Lambda would have ended it"
        except Exception as exc:
            log.exception("event-source mapping: the handler raised")
            error = f"the handler raised {exc!r}"
        took = time.monotonic() - started
        failed_ids = failed if error is None and failed is not None else ids
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        deleted = self._delete(sqs, done)
        with self._lock:
            self._running -= 1
            self._invocations.append(Invocation(ids, tuple(failed_ids), error, took))
            s = self._stats
            self._stats = EsmStats(
                invocations=s.invocations + 1,
                records=s.records + len(ids),
                failures=s.failures + len(failed_ids),
                deleted=s.deleted + deleted,
                errors=s.errors + (error is not None),
                busy_s=s.busy_s + took,
            )

    def _delete(self, sqs: Any, messages: list[dict[str, Any]]) -> int:
        deleted = 0
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            try:
                response = sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                log.warning("event-source mapping: delete failed, the records will come back: %s", exc)
                continue
            for failure in response.get("Failed", []):
                log.warning("event-source mapping: could not delete a record: %s", failure.get("Message"))
            deleted += len(response.get("Successful", []))
        return deleted

    def _release(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        try:
            sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            log.warning("event-source mapping: could not release records: %s", exc)
