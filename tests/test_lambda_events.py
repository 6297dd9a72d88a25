"""Lambda with ECS's events: a worker does not stay alive to wait. It ends after its
UpdateService and is invoked again by ECS's event (the events queue, a second event source) or
by its timer (a delayed message on a standard queue, a third). Real moto server over HTTP, real
redis-server, our emulator of Lambda's event-source mappings on all three queues."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from orchestrator.event_rules import EVENTS_QUEUE, EventsQueue, ensure_events
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.sandbox.esm import EventSourceMappingEmulator
from tests.test_handler import (
    REGION,
    WAIT_S,
    events,
    make_job,
    make_queues,
    outcome,
    seed,
    send,
    sqs,
    wait_for,
)
from worker.aws import AwsAccess
from worker.contract import JobOptions, Phase
from worker.handler import Handler, make_handler
from worker.settings import WorkerSettings

ROLLOUT_S = 20.0
# A poll of its own every 20 s (heartbeat/3): the events must end the job long before.
OPTIONS = JobOptions(timeout_s=120, poll_min_s=2, poll_max_s=15, heartbeat_s=60)


class Timed:
    """The handler, with each invocation counted and timed (what Lambda bills)."""

    def __init__(self, inner: Handler) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.durations: list[float] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.monotonic()
        try:
            return self._inner(event, context)
        finally:
            with self._lock:
                self.durations.append(time.monotonic() - started)


def events_queue(aws: AwsEmulator) -> EventsQueue:
    async def set_up() -> EventsQueue:
        import aioboto3

        session = aioboto3.Session()
        async with (
            session.client("sqs", region_name=REGION) as q,
            session.client("events", region_name=REGION) as e,
        ):
            got = await ensure_events(REGION, q, e, queue=EVENTS_QUEUE)
        assert isinstance(got, EventsQueue), got
        return got

    return anyio.run(set_up)


@pytest.fixture
def lambda_three_queues(
    aws: AwsEmulator, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Timed, EventsQueue]]:
    """The job queue, the events queue and the timer queue, each mapped to the (timed) handler."""
    aws.set_scenario(RolloutScenario(rollout_s=ROLLOUT_S))
    monkeypatch.setenv("REDIS_URL", redis_url)
    jobs_url, _ = make_queues(aws)
    timer_url = sqs(aws).create_queue(QueueName="ecs-fanout-timers")["QueueUrl"]
    timer_arn = sqs(aws).get_queue_attributes(QueueUrl=timer_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    ecs_events = events_queue(aws)
    settings = WorkerSettings(redis_url=redis_url, region=REGION, timer_queue_arn=timer_arn)
    timed = Timed(make_handler(settings, AwsAccess()))
    mappings = [
        EventSourceMappingEmulator(url, timed, region=REGION, endpoint_url=aws.endpoint_url)
        for url in (jobs_url, ecs_events.url, timer_url)
    ]
    for esm in mappings:
        esm.start()
    try:
        yield jobs_url, timed, ecs_events
    finally:
        for esm in mappings:
            esm.stop()


def test_a_parked_rollout_ends_on_ecs_event_with_little_lambda_time(
    aws: AwsEmulator, redis_url: str, lambda_three_queues: tuple[str, Timed, EventsQueue]
) -> None:
    jobs_url, timed, _ = lambda_three_queues
    seed(aws, "api", "web")
    jobs = [make_job(name, options=OPTIONS) for name in ("api", "web")]
    started = time.monotonic()
    send(aws, jobs_url, jobs)
    wait_for(lambda: all(outcome(redis_url, job) is not None for job in jobs), timeout_s=WAIT_S)
    took = time.monotonic() - started
    assert [outcome(redis_url, job) for job in jobs] == [Phase.SUCCEEDED, Phase.SUCCEEDED]
    assert took < ROLLOUT_S + 8, f"the jobs waited for their own poll ({took:.1f}s)"
    for job in jobs:
        said = [e for e in events(redis_url, job_id=job.job_id) if e.phase.terminal]
        assert len(said) == 1 and "ECS's event: completed" in said[0].message
    billed = sum(timed.durations)
    print(
        f"\nlambda+events: {len(jobs)} rollouts of {ROLLOUT_S:g}s ended in {took:.1f}s; "
        f"{len(timed.durations)} invocations ({', '.join(f'{d:.2f}' for d in timed.durations)}s), "
        f"{billed:.2f}s billed in all ({billed / len(jobs):.2f}s per job)"
    )
    assert len(timed.durations) <= 6 * len(jobs), timed.durations  # the job, ECS's events, timers
    # A worker that stayed alive would bill the whole rollout per job. Generous: this machine is
    # shared, and each emulated invocation pays a fresh event loop, clients and Redis connection.
    assert billed < 0.5 * ROLLOUT_S * len(jobs), [round(d, 2) for d in timed.durations]


def test_a_redelivered_ecs_event_does_nothing_twice(
    aws: AwsEmulator, redis_url: str, lambda_three_queues: tuple[str, Timed, EventsQueue]
) -> None:
    jobs_url, timed, ecs_events = lambda_three_queues
    seed(aws, "api")
    job = make_job("api", options=OPTIONS)
    send(aws, jobs_url, [job])
    wait_for(lambda: outcome(redis_url, job) is not None)
    before = events(redis_url, job_id=job.job_id)
    # ECS's COMPLETED event for the job's deployment, delivered again (at least once)
    deployment_id = next(e.details.deployment_id for e in before if e.phase is Phase.UPDATED)
    body = (
        '{"version": "0", "id": "redelivered-1", "detail-type": "ECS Deployment State Change", '
        '"source": "aws.ecs", "account": "123456789012", "region": "us-east-1", "resources": [], '
        f'"detail": {{"eventName": "SERVICE_DEPLOYMENT_COMPLETED", "deploymentId": "{deployment_id}"}}}}'
    )
    calls = len(timed.durations)
    for _ in range(2):
        sqs(aws).send_message(QueueUrl=ecs_events.url, MessageBody=body)
    wait_for(lambda: len(timed.durations) >= calls + 2)
    time.sleep(0.5)
    assert events(redis_url, job_id=job.job_id) == before  # not a word more, no second end
