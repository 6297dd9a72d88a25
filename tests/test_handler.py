"""The Lambda path: SQS FIFO -> event-source-mapping emulator -> `worker.handler.handler`.

Everything is real except Lambda itself: the moto server's SQS and ECS (with the rollout
simulator), a real redis-server, and our emulator of Lambda's SQS poller in between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import boto3
import pytest
import redis

from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.sandbox.esm import EventSourceMappingEmulator, LambdaContext, sqs_record
from tests import fault_tally
from worker.aws import AwsAccess
from worker.contract import (
    ContainerChange,
    DeployJob,
    JobOptions,
    Phase,
    WorkerEvent,
    dedup_id,
    group_id,
    job_from_message,
)
from worker.engine import Deployer
from worker.handler import (
    MALFORMED_SEQ,
    handler,
)
from worker.keys import event_stream
from worker.ledger import JobLedger
from worker.publisher import EventPublisher, connect_redis
from worker.target import Target

REGION = "us-east-1"
CLUSTER = "prod"
RUN = "20260101T000000Z-abc123"
OLD = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:1.0"
NEW = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:2.0"
NEWER = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:3.0"
FAST = JobOptions(timeout_s=30, poll_min_s=0.1, poll_max_s=0.3, heartbeat_s=3)
WAIT_S = 30.0


# --- helpers ----------------------------------------------------------------------------------


def sqs(aws: AwsEmulator) -> Any:
    return boto3.client("sqs", region_name=REGION, endpoint_url=aws.endpoint_url)


def ecs(aws: AwsEmulator) -> Any:
    return boto3.client("ecs", region_name=REGION, endpoint_url=aws.endpoint_url)


def make_queues(aws: AwsEmulator, *, visibility_s: int = 30, dlq: bool = True) -> tuple[str, str | None]:
    """A FIFO job queue and (optionally) its FIFO dead-letter queue, maxReceiveCount 5."""
    client = sqs(aws)
    attributes = {"FifoQueue": "true", "VisibilityTimeout": str(visibility_s)}
    dlq_url = None
    if dlq:
        dlq_url = client.create_queue(QueueName="jobs-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    url: str = client.create_queue(QueueName="jobs.fifo", Attributes=attributes)["QueueUrl"]
    return url, dlq_url


def seed(aws: AwsEmulator, *services: str) -> None:
    seed_services(aws.endpoint_url, REGION, [(CLUSTER, name, {"app": OLD}) for name in services])


def make_job(service: str, image: str = NEW, *, run_id: str = RUN, **changes: Any) -> DeployJob:
    job = DeployJob(
        run_id=run_id,
        job_id=f"{run_id}:{service}",
        target=Target(cluster=CLUSTER, service=service),
        changes=(ContainerChange(container="app", image=image),),
        options=FAST,
    )
    return job.model_copy(update=changes)


def send(aws: AwsEmulator, url: str, jobs: list[DeployJob]) -> list[str]:
    """Send the jobs the way the orchestrator does, one at a time (in order); their message ids."""
    client = sqs(aws)
    return [
        client.send_message(
            QueueUrl=url,
            MessageBody=job.model_dump_json(),
            MessageGroupId=group_id(job),
            MessageDeduplicationId=dedup_id(job),
        )["MessageId"]
        for job in jobs
    ]


def send_raw(aws: AwsEmulator, url: str, body: str, group: str) -> str:
    message_id: str = sqs(aws).send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=f"raw-{group}"
    )["MessageId"]
    return message_id


def events(redis_url: str, run_id: str = RUN, job_id: str | None = None) -> list[WorkerEvent]:
    client = redis.Redis.from_url(redis_url)
    try:
        entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", client.xrange(event_stream(run_id)))
    finally:
        client.close()
    found = [WorkerEvent.from_json(fields[b"event"]) for _, fields in entries]
    return [e for e in found if job_id is None or e.job_id == job_id]


def outcome(redis_url: str, job: DeployJob) -> Phase | None:
    return next((e.phase for e in events(redis_url, job.run_id, job.job_id) if e.phase.terminal), None)


def wait_for(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def queue_counts(aws: AwsEmulator, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs(aws).get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])


def image_of(aws: AwsEmulator, service: str) -> str:
    client = ecs(aws)
    arn = client.describe_services(cluster=CLUSTER, services=[service])["services"][0]["taskDefinition"]
    return str(
        client.describe_task_definition(taskDefinition=arn)["taskDefinition"]["containerDefinitions"][0][
            "image"
        ]
    )


@pytest.fixture
def lambda_env(aws: AwsEmulator, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AwsEmulator:
    """The worker's environment as the Lambda function has it: AWS_* (from `aws`) and REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    return aws


