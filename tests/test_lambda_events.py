"""Lambda with ECS's events: a worker does not stay alive to wait. It ends after its
UpdateService and is invoked again by ECS's event (the events queue, a second event source) or
by its timer (a delayed message on a standard queue, a third). Real moto server over HTTP, real
redis-server, our emulator of Lambda's event-source mappings on all three queues."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from orchestrator.event_rules import EVENTS_QUEUE, EventsQueue, ensure_events
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.sandbox.ecs_event_emitter import deployment_event
from orchestrator.sandbox.esm import EventSourceMappingEmulator, LambdaContext, sqs_record
from tests.test_handler import (
    NEWER,
    REGION,
    WAIT_S,
    events,
    image_of,
    make_job,
    make_queues,
    outcome,
    seed,
    send,
    sqs,
    wait_for,
)
from worker.aws import AwsAccess
from worker.contract import DeployJob, JobOptions, Phase
from worker.deployment_map import first_sight, remember
from worker.engine import Deployer
from worker.handler import Handler, make_handler
from worker.ledger import JobLedger
from worker.park import ParkingWakeups, TimerMessage, resume, run_parked
from worker.publisher import connect_redis
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


def test_a_job_of_another_run_waits_for_a_parked_job_then_deploys(
    aws: AwsEmulator, redis_url: str, lambda_three_queues: tuple[str, Timed, EventsQueue]
) -> None:
    """The parked job is resumed by ECS's event, not by its service's FIFO group: the second
    run's job waits for it (saying so) instead of handing over to its continuation again and
    again, and deploys once the first has ended."""
    jobs_url, timed, _ = lambda_three_queues
    seed(aws, "api")
    first = make_job("api", options=OPTIONS)
    second = make_job("api", NEWER, run_id="20260101T000001Z-def456", options=OPTIONS)
    send(aws, jobs_url, [first])
    wait_for(lambda: any(e.phase is Phase.UPDATED for e in events(redis_url, job_id=first.job_id)))
    wait_for(lambda: len(timed.durations) >= 1)  # its invocation ended: the job is parked
    send(aws, jobs_url, [second])
    wait_for(lambda: outcome(redis_url, second) is not None, timeout_s=2 * ROLLOUT_S + WAIT_S)
    assert (outcome(redis_url, first), outcome(redis_url, second)) == (Phase.SUCCEEDED, Phase.SUCCEEDED)
    said = events(redis_url, second.run_id, second.job_id)
    assert not [e for e in said if e.phase is Phase.HANDED_OVER], [e.message for e in said]
    assert any(f"waiting for run {first.run_id}" in e.message for e in said)
    first_end = next(e for e in events(redis_url, job_id=first.job_id) if e.phase.terminal)
    second_update = next(e for e in said if e.phase is Phase.UPDATED)
    assert second_update.ts >= first_end.ts  # never two deployments at once
    assert image_of(aws, "api") == NEWER


class HeldWakeups(ParkingWakeups):
    """An invocation that, about to park, is held there until `go` (the moment another wake
    comes in): the window the poke must cover. The holder takes the poke before parking and
    again after releasing the lease; the test fails only when both takes are gone."""

    def __init__(self, redis: Any, job: DeployJob, at_park: anyio.Event, go: anyio.Event) -> None:
        super().__init__(redis, job)
        self._at_park, self._go = at_park, go

    async def sleep(self, key: str, seconds: float) -> bool:
        if key not in self._resumed:
            self._at_park.set()
            await self._go.wait()
        return await super().sleep(key, seconds)


async def test_a_wake_that_comes_while_another_invocation_holds_the_job_is_not_lost(
    aws: AwsEmulator, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=2.0))
    seed(aws, "api")
    job = make_job("api", options=OPTIONS)
    timers: list[TimerMessage] = []

    async def send_timer(body: str, delay_s: int) -> None:
        timers.append(TimerMessage.model_validate_json(body))

    redis = connect_redis(redis_url)
    try:
        async with AwsAccess().ecs(REGION) as ecs:

            def deployer(wakeups: ParkingWakeups) -> Deployer:
                made = Deployer.on_redis(ecs, redis, scope=f"-/{REGION}")
                made.wakeups = wakeups  # as the handler makes one for a job that parks
                return made

            # the job's first invocation: UpdateService, then it parks (its timer set)
            first = ParkingWakeups(redis, job)
            assert await run_parked(deployer(first), first, job, None, send_timer) is None
            [timer] = timers
            # its timer resumes it while the rollout still runs: one look, and it is about to park
            at_park, go = anyio.Event(), anyio.Event()
            held = HeldWakeups(redis, job, at_park, go)
            results: list[Phase | None] = []

            async def by_timer() -> None:
                phase = await resume(
                    deployer(held), held, job, timer.deployment_id, None, send_timer, timer_due=timer.due
                )
                results.append(phase)

            async with anyio.create_task_group() as tg:
                tg.start_soon(by_timer)
                await at_park.wait()
                await anyio.sleep(3.0)  # the rollout ends meanwhile; ECS's event comes in
                by_event = ParkingWakeups(redis, job)
                woken = await resume(
                    deployer(by_event),
                    by_event,
                    job,
                    timer.deployment_id,
                    None,
                    send_timer,
                    said="ECS's event: completed",
                )
                assert woken is None  # the job is held: the wake is left as a poke
                go.set()
        # the holder took the poke instead of parking for its 20 s timer, and saw the end
        assert results == [Phase.SUCCEEDED]
        assert len(timers) == 1, "it parked again although a wake had come"
        assert (await JobLedger(redis).read(job)).terminal is Phase.SUCCEEDED
    finally:
        await redis.aclose()


def ecs_end_event(event_id: str, deployment_id: str) -> str:
    """An SQS body as EventBridge delivers ECS's "deployment completed" event."""
    entry = deployment_event("arn:svc/api", deployment_id, "SERVICE_DEPLOYMENT_COMPLETED", time.time(), "")
    envelope = {
        "id": event_id,
        "source": entry["Source"],
        "detail-type": entry["DetailType"],
        "detail": json.loads(entry["Detail"]),
        "resources": entry["Resources"],
    }
    return json.dumps(envelope)


