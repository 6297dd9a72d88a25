"""The lambda executor sets up ECS's events itself: the timer queue, the rule and events queue of
each account and region, their mappings, and the function's timer variable; then a run ends
through ECS's event with little Lambda time. The real executor path (pack, function, queues,
mappings, dispatch, run core), the sandbox's Lambda (our event-source-mapping emulator on every
mapped queue), a real moto server over HTTP and a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
import boto3
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID as ACCOUNT

from orchestrator.event_rules import EVENTS_QUEUE, RULE_NAME
from orchestrator.lambda_events import TIMER_QUEUE
from orchestrator.lambda_executor import LambdaExecutor
from orchestrator.plan import plan_jobs
from orchestrator.run import run_jobs
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.sandbox.session import SandboxLambda, sandbox_places
from orchestrator.settings import LambdaSettings
from orchestrator.spec import load_spec
from orchestrator.state import RunState
from tests.fleet import Recorder
from worker.contract import Phase
from worker.publisher import connect_redis
from worker.settings import TIMER_QUEUE_ENV, WorkerSettings

REGION = "us-east-1"
OTHER_REGION = "us-west-2"
RUN_ID = "run-lambda-events"
FUNCTION = "ecs-fanout-worker"


def spec_file(tmp_path: Path, count: int, follow: str, elsewhere: int = 0) -> Path:
    """`count` services (the last `elsewhere` of them in `OTHER_REGION`); each job's own poll,
    parked, would come every 30 s (the safety poll)."""
    lines = ['poll_interval = "2s"', 'heartbeat = "120s"', 'timeout = "120s"', f'follow = "{follow}"']
    for i in range(count):
        lines += [
            "[[deploy]]",
            f'cluster = "c{i % 2}"',
            f'service = "s{i}"',
            'container = "app"',
            f'image = "registry.example.com/s{i}"',
            'tag = "2.0.0"',
        ]
        lines += [f'region = "{OTHER_REGION}"'] if i >= count - elsewhere else []
    path = tmp_path / f"{follow}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class LambdaRun:
    state: RunState
    took_s: float  # from the jobs' dispatch to the run's end
    steps: list[tuple[str, str, str]]
    billed_s: float  # the function's invocations, summed over every mapped queue
    invocations: int


@pytest.fixture
def sandbox_lambda(aws: AwsEmulator) -> Iterator[SandboxLambda]:
    with ExitStack() as stack:
        yield SandboxLambda(aws.endpoint_url, REGION, stack)


def run_lambda(
    sandbox: SandboxLambda, path: Path, redis_url: str, settings: LambdaSettings | None = None
) -> LambdaRun:
    spec = load_spec(str(path))
    for (_, region), services in sandbox_places(spec, REGION).items():
        seed_services(sandbox.aws.endpoint_url or "", region, services)
    planned = plan_jobs(spec, RUN_ID, default_region=REGION)
    state = RunState.from_plan(RUN_ID, planned)
    settings = sandbox.prepare(settings or LambdaSettings(timeout_s=60))
    steps: list[tuple[str, str, str]] = []
    dispatched: list[float] = []

    def on_setup(step: str, status: str, message: str) -> None:
        steps.append((step, status, message))
        if step == "dispatch":
            dispatched.append(time.monotonic())

    async def main() -> None:
        client = connect_redis(redis_url)
        executor = LambdaExecutor(
            settings,
            aws=sandbox.aws,
            region=REGION,
            worker_environment=WorkerSettings(redis_url=redis_url, region=REGION).environment(),
            on_setup=on_setup,
            run_id=RUN_ID,
            on_ready=sandbox.on_queue_ready,
            jobs=[p.job for p in planned],
        )
        try:
            with anyio.fail_after(120):
                async with executor:
                    await run_jobs(state, planned, client, executor, Recorder(), heartbeat_s=spec.heartbeat)
        finally:
            await client.aclose()

    anyio.run(main)
    took = time.monotonic() - dispatched[0]
    stats = [esm.stats for esm in sandbox.emulated.values()]
    return LambdaRun(state, took, steps, sum(s.busy_s for s in stats), sum(s.invocations for s in stats))


def mapped_queues(aws: AwsEmulator) -> set[str]:
    client = boto3.client("lambda", region_name=REGION, endpoint_url=aws.endpoint_url)
    mappings = client.list_event_source_mappings(FunctionName=FUNCTION)["EventSourceMappings"]
    return {m["EventSourceArn"].rsplit(":", 1)[-1] for m in mappings}


def environment(aws: AwsEmulator) -> dict[str, str]:
    client = boto3.client("lambda", region_name=REGION, endpoint_url=aws.endpoint_url)
    found = client.get_function_configuration(FunctionName=FUNCTION).get("Environment") or {}
    return dict(found.get("Variables") or {})


def rules(aws: AwsEmulator) -> list[str]:
    client = boto3.client("events", region_name=REGION, endpoint_url=aws.endpoint_url)
    return [r["Name"] for r in client.list_rules(NamePrefix=RULE_NAME)["Rules"]]


def test_a_lambda_run_sets_up_ecs_events_and_ends_on_them_with_little_lambda_time(
    aws: AwsEmulator, redis_url: str, tmp_path: Path, sandbox_lambda: SandboxLambda
) -> None:
    rollout_s = 15.0
    aws.set_scenario(RolloutScenario(rollout_s=rollout_s))
    run = run_lambda(sandbox_lambda, spec_file(tmp_path, 3, "events"), redis_url)

    assert {job.phase for job in run.state.jobs.values()} == {Phase.SUCCEEDED}
    messages = [job.message for job in run.state.jobs.values()]
    assert all("ECS's event: completed" in m for m in messages), messages
    assert run.took_s < rollout_s + 10, f"the jobs waited for their own 30 s poll ({run.took_s:.1f}s)"
    jobs = len(run.state.jobs)
    # A worker that stayed alive would bill the whole rollout per job.
    assert run.billed_s < 0.35 * rollout_s * jobs, (run.billed_s, run.invocations)
    assert mapped_queues(aws) == {"ecs-fanout-jobs.fifo", TIMER_QUEUE, EVENTS_QUEUE}
    assert environment(aws)[TIMER_QUEUE_ENV].endswith(f":{TIMER_QUEUE}")
    assert rules(aws) == [RULE_NAME]
    done = {step: message for step, status, message in run.steps if status == "done"}
    assert done["events"].startswith(f"{TIMER_QUEUE} and ECS's events of 1 account/region mapped"), done
    assert not [s for s in run.steps if s[1] == "polling"]
    print(
        f"\nlambda executor + events: {jobs} rollouts of {rollout_s:g}s ended in {run.took_s:.1f}s; "
        f"{run.invocations} invocations, {run.billed_s:.2f}s of Lambda in all "
        f"({run.billed_s / jobs:.2f}s per job)"
    )


@pytest.mark.parametrize("forwarded", [True, False], ids=["events-role", "no-events-role"])
def test_a_region_other_than_the_functions_forwards_its_events_through_the_events_role(
    aws: AwsEmulator, redis_url: str, tmp_path: Path, sandbox_lambda: SandboxLambda, forwarded: bool
) -> None:
    """A mapping reads its own region's queues: with `events_role`, ECS's events of another
    region reach the function through that account's bus in its region; without, it polls."""
    rollout_s = 8.0
    aws.set_scenario(RolloutScenario(rollout_s=rollout_s))
    settings = LambdaSettings(timeout_s=60, events_role="ecs-fanout-events" if forwarded else None)
    run = run_lambda(sandbox_lambda, spec_file(tmp_path, 3, "events", elsewhere=1), redis_url, settings)

    assert {job.phase for job in run.state.jobs.values()} == {Phase.SUCCEEDED}
    far = next(job for job in run.state.jobs.values() if job.target.region == OTHER_REGION)
    events = boto3.client("events", region_name=OTHER_REGION, endpoint_url=aws.endpoint_url)
    polling = [message for _, status, message in run.steps if status == "polling"]
    if forwarded:
        assert "ECS's event: completed" in far.message, far.message
        assert not polling
        [target] = events.list_targets_by_rule(Rule=RULE_NAME)["Targets"]
        assert target["Arn"].endswith(f":events:{REGION}:{ACCOUNT}:event-bus/default")
        assert target["RoleArn"].endswith(f":iam::{ACCOUNT}:role/ecs-fanout-events")
        assert mapped_queues(aws) == {"ecs-fanout-jobs.fifo", TIMER_QUEUE, EVENTS_QUEUE}
    else:
        assert "ECS's event" not in far.message, far.message
        [note] = polling
        assert note.startswith(f"-/{OTHER_REGION}: ECS's events of {OTHER_REGION} cannot reach"), note
        assert "ECS_FANOUT_LAMBDA_EVENTS_ROLE" in note
        assert events.list_rules(NamePrefix=RULE_NAME)["Rules"] == []


