"""ECS's events end a rollout the moment ECS says so (local executor): the emulator emits ECS's
EventBridge events through moto's events backend to the rule and queue the run sets up, the run
consumes them and wakes the job's follower. Real moto server over HTTP, real redis-server."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import aioboto3
import anyio
import boto3

from orchestrator.event_rules import (
    LOCAL_EVENTS_QUEUE,
    RULE_NAME,
    EventsQueue,
    NoEvents,
    ensure_events,
    events_in_place,
)
from orchestrator.feed import read_stream
from orchestrator.local import LocalExecutor
from orchestrator.plan import plan_jobs
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.sandbox.session import sandbox_services
from orchestrator.spec import load_spec
from orchestrator.state import RunState
from tests.fleet import Recorder, run_planned
from worker.aws import AwsAccess
from worker.contract import Phase
from worker.publisher import connect_redis

REGION = "us-east-1"
RUN_ID = "run-events"
LOOKS = ("DescribeServices", "DescribeServiceDeployments")


def spec_file(tmp_path: Path, count: int, follow: str = "events") -> Path:
    """`count` services whose own polling would first look after 30 s."""
    lines = ['poll_interval = "30s"', 'heartbeat = "120s"', 'timeout = "120s"', f'follow = "{follow}"']
    for i in range(count):
        lines += [
            "[[deploy]]",
            f'cluster = "c{i % 2}"',
            f'service = "s{i}"',
            'container = "app"',
            f'image = "registry.example.com/s{i}"',
            'tag = "2.0.0"',
        ]
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def run_local(path: Path, redis_url: str, notes: list[str]) -> tuple[RunState, float]:
    spec = load_spec(str(path))
    planned = plan_jobs(spec, RUN_ID, default_region=REGION)
    state = RunState.from_plan(RUN_ID, planned)
    started = time.monotonic()
    await run_planned(
        state,
        planned,
        redis_url,
        Recorder(),
        heartbeat_s=spec.heartbeat,
        executor=lambda client: LocalExecutor(client, max_parallel=10, aws=AwsAccess(), on_note=notes.append),
    )
    return state, time.monotonic() - started


async def terminal_messages(redis_url: str) -> list[str]:
    client = connect_redis(redis_url)
    try:
        return [e.message for _, e in await read_stream(client, RUN_ID) if e.phase.terminal]
    finally:
        await client.aclose()


async def test_a_rollout_ends_when_ecs_says_so_not_at_the_next_poll(
    aws: AwsEmulator, tmp_path: Path, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=1.0))
    path = spec_file(tmp_path, 4)
    seed_services(aws.endpoint_url, REGION, sandbox_services(load_spec(str(path))))
    notes: list[str] = []
    with anyio.fail_after(60):
        state, took = await run_local(path, redis_url, notes)
    assert {job.phase for job in state.jobs.values()} == {Phase.SUCCEEDED}
    assert took < 15, f"the jobs waited for their 30 s poll ({took:.1f}s)"
    counts = aws.request_counts()
    looks = sum(counts.get(action, 0) for action in LOOKS)
    # per job: the describe before the update, then one look when ECS's event arrived
    assert looks <= 2 * len(state.jobs), counts
    messages = await terminal_messages(redis_url)
    assert all("ECS's event: completed" in m for m in messages), messages
    assert notes == []
    print(f"\nevents: 4 rollouts of 1 s ended in {took:.2f}s with a 30 s poll; looks {looks}")


async def test_ecs_saying_completed_ends_a_job_that_saw_its_deployment_without_another_look(
    aws: AwsEmulator, tmp_path: Path, redis_url: str
) -> None:
    """Once the job has seen its deployment, ECS's COMPLETED event is its end: ECS refusing every
    look from then on (500s, which a look keeps asking through until the deadline) does not hold
    the job; it ends at the event, with its task counts."""
    aws.set_scenario(RolloutScenario(rollout_s=4.0))
    path = spec_file(tmp_path, 1).read_text().replace('poll_interval = "30s"', 'poll_interval = "1s"')
    (tmp_path / "one.toml").write_text(path)
    seed_services(aws.endpoint_url, REGION, sandbox_services(load_spec(str(tmp_path / "one.toml"))))
    client = connect_redis(redis_url)

    async def refuse_looks_once_seen() -> None:
        while True:  # the stream is where a look's counts show: nothing to wait on but it
            events = [e for _, e in await read_stream(client, RUN_ID)]
            if any(e.phase is Phase.IN_PROGRESS and e.details.desired for e in events):
                break
            await anyio.sleep(0.05)
        aws.inject_fault("DescribeServiceDeployments", 500, count=1000)
        aws.inject_fault("DescribeServices", 500, count=1000)

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(refuse_looks_once_seen)
                state, took = await run_local(tmp_path / "one.toml", redis_url, [])
    finally:
        await client.aclose()
    [job] = state.jobs.values()
    assert job.phase is Phase.SUCCEEDED, job.message
    assert took < 10, f"the job waited for a look ECS refused ({took:.1f}s)"
    [message] = await terminal_messages(redis_url)
    assert re.match(r"(\d+)/\1 running s0:2;", message) and "ECS's event: completed" in message, message


async def test_without_permission_for_the_rule_the_run_polls_and_says_so(
    aws: AwsEmulator, tmp_path: Path, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.5))
    path = spec_file(tmp_path, 2).read_text().replace('poll_interval = "30s"', 'poll_interval = "200ms"')
    (tmp_path / "poll.toml").write_text(path)
    seed_services(aws.endpoint_url, REGION, sandbox_services(load_spec(str(tmp_path / "poll.toml"))))
    aws.inject_fault("PutRule", 403, count=5)
    notes: list[str] = []
    with anyio.fail_after(60):
        state, _ = await run_local(tmp_path / "poll.toml", redis_url, notes)
    assert {job.phase for job in state.jobs.values()} == {Phase.SUCCEEDED}
    [note] = notes
    assert "no permission to set up ECS's events" in note and "following by polling there" in note


async def test_the_set_up_is_idempotent_and_concurrent_across_regions(aws: AwsEmulator) -> None:
    import aioboto3

    regions = ["us-east-1", "eu-west-1"]

    async def one(region: str) -> EventsQueue | NoEvents:
        session = aioboto3.Session()
        async with (
            session.client("sqs", region_name=region) as sqs,
            session.client("events", region_name=region) as events,
        ):
            return await ensure_events(region, sqs, events, queue=LOCAL_EVENTS_QUEUE)

    async def set_up_all() -> list[EventsQueue | NoEvents]:
        results: list[EventsQueue | NoEvents] = []

        async def keep(region: str) -> None:
            results.append(await one(region))

        async with anyio.create_task_group() as tg:
            for region in regions * 2:  # twice each, side by side
                tg.start_soon(keep, region)
        return results

    first, second = await set_up_all(), await set_up_all()
    queues = [r for r in first + second if isinstance(r, EventsQueue)]
    assert len(queues) == 8
    assert len({q.arn for q in queues}) == 2
    for region in regions:
        events = boto3.client("events", region_name=region, endpoint_url=aws.endpoint_url)
        rules = events.list_rules(NamePrefix=RULE_NAME)["Rules"]
        assert len(rules) == 1
        assert json.loads(rules[0]["EventPattern"])["source"] == ["aws.ecs"]
        targets = events.list_targets_by_rule(Rule=RULE_NAME)["Targets"]
        assert [t["Id"] for t in targets] == [LOCAL_EVENTS_QUEUE]


async def test_a_look_finds_the_rule_and_queue_in_place_only_once_they_are_as_set_up(
    aws: AwsEmulator,
) -> None:
    """What the local executor reads beside preflight (writing must wait for the checks): nothing
    in place at first, the queue as set up afterwards, and not in place again once it differs."""
    import aioboto3

    region = "eu-west-1"
    async with (
        aioboto3.Session().client("sqs", region_name=region) as sqs,
        aioboto3.Session().client("events", region_name=region) as events,
    ):
        before = aws.request_counts()
        assert await events_in_place(region, sqs, events, queue=LOCAL_EVENTS_QUEUE) is None
        after = aws.request_counts()
        assert [
            a for a in after if after[a] != before.get(a) and a.startswith(("Put", "Create", "Set"))
        ] == []
        made = await ensure_events(region, sqs, events, queue=LOCAL_EVENTS_QUEUE)
        assert isinstance(made, EventsQueue)
        assert await events_in_place(region, sqs, events, queue=LOCAL_EVENTS_QUEUE) == made
        await sqs.set_queue_attributes(QueueUrl=made.url, Attributes={"VisibilityTimeout": "5"})
        assert await events_in_place(region, sqs, events, queue=LOCAL_EVENTS_QUEUE) is None


def test_the_rule_lets_through_only_a_deployments_end(aws: AwsEmulator) -> None:
    """Nothing but an end wakes a job: every other ECS event would be a message read for nothing
    (an account's task state changes alone outnumber its deployments by far)."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.events.models import events_backends

    async def set_up() -> EventsQueue | NoEvents:
        session = aioboto3.Session()
        async with (
            session.client("sqs", region_name="us-east-1") as sqs,
            session.client("events", region_name="us-east-1") as events,
        ):
            return await ensure_events("us-east-1", sqs, events, queue=LOCAL_EVENTS_QUEUE)

    queue = anyio.run(set_up)
    assert isinstance(queue, EventsQueue)
    sent = [
        ("ECS Deployment State Change", "SERVICE_DEPLOYMENT_IN_PROGRESS"),
        ("ECS Deployment State Change", "SERVICE_DEPLOYMENT_COMPLETED"),
        ("ECS Deployment State Change", "SERVICE_DEPLOYMENT_FAILED"),
        ("ECS Task State Change", None),
        ("ECS Service Action", "SERVICE_STEADY_STATE"),
    ]
    bus = events_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]  # as ECS puts them (callers may not)
    for detail_type, name in sent:
        detail = {"deploymentId": "ecs-svc/1"} | ({"eventName": name} if name else {})
        bus.put_events([{"Source": "aws.ecs", "DetailType": detail_type, "Detail": json.dumps(detail)}])
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=aws.endpoint_url)
    bodies = sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10)["Messages"]
    got = sorted(json.loads(m["Body"])["detail"]["eventName"] for m in bodies)
    assert got == ["SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_FAILED"]
