"""send_jobs when SendMessageBatch itself fails, against real HTTP: every job ends sent or reported.

Faults come from the emulator's HTTP layer (`inject_fault`), a deleted queue, or a socket that
never answers; nothing of ours is patched. botocore's own retries run too, so it takes
`attempts(sqs)` faults to fail one of our calls and `attempts(sqs) * TRIES` to fail a batch. The
test client retries once (production: worker.aws.MAX_ATTEMPTS) to keep botocore's backoff short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aioboto3
import anyio
import pytest
from aiobotocore.config import AioConfig
from anyio.abc import SocketAttribute, SocketStream

from orchestrator.dispatch import ENTRY_RETRIES, batches, send_jobs
from orchestrator.job_queue import delete_queue, ensure_queue
from orchestrator.sandbox import AwsEmulator
from worker.aws import retry_config
from worker.contract import ContainerChange, DeployJob
from worker.target import Target

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

REGION = "us-east-1"
BOTO_RETRIES = 2  # retry_config counts every attempt: botocore tries each call twice
TRIES = ENTRY_RETRIES + 1  # our calls per batch
FAST = 0.01  # our first retry delay (production: 0.2 s)


def make_job(i: int) -> DeployJob:
    return DeployJob(
        run_id="run-d",
        job_id=f"run-d:{i:04d}",
        target=Target(cluster="c", service=f"s{i}"),
        changes=(ContainerChange(container="app", image="r/app:2"),),
    )


@asynccontextmanager
async def sqs_client(config: AioConfig | None = None, **kwargs: Any) -> AsyncIterator[SQSClient]:
    session = aioboto3.Session(region_name=REGION)
    async with session.client("sqs", config=config or retry_config(BOTO_RETRIES), **kwargs) as client:
        yield client


def attempts(sqs: SQSClient) -> int:
    """HTTP requests botocore makes for one call before it gives up."""
    retries: dict[str, int] = sqs.meta.config.retries  # type: ignore[attr-defined]  # not in the stubs
    return retries["total_max_attempts"]


@dataclass
class Outcome:
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def on_sent(self, job: DeployJob) -> None:
        self.sent.append(job.job_id)

    def on_failed(self, job: DeployJob, message: str) -> None:
        self.failed.append((job.job_id, message))

    @property
    def failed_ids(self) -> list[str]:
        return [job_id for job_id, _ in self.failed]


async def send(sqs: SQSClient, url: str, jobs: list[DeployJob]) -> Outcome:
    outcome = Outcome()
    with anyio.fail_after(30):
        await send_jobs(sqs, url, jobs, outcome.on_sent, outcome.on_failed, retry_delay_s=FAST)
    return outcome


async def queued(sqs: SQSClient, url: str) -> list[str]:
    """Job ids of every message in the queue (each service is its own group: none is held back)."""
    ids: list[str] = []
    while messages := (
        await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
    ).get("Messages"):
        ids += [DeployJob.model_validate_json(m["Body"]).job_id for m in messages]
    return ids


@pytest.mark.parametrize("status", [500, 429])  # 429: TooManyRequestsException, throttling
async def test_transient_errors_are_retried_and_every_job_sent_once(aws: AwsEmulator, status: int) -> None:
    jobs = [make_job(i) for i in range(10)]  # one batch
    async with sqs_client() as sqs:
        queue = await ensure_queue(sqs, "jobs", 60)
        # our first call fails after botocore's attempts; our retry gets through on botocore's retry
        faults = attempts(sqs) + 1
        aws.inject_fault("SendMessageBatch", status, faults)
        outcome = await send(sqs, queue.url, jobs)
        in_queue = await queued(sqs, queue.url)
    assert outcome.failed == []
    assert sorted(outcome.sent) == sorted(in_queue) == [j.job_id for j in jobs]
    assert aws.pending_faults() == {}
    assert aws.request_counts()["SendMessageBatch"] == faults + 1


async def test_lasting_5xx_reports_every_job_of_the_batch_and_other_batches_go_on(aws: AwsEmulator) -> None:
    jobs = [make_job(i) for i in range(25)]
    groups = [{j.job_id for j in batch} for batch in batches(jobs)]
    assert [len(g) for g in groups] == [10, 10, 5]
    async with sqs_client() as sqs:
        queue = await ensure_queue(sqs, "jobs", 60)
        per_batch = attempts(sqs) * TRIES  # faults that fail one batch for good
        # The three batches race for the faults, so which one fails is open; but a request
        # succeeds only once every fault is spent, so with this many at least one batch must
        # fail, and since three failures would need 3 * per_batch, at least one gets through.
        faults = 3 * per_batch - 2
        aws.inject_fault("SendMessageBatch", 500, faults)
        outcome = await send(sqs, queue.url, jobs)
        in_queue = await queued(sqs, queue.url)

    failed = set(outcome.failed_ids)
    assert len(outcome.failed_ids) == len(failed), "a job was reported failed twice"
    assert sorted(outcome.sent + outcome.failed_ids) == sorted(j.job_id for j in jobs)
    failed_batches = [g for g in groups if g <= failed]
    assert failed == set().union(*failed_batches), "a batch was only partly reported"
    assert 1 <= len(failed_batches) <= 2
    assert sorted(in_queue) == sorted(outcome.sent), "the queue holds other than what was reported sent"
    for _, message in outcome.failed:
        assert "SendMessageBatch failed (InternalFailure" in message
        assert "may not have reached the queue" in message
        assert "ecs-fanout attach run-d" in message  # a 5xx may come after SQS stored it
    assert aws.pending_faults() == {}
    # each surviving batch: its share of the faults, then one call that got through
    assert aws.request_counts()["SendMessageBatch"] == faults + 3 - len(failed_batches)


async def test_sender_fault_is_reported_without_retrying(aws: AwsEmulator) -> None:
    jobs = [make_job(i) for i in range(5)]
    async with sqs_client() as sqs:
        queue = await ensure_queue(sqs, "jobs", 60)
        await delete_queue(sqs, queue)
        outcome = await send(sqs, queue.url, jobs)
    assert outcome.sent == []
    assert sorted(outcome.failed_ids) == [j.job_id for j in jobs]
    for _, message in outcome.failed:
        assert "NonExistentQueue" in message or "QueueDoesNotExist" in message
        assert "not retried" in message and "was not queued" in message and "attach" not in message
    assert aws.request_counts()["SendMessageBatch"] == 1, "a sender fault was retried"


async def test_read_timeout_is_reported_as_possibly_queued(aws: AwsEmulator) -> None:
    """A server that takes the request and never answers: botocore's ReadTimeoutError.

    (`aws` only provides the credentials here.)
    """
    received = 0

    async def swallow(stream: SocketStream) -> None:
        nonlocal received
        received += 1
        async with stream:
            async for _ in stream:
                pass

    jobs = [make_job(i) for i in range(3)]
    config = AioConfig(read_timeout=0.1, connect_timeout=1, retries={"mode": "standard", "max_attempts": 0})
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, swallow)
        endpoint = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
        async with sqs_client(config, endpoint_url=endpoint) as sqs:
            outcome = await send(sqs, f"{endpoint}/123456789012/jobs.fifo", jobs)
        tg.cancel_scope.cancel()
    assert outcome.sent == []
    assert sorted(outcome.failed_ids) == [j.job_id for j in jobs]
    for _, message in outcome.failed:
        assert "ReadTimeoutError" in message and "may not have reached the queue" in message
        assert "`ecs-fanout attach run-d` would show it" in message
    assert received == TRIES  # a timed-out connection is dropped: one per call, botocore tries once