@pytest.fixture
def mapping(lambda_env: AwsEmulator) -> Iterator[Callable[..., EventSourceMappingEmulator]]:
    """Starts emulated mappings on a queue, with the real handler unless told otherwise."""
    started: list[EventSourceMappingEmulator] = []

    def start(url: str, **options: Any) -> EventSourceMappingEmulator:
        options.setdefault("handler", handler)
        esm = EventSourceMappingEmulator(
            url, options.pop("handler"), region=REGION, endpoint_url=lambda_env.endpoint_url, **options
        )
        started.append(esm.start())
        return esm

    yield start
    for esm in started:
        esm.stop()


# --- through the emulated mapping -------------------------------------------------------------


def test_a_batch_of_services_all_succeed_concurrently(
    lambda_env: AwsEmulator, redis_url: str, mapping: Callable[..., EventSourceMappingEmulator]
) -> None:
    services = ["api", "web", "billing", "search"]
    seed(lambda_env, *services)
    url, _ = make_queues(lambda_env)
    jobs = [make_job(name) for name in services]
    send(lambda_env, url, jobs)

    esm = mapping(url, max_concurrency=1)
    wait_for(lambda: all(outcome(redis_url, job) for job in jobs))
    assert esm.wait_idle(WAIT_S)

    assert [outcome(redis_url, job) for job in jobs] == [Phase.SUCCEEDED] * len(jobs)
    assert all(image_of(lambda_env, name) == NEW for name in services)
    assert queue_counts(lambda_env, url) == (0, 0)
    assert esm.stats.invocations == 1 and esm.stats.records == len(jobs) and esm.stats.failures == 0
    # one service's group did not wait for another's: every job started before any ended
    by_job = {job.job_id: events(redis_url, job_id=job.job_id) for job in jobs}
    assert max(e[0].ts for e in by_job.values()) < min(e[-1].ts for e in by_job.values())


def test_a_record_that_raises_fails_with_every_record_after_it(
    lambda_env: AwsEmulator, redis_url: str, mapping: Callable[..., EventSourceMappingEmulator]
) -> None:
    seed(lambda_env, "a", "b", "c", "d")
    url, _ = make_queues(lambda_env, visibility_s=60)
    # botocore refuses to build a client for a region name like this one: a real fault
    jobs = [
        make_job("a"),
        make_job("b"),
        make_job("c", target=Target(cluster=CLUSTER, service="c", region="no such region!")),
        make_job("d"),
    ]
    ids = send(lambda_env, url, jobs)

    esm = mapping(url, max_concurrency=1)
    wait_for(lambda: esm.stats.invocations >= 1)
    esm.stop()

    [invocation] = esm.invocations
    assert invocation.message_ids == tuple(ids) and invocation.error is None
    assert invocation.failed == (ids[2], ids[3])
    assert [outcome(redis_url, job) for job in jobs[:2]] == [Phase.SUCCEEDED, Phase.SUCCEEDED]
    assert outcome(redis_url, jobs[2]) is None  # it never started: it comes back to be retried
    assert queue_counts(lambda_env, url) == (0, 2)  # the first two are deleted


def test_jobs_of_one_service_in_one_batch_run_in_order(
    lambda_env: AwsEmulator, redis_url: str, mapping: Callable[..., EventSourceMappingEmulator]
) -> None:
    seed(lambda_env, "api")
    url, _ = make_queues(lambda_env)
    first, second = make_job("api", NEW, run_id="run-1"), make_job("api", NEWER, run_id="run-2")
    assert group_id(first) == group_id(second)
    send(lambda_env, url, [first, second])

    esm = mapping(url, max_concurrency=3)
    wait_for(lambda: outcome(redis_url, second) is not None)
    assert esm.wait_idle(WAIT_S)

    assert (outcome(redis_url, first), outcome(redis_url, second)) == (Phase.SUCCEEDED, Phase.SUCCEEDED)
    assert [len(i.message_ids) for i in esm.invocations] == [2]  # one batch, yet never side by side
    first_events, second_events = events(redis_url, "run-1"), events(redis_url, "run-2")
    assert first_events[-1].ts <= second_events[0].ts
    assert image_of(lambda_env, "api") == NEWER
    assert lambda_env.request_counts().get("UpdateService") == 2