async def remember_local(redis_url: str, job: DeployJob, deployment_id: str) -> None:
    client = connect_redis(redis_url)
    await remember(client, job, deployment_id)  # followed in a local process: not parked
    await client.aclose()


async def seen_before(redis_url: str, event_id: str) -> bool:
    client = connect_redis(redis_url)
    try:
        return not await first_sight(client, event_id)
    finally:
        await client.aclose()


def test_an_ecs_event_for_a_local_runs_job_is_left_to_the_local_feed(
    aws: AwsEmulator, redis_url: str
) -> None:
    """The rule sends every ECS event to Lambda's queue and the local runs' queue alike: a
    Lambda worker must not take (mark seen) the end of a deployment a local run's job follows,
    or the local feed would ignore it and its job wait for its safety poll."""
    queue = events_queue(aws)
    deployment_id = "ecs-svc/1234567890123456789"
    anyio.run(remember_local, redis_url, make_job("api", options=OPTIONS), deployment_id)
    client = sqs(aws)
    client.send_message(QueueUrl=queue.url, MessageBody=ecs_end_event("event-of-a-local-job", deployment_id))
    [message] = client.receive_message(QueueUrl=queue.url, AttributeNames=["All"])["Messages"]
    timer_arn = queue.arn.replace(EVENTS_QUEUE, "ecs-fanout-timers")
    settings = WorkerSettings(redis_url=redis_url, region=REGION, timer_queue_arn=timer_arn)

    invocation = {"Records": [sqs_record(message, queue.arn, REGION)]}
    response = make_handler(settings, AwsAccess())(invocation, LambdaContext("f", REGION, "1", 60.0))

    assert response == {"batchItemFailures": []}
    assert not anyio.run(seen_before, redis_url, "event-of-a-local-job"), "Lambda took the local job's event"