def test_without_permission_for_the_rule_the_lambda_run_polls_there_and_says_so_once(
    aws: AwsEmulator, redis_url: str, tmp_path: Path, sandbox_lambda: SandboxLambda
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=1.0))
    aws.inject_fault("PutRule", 403, count=5)
    run = run_lambda(sandbox_lambda, spec_file(tmp_path, 2, "events"), redis_url)

    assert {job.phase for job in run.state.jobs.values()} == {Phase.SUCCEEDED}
    [note] = [message for step, status, message in run.steps if status == "polling"]
    assert note.startswith(f"-/{REGION}: no permission to set up ECS's events"), note
    assert note.endswith("following by polling there"), note
    assert EVENTS_QUEUE not in mapped_queues(aws)


def test_follow_poll_sets_up_no_events_no_timer_queue(
    aws: AwsEmulator, redis_url: str, tmp_path: Path, sandbox_lambda: SandboxLambda
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=1.0))
    run = run_lambda(sandbox_lambda, spec_file(tmp_path, 2, "poll"), redis_url)

    assert {job.phase for job in run.state.jobs.values()} == {Phase.SUCCEEDED}
    assert mapped_queues(aws) == {"ecs-fanout-jobs.fifo"}
    assert TIMER_QUEUE_ENV not in environment(aws)
    assert rules(aws) == []
    assert "events" not in {step for step, _, _ in run.steps}
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=aws.endpoint_url)
    assert not sqs.list_queues(QueueNamePrefix=TIMER_QUEUE).get("QueueUrls")