def test_malformed_records_go_to_the_dead_letter_queue_and_the_rest_succeed(
    lambda_env: AwsEmulator, redis_url: str, mapping: Callable[..., EventSourceMappingEmulator]
) -> None:
    seed(lambda_env, "api", "web")
    url, dlq_url = make_queues(lambda_env)
    assert dlq_url is not None
    broken = json.dumps({"run_id": RUN, "job_id": f"{RUN}:lost", "cluster": CLUSTER})  # no changes
    api, web = make_job("api"), make_job("web")
    send(lambda_env, url, [api])
    send_raw(lambda_env, url, "{not json", "garbage")
    send_raw(lambda_env, url, broken, "broken")
    send(lambda_env, url, [web])

    esm = mapping(url, max_concurrency=1)
    wait_for(lambda: outcome(redis_url, web) is not None)
    assert esm.wait_idle(WAIT_S)

    assert (outcome(redis_url, api), outcome(redis_url, web)) == (Phase.SUCCEEDED, Phase.SUCCEEDED)
    assert esm.stats.failures == 0 and queue_counts(lambda_env, url) == (0, 0)
    dead = sqs(lambda_env).receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(m["Body"] for m in dead) == sorted(["{not json", broken])
    [verdict] = events(redis_url, job_id=f"{RUN}:lost")
    assert verdict.phase is Phase.FAILED and verdict.seq == MALFORMED_SEQ
    assert "malformed" in verdict.message and "dead-letter queue" in verdict.message
    fault_tally.record(
        "malformed SQS messages",
        faults=2,
        jobs=2,
        duplicate_registrations=fault_tally.duplicate_registrations(["api", "web"], REGION),
    )


def test_malformed_record_without_a_dead_letter_queue_is_reported_failed(
    lambda_env: AwsEmulator, redis_url: str, mapping: Callable[..., EventSourceMappingEmulator]
) -> None:
    seed(lambda_env, "api")
    url, _ = make_queues(lambda_env, dlq=False, visibility_s=60)
    api = make_job("api")
    [api_id] = send(lambda_env, url, [api])
    garbage_id = send_raw(lambda_env, url, "{not json", "garbage")

    esm = mapping(url, max_concurrency=1)
    wait_for(lambda: esm.stats.invocations >= 1)
    esm.stop()

    [invocation] = esm.invocations
    assert invocation.message_ids == (api_id, garbage_id) and invocation.failed == (garbage_id,)
    assert outcome(redis_url, api) is Phase.SUCCEEDED
    assert queue_counts(lambda_env, url) == (0, 1)


def test_a_rollout_longer_than_an_invocation_is_handed_over_and_deployed_once(
    lambda_env: AwsEmulator, redis_url: str, mapping: Callable[..., EventSourceMappingEmulator]
) -> None:
    lambda_env.set_scenario(RolloutScenario(rollout_s=5.0))
    seed(lambda_env, "api")
    url, _ = make_queues(lambda_env, visibility_s=20)
    job = make_job("api")
    send(lambda_env, url, [job])
    before = lambda_env.request_counts()

    esm = mapping(url, max_concurrency=2, remaining_time_s=3.0)
    wait_for(lambda: outcome(redis_url, job) is not None)
    assert esm.wait_idle(WAIT_S)

    assert outcome(redis_url, job) is Phase.SUCCEEDED
    after = lambda_env.request_counts()
    assert after.get("RegisterTaskDefinition", 0) - before.get("RegisterTaskDefinition", 0) == 1
    assert after.get("UpdateService", 0) - before.get("UpdateService", 0) == 1
    assert image_of(lambda_env, "api") == NEW
    assert esm.stats.invocations >= 2 and esm.stats.errors == 0  # no invocation overran its time
    history = events(redis_url, job_id=job.job_id)
    assert [e.seq for e in history] == sorted({e.seq for e in history})
    assert Phase.HANDED_OVER in [e.phase for e in history]
    assert any(e.message.startswith("continuing (hand-over 1)") for e in history)
    assert queue_counts(lambda_env, url) == (0, 0)


def test_the_emulated_event_has_lambdas_shape(
    lambda_env: AwsEmulator, mapping: Callable[..., EventSourceMappingEmulator]
) -> None:
    url, _ = make_queues(lambda_env)
    sqs(lambda_env).send_message(
        QueueUrl=url,
        MessageBody="hello",
        MessageGroupId="g",
        MessageDeduplicationId="d",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "job"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    seen: list[tuple[dict[str, Any], Any]] = []

    def record_calls(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append((event, context))
        return {"batchItemFailures": []}

    esm = mapping(url, handler=record_calls, remaining_time_s=60.0)
    assert esm.wait_idle(WAIT_S)
    [(event, context)] = seen
    [record] = event["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["body"] == "hello" and record["eventSource"] == "aws:sqs" and record["awsRegion"] == REGION
    assert record["eventSourceARN"].endswith(":jobs.fifo")
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert record["attributes"]["MessageGroupId"] == "g"
    assert record["attributes"]["MessageDeduplicationId"] == "d"
    assert record["attributes"]["SequenceNumber"]
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "job",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
    assert 0 < context.get_remaining_time_in_millis() <= 60_000
    assert context.invoked_function_arn.startswith(f"arn:aws:lambda:{REGION}:")


def test_a_failed_invocation_leaves_the_batch_to_come_back(
    lambda_env: AwsEmulator, mapping: Callable[..., EventSourceMappingEmulator]
) -> None:
    url, _ = make_queues(lambda_env, visibility_s=1)
    send_raw(lambda_env, url, "hello", "g")
    receive_counts: list[str] = []

    def crash_once(event: dict[str, Any], context: Any) -> dict[str, Any]:
        receive_counts.append(event["Records"][0]["attributes"]["ApproximateReceiveCount"])
        if len(receive_counts) == 1:
            raise RuntimeError("the function crashed")
        return {}

    esm = mapping(url, handler=crash_once)
    wait_for(lambda: esm.stats.invocations >= 2)
    assert esm.wait_idle(WAIT_S)
    assert receive_counts == ["1", "2"]
    assert esm.stats.errors == 1 and esm.stats.deleted == 1


# --- the engine's hand-over and the handler on its own ------------------------------------------


async def test_engine_hands_over_and_the_continuation_takes_the_job_at_once(
    aws: AwsEmulator, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=2.0))
    seed(aws, "api")
    job = make_job("api")
    client = connect_redis(redis_url)
    try:
        async with AwsAccess().ecs(REGION) as ecs_api:
            # the default 60 s lease: a lease left behind would make the continuation a duplicate
            deployer = Deployer(ecs_api, JobLedger(client), EventPublisher(client))
            assert await deployer.run(job, hand_over_at=time.time() + 0.5) is Phase.HANDED_OVER
            assert outcome(redis_url, job) is None
            continuation = job.model_copy(update={"continuation": job.continuation + 1})
            assert await deployer.run(continuation) is Phase.SUCCEEDED
    finally:
        await client.aclose()
    assert aws.request_counts().get("UpdateService") == 1
    phases = [e.phase for e in events(redis_url, job_id=job.job_id)]
    assert phases.index(Phase.HANDED_OVER) > phases.index(Phase.UPDATED)
    assert phases.count(Phase.UPDATED) == 1 and phases[-1] is Phase.SUCCEEDED


def test_a_record_with_no_time_left_is_passed_on_untouched(lambda_env: AwsEmulator, redis_url: str) -> None:
    seed(lambda_env, "api")
    url, _ = make_queues(lambda_env)
    job = make_job("api")
    send(lambda_env, url, [job])
    client = sqs(lambda_env)
    [message] = client.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    before = lambda_env.request_counts()

    response = handler({"Records": [sqs_record(message, arn, REGION)]}, LambdaContext("f", REGION, "1", 0.0))

    assert response == {"batchItemFailures": []}
    assert lambda_env.request_counts().get("DescribeServices") == before.get("DescribeServices")
    client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    [passed_on] = client.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    assert job_from_message(passed_on["Body"]) == job.model_copy(update={"continuation": 1})
    assert passed_on["Attributes"]["MessageDeduplicationId"] == f"{job.job_id}:1"
    assert passed_on["Attributes"]["MessageGroupId"] == group_id(job)
