"""The report is ECS's truth under every fault: real runs, a real Redis, the emulator's ECS.

Each test makes a fault happen for real (a second run on the same service, a run interrupted
mid-rollout and run again, a deployment made outside ecs-fanout, the AWS endpoint stopped or
frozen, a worker that dies after ECS completed) and compares every job's final status with what
ECS runs at the end: a completed rollout is never said `failed` or `lost`, a `succeeded` is never
said of a rollout ECS did not complete, and `--timeout` holds whatever AWS does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from redis.asyncio import Redis

from orchestrator.feed import read_stream
from orchestrator.local import LocalExecutor
from orchestrator.plan import PlannedJob, job_id_for
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.state import RunState
from tests import fault_tally
from tests.fleet import Silent, run_planned
from worker.aws import AwsAccess
from worker.contract import ContainerChange, DeployJob, JobOptions, Phase, WorkerEvent
from worker.engine import Deployer, Step
from worker.keys import job_hash
from worker.ledger import JobLedger
from worker.publisher import EventPublisher, connect_redis
from worker.target import Target

REGION = "us-east-1"
CLUSTER = "prod"
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api"
OLD, V2, V3, BAD = f"{REPO}:1.0", f"{REPO}:2.0", f"{REPO}:3.0", f"{REPO}:bad-1"
SLOW = RolloutScenario(rollout_s=3.0, failure_s=2.0, bad_images=("*:bad*",))
HEARTBEAT_S = 1.5  # the run core's silence window: a job quiet this long is declared lost
OPTIONS = JobOptions(timeout_s=30, poll_min_s=0.1, poll_max_s=0.5, heartbeat_s=HEARTBEAT_S)
SANDBOX_KEYS = ("testing", "testing")
ROOT = Path(__file__).resolve().parent.parent


# --- helpers ----------------------------------------------------------------------------------


def make_job(run_id: str, image: str, service: str = "api", **options: Any) -> DeployJob:
    target = Target(cluster=CLUSTER, service=service, region=REGION)
    return DeployJob(
        run_id=run_id,
        job_id=job_id_for(run_id, target),
        target=target,
        changes=(ContainerChange(container="app", image=image),),
        options=OPTIONS.model_copy(update=options),
    )


def ecs_client(endpoint_url: str) -> Any:
    return boto3.client(
        "ecs",
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id=SANDBOX_KEYS[0],
        aws_secret_access_key=SANDBOX_KEYS[1],
    )


@dataclass(frozen=True)
class EcsState:
    """What ECS runs for a service at the end: its revision, the app's image, the primary's state."""

    task_definition: str
    image: str
    rollout_state: str | None

    @property
    def settled(self) -> bool:
        return self.rollout_state == "COMPLETED"


def ecs_state(endpoint_url: str, service: str = "api") -> EcsState:
    ecs = ecs_client(endpoint_url)
    described = ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]
    primary = next(d for d in described["deployments"] if d["status"] == "PRIMARY")
    definition = ecs.describe_task_definition(taskDefinition=described["taskDefinition"])["taskDefinition"]
    image = next(c["image"] for c in definition["containerDefinitions"] if c["name"] == "app")
    return EcsState(str(described["taskDefinition"]), str(image), primary.get("rolloutState"))


def settled_ecs_state(endpoint_url: str, service: str = "api", timeout_s: float = 10.0) -> EcsState:
    """ECS's state once its last deployment settled (a circuit-breaker rollback takes a rollout)."""
    give_up = time.monotonic() + timeout_s
    while (state := ecs_state(endpoint_url, service)).rollout_state == "IN_PROGRESS":
        assert time.monotonic() < give_up, f"{service} still rolling out after {timeout_s:g}s"
        time.sleep(0.2)
    return state


def contradicted(phase: Phase, wanted: str, ecs: EcsState) -> bool:
    """Whether ECS's final state contradicts a job's final status (`wanted`: the job's image)."""
    runs_it = ecs.image == wanted and ecs.settled
    if phase is Phase.SUCCEEDED:
        return not runs_it
    if phase in (Phase.FAILED, Phase.LOST, Phase.ROLLED_BACK):
        return runs_it  # ECS completed the rollout the job calls a failure
    return False  # timed_out: not known (the message says what was last seen); skipped: checked apart


async def job_events(redis_url: str, job: DeployJob) -> list[WorkerEvent]:
    client = Redis.from_url(redis_url)
    try:
        return [e for _, e in await read_stream(client, job.run_id) if e.job_id == job.job_id]
    finally:
        await client.aclose()


async def job_deadline(redis_url: str, job: DeployJob) -> float:
    client = Redis.from_url(redis_url)
    try:
        raw = await client.hget(job_hash(job.run_id, job.job_id), "deadline")
        assert raw is not None, f"no deadline recorded for {job.job_id}"
        return float(raw)
    finally:
        await client.aclose()


async def run_once(
    redis_url: str,
    jobs: Sequence[DeployJob],
    *,
    aws: AwsAccess | None = None,
    max_parallel: int = 5,
    deployer: type[Deployer] = Deployer,
    state: RunState | None = None,
) -> RunState:
    """A run of `jobs` (one run id) through the run core and the local executor: real workers."""
    planned = [PlannedJob(job=job) for job in jobs]
    state = state or RunState.from_plan(jobs[0].run_id, planned)
    access = aws or AwsAccess()
    await run_planned(
        state,
        planned,
        redis_url,
        Silent(),
        heartbeat_s=HEARTBEAT_S,
        executor=lambda client: LocalExecutor(
            client, max_parallel=max_parallel, aws=access, deployer=deployer
        ),
    )
    return state


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    with anyio.fail_after(timeout_s):
        while True:  # polls a state that another task of this loop changes
            if condition():
                return
            await anyio.sleep(0.05)


def seed(endpoint_url: str, *services: str) -> None:
    seed_services(endpoint_url, REGION, [(CLUSTER, name, {"app": OLD}) for name in services])


# --- one deploy of a service at a time --------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "first_end", "second_end", "ecs_image"),
    [
        pytest.param(V2, V3, Phase.SUCCEEDED, Phase.SUCCEEDED, V3, id="different-tags"),
        pytest.param(BAD, BAD, Phase.ROLLED_BACK, Phase.ROLLED_BACK, OLD, id="same-bad-tag"),
    ],
)
async def test_a_second_run_on_a_service_waits_for_the_first_then_deploys(
    aws: AwsEmulator,
    redis_url: str,
    first: str,
    second: str,
    first_end: Phase,
    second_end: Phase,
    ecs_image: str,
    request: pytest.FixtureRequest,
) -> None:
    aws.set_scenario(SLOW)
    seed(aws.endpoint_url, "api")
    job_a, job_b = make_job("run-a", first), make_job("run-b", second)
    state_a = RunState.from_plan("run-a", [PlannedJob(job=job_a)])
    started_b_at = 0.0

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_once(redis_url, [job_a], state=state_a))
        await until(lambda: state_a.jobs[job_a.job_id].deployment_id is not None)  # A is rolling out
        started_b_at = time.time()
        state_b = await run_once(redis_url, [job_b])

    a, b = state_a.jobs[job_a.job_id], state_b.jobs[job_b.job_id]
    assert (a.phase, b.phase) == (first_end, second_end), (a.message, b.message)
    events_a, events_b = await job_events(redis_url, job_a), await job_events(redis_url, job_b)
    waiting = [e for e in events_b if e.message == "waiting for run run-a to finish deploying this service"]
    assert waiting and all(e.phase is Phase.STARTED for e in waiting), [e.message for e in events_b]
    assert waiting[0].ts - started_b_at < 2.0, "the waiting job said nothing for a while"
    # B changed nothing until A had ended: its registration comes after A's verdict.
    [a_end] = [e for e in events_a if e.phase.terminal]
    [b_registered] = [e for e in events_b if e.phase is Phase.REGISTERED]
    assert b_registered.ts >= a_end.ts
    assert Phase.SKIPPED not in {e.phase for e in events_b}

    final = settled_ecs_state(aws.endpoint_url)
    assert final.image == ecs_image and final.settled
    wrong = sum(contradicted(job.phase, image, final) for job, image in ((b, second),))
    wrong += contradicted(a.phase, first, final) if first == second else 0  # A's image was replaced by B's
    fault_tally.record(
        f"a second run on one service [{request.node.callspec.id}]",
        faults=1,
        jobs=2,
        duplicate_registrations=0,
        statuses_compared=2 if first == second else 1,
        statuses_wrong=wrong,
    )
    assert wrong == 0


async def test_no_wait_fails_fast_naming_the_run_that_deploys(aws: AwsEmulator, redis_url: str) -> None:
    aws.set_scenario(SLOW)
    seed(aws.endpoint_url, "api")
    job_a, job_b = make_job("run-a", V2), make_job("run-b", V3, wait_for_target=False)
    state_a = RunState.from_plan("run-a", [PlannedJob(job=job_a)])

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_once(redis_url, [job_a], state=state_a))
        await until(lambda: state_a.jobs[job_a.job_id].deployment_id is not None)
        before = aws.request_counts()
        started = time.time()
        state_b = await run_once(redis_url, [job_b])
        b = state_b.jobs[job_b.job_id]
        assert b.ended_at is not None and b.ended_at - started < 3.0  # not after A's rollout
        after = aws.request_counts()

    assert b.phase is Phase.FAILED
    assert "run run-a is deploying this service" in b.message and "nothing changed" in b.message, b.message
    for action in ("RegisterTaskDefinition", "UpdateService", "DescribeTaskDefinition"):
        assert after.get(action, 0) == before.get(action, 0), action
    a = state_a.jobs[job_a.job_id]
    final = settled_ecs_state(aws.endpoint_url)
    assert a.phase is Phase.SUCCEEDED and final.image == V2
    wrong = int(contradicted(a.phase, V2, final))
    fault_tally.record(
        "a second run on one service, --no-wait",
        faults=1,
        jobs=2,
        duplicate_registrations=fault_tally.duplicate_registrations(["api"], REGION),
        statuses_compared=1,
        statuses_wrong=wrong,
    )
    assert wrong == 0


async def test_a_deployment_replaced_outside_ecs_fanout_says_who_and_what_runs(
    aws: AwsEmulator, redis_url: str
) -> None:
    aws.set_scenario(SLOW)
    seed(aws.endpoint_url, "api")
    job = make_job("run-a", V2)
    state = RunState.from_plan("run-a", [PlannedJob(job=job)])
    ecs = ecs_client(aws.endpoint_url)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_once(redis_url, [job], state=state))
        await until(lambda: state.jobs[job.job_id].deployment_id is not None)
        definition = ecs.describe_task_definition(taskDefinition="api:1")["taskDefinition"]
        containers = [{**c, "image": V3} for c in definition["containerDefinitions"]]
        theirs = ecs.register_task_definition(
            family="api",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=containers,
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.update_service(cluster=CLUSTER, service="api", taskDefinition=theirs)

    ended = state.jobs[job.job_id]
    final = ecs_state(aws.endpoint_url)
    assert ended.phase is Phase.FAILED
    assert (
        f"was replaced by a deployment from outside ecs-fanout; ECS now runs {theirs.rsplit('/', 1)[-1]}"
        in (ended.message)
    ), ended.message
    assert final.task_definition == theirs and final.image == V3
    wrong = int(contradicted(ended.phase, V2, final))
    fault_tally.record(
        "deployment replaced outside ecs-fanout mid-rollout",
        faults=1,
        jobs=1,
        duplicate_registrations=0,
        statuses_compared=1,
        statuses_wrong=wrong,
    )
    assert wrong == 0


async def test_on_lambda_a_waiting_job_lets_the_continuation_queued_behind_it_go_first(
    aws: AwsEmulator, redis_url: str
) -> None:
    """Lambda runs one service's messages in order: run B's job, ahead of run A's continuation
    in the service's message group, must not wait for A's lease (A's continuation could never
    run): it hands over too; A's continuation then finishes A, and B's deploys after it."""
    aws.set_scenario(SLOW)
    seed(aws.endpoint_url, "api")
    job_a, job_b = make_job("run-a", V2), make_job("run-b", V3)
    client = connect_redis(redis_url)
    try:
        async with AwsAccess().ecs(REGION) as ecs:
            deployer = Deployer(ecs, JobLedger(client), EventPublisher(client))
            assert await deployer.run(job_a, hand_over_at=time.time() + 1.0) is Phase.HANDED_OVER
            before = aws.request_counts()
            started = time.monotonic()
            assert await deployer.run(job_b, hand_over_at=time.time() + 20) is Phase.HANDED_OVER
            assert time.monotonic() - started < 2.0  # at once, not at its own hand-over instant
            assert aws.request_counts() == before  # B asked ECS nothing, changed nothing
            continuation_a = job_a.model_copy(update={"continuation": 1})
            continuation_b = job_b.model_copy(update={"continuation": 1})
            assert await deployer.run(continuation_a) is Phase.SUCCEEDED
            assert await deployer.run(continuation_b) is Phase.SUCCEEDED
    finally:
        await client.aclose()
    [handed] = [e for e in await job_events(redis_url, job_b) if e.phase is Phase.HANDED_OVER]
    assert "run run-a's continuation, queued behind this job, goes first" in handed.message
    final = settled_ecs_state(aws.endpoint_url)
    assert final.image == V3
    fault_tally.record(
        "a second run queued ahead of a handed-over job (Lambda)",
        faults=1,
        jobs=2,
        duplicate_registrations=fault_tally.duplicate_registrations(["api"], REGION, expected=3),
        statuses_compared=1,
        statuses_wrong=int(contradicted(Phase.SUCCEEDED, V3, final)),
    )


# --- "already running the target image" only when nothing is in flight ------------------------


@pytest.mark.parametrize(
    ("image", "expected", "ecs_image"),
    [
        pytest.param(BAD, Phase.ROLLED_BACK, OLD, id="bad-tag"),
        pytest.param(V2, Phase.SUCCEEDED, V2, id="good-tag"),
    ],
)
async def test_a_run_again_while_the_first_rollout_goes_on_follows_it(
    aws: AwsEmulator,
    redis_url: str,
    image: str,
    expected: Phase,
    ecs_image: str,
    request: pytest.FixtureRequest,
) -> None:
    """Run A is interrupted mid-rollout (Ctrl-C: ECS goes on); the same spec run again must not say
    "already running the target image" while ECS may still roll that image back."""
    aws.set_scenario(SLOW)
    seed(aws.endpoint_url, "api")
    job_a, job_b = make_job("run-a", image), make_job("run-b", image)
    client = connect_redis(redis_url)
    try:
        async with AwsAccess().ecs(REGION) as ecs:
            deployer = Deployer(ecs, JobLedger(client), EventPublisher(client))
            with anyio.CancelScope() as interrupted:

                async def interrupt_once_updated() -> None:
                    while True:
                        if any(e.phase is Phase.UPDATED for e in await job_events(redis_url, job_a)):
                            interrupted.cancel()
                            return
                        await anyio.sleep(0.05)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(interrupt_once_updated)
                    await deployer.run(job_a)
    finally:
        await client.aclose()
    [updated] = [e for e in await job_events(redis_url, job_a) if e.phase is Phase.UPDATED]
    before = aws.request_counts()

    state = await run_once(redis_url, [job_b])

    b = state.jobs[job_b.job_id]
    after = aws.request_counts()
    final = settled_ecs_state(aws.endpoint_url)
    assert b.phase is expected, b.message
    assert any(
        e.message.endswith(
            f"ECS is still rolling it out: following deployment {updated.details.deployment_id}"
        )
        for e in await job_events(redis_url, job_b)
    )
    for action in ("RegisterTaskDefinition", "UpdateService"):  # followed, not deployed again
        assert after.get(action, 0) == before.get(action, 0), action
    assert final.image == ecs_image and final.settled
    wrong = int(contradicted(b.phase, image, final))
    fault_tally.record(
        f"run interrupted mid-rollout, run again [{request.node.callspec.id}]",
        faults=1,
        jobs=2,
        duplicate_registrations=fault_tally.duplicate_registrations(["api"], REGION),
        statuses_compared=1,
        statuses_wrong=wrong,
    )
    assert wrong == 0


# --- a crashed worker -------------------------------------------------------------------------


class DiesBeforeReporting(Deployer):
    """A worker that follows its rollout to ECS's verdict, then dies before it can report it."""

    async def _follow_and_settle(self, *args: Any, **kwargs: Any) -> Step:
        await super()._follow_and_settle(*args, **kwargs)
        raise RuntimeError("worker process died")


@pytest.mark.parametrize(
    ("image", "expected", "words"),
    [
        pytest.param(V2, Phase.SUCCEEDED, "2/2 running api:2", id="completed"),
        pytest.param(BAD, Phase.ROLLED_BACK, "ECS rolled back to", id="rolled-back"),
    ],
)
async def test_a_worker_that_dies_after_ecs_decided_reports_what_ecs_did(
    aws: AwsEmulator, redis_url: str, image: str, expected: Phase, words: str, request: pytest.FixtureRequest
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.6, failure_s=0.6, bad_images=("*:bad*",)))
    seed(aws.endpoint_url, "api")
    job = make_job("run-crash", image)

    state = await run_once(redis_url, [job], deployer=DiesBeforeReporting)

    ended = state.jobs[job.job_id]
    final = settled_ecs_state(aws.endpoint_url)
    assert ended.phase is expected, ended.message
    assert words in ended.message
    assert "confirmed by ECS after the worker crashed (RuntimeError('worker process died'))" in ended.message
    wrong = int(contradicted(ended.phase, image, final))
    fault_tally.record(
        f"worker crashed after ECS decided [{request.node.callspec.id}]",
        faults=1,
        jobs=1,
        duplicate_registrations=fault_tally.duplicate_registrations(["api"], REGION),
        statuses_compared=1,
        statuses_wrong=wrong,
    )
    assert wrong == 0


# --- the AWS endpoint dies or freezes mid-run -------------------------------------------------

SERVICES = [f"s{i}" for i in range(5)]
TIMEOUT_S = 6.0
LATE_S = 3.0  # a job may end this long after its deadline, not more


async def run_while_aws_fails(
    redis_url: str, aws: AwsAccess, fail: Callable[[], Any], jobs: Sequence[DeployJob]
) -> tuple[RunState, float]:
    """Run `jobs`, 3 at a time; once 3 have rollouts in progress, `fail()` (in a thread).
    The run's state and when it failed."""
    state = RunState.from_plan(jobs[0].run_id, [PlannedJob(job=job) for job in jobs])
    failed_at = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: run_once(redis_url, jobs, aws=aws, max_parallel=3, state=state))
        # 3 rollouts in flight, each seen in progress by its worker at least once
        await until(lambda: sum(j.details.running is not None for j in state.jobs.values()) == 3)
        failed_at = time.time()
        await anyio.to_thread.run_sync(fail)
    return state, failed_at


async def assert_timed_out_in_time_with_last_state(
    redis_url: str, state: RunState, jobs: Sequence[DeployJob]
) -> tuple[list[DeployJob], list[DeployJob]]:
    """Every job `timed_out` by its deadline + LATE_S, none lost; the ones that had started a
    deployment say what ECS last showed of it, the others that nothing was changed.
    (in flight, never started)"""
    in_flight, untouched = [], []
    for job in jobs:
        ended = state.jobs[job.job_id]
        assert ended.phase is Phase.TIMED_OUT, (job.target.service, ended.phase, ended.message)
        assert ended.ended_at is not None
        assert ended.ended_at <= await job_deadline(redis_url, job) + LATE_S, ended.message
        if ended.deployment_id is not None:
            in_flight.append(job)
            assert f"last seen: deployment {ended.deployment_id} in progress (" in ended.message, (
                ended.message
            )
            assert " running, " in ended.message and "not rolled back" in ended.message
        else:
            untouched.append(job)
            assert "nothing was changed" in ended.message, ended.message
        assert "no answer from ECS" in ended.message
        assert not any(e.phase is Phase.LOST for e in await job_events(redis_url, job))
    assert len(in_flight) == 3 and len(untouched) == 2
    return in_flight, untouched


def compare_with_ecs(
    endpoint_url: str, state: RunState, in_flight: Sequence[DeployJob], untouched: Sequence[DeployJob]
) -> int:
    """ECS's final state against the report: the in-flight rollouts went on and completed (the
    report must not call them failed), the others were never changed. Statuses contradicted."""
    wrong = 0
    for job in in_flight:
        final = ecs_state(endpoint_url, job.target.service)
        assert final.image == V2 and final.settled, final  # ECS finished what the job started
        wrong += contradicted(state.jobs[job.job_id].phase, V2, final)
    for job in untouched:
        assert ecs_state(endpoint_url, job.target.service).image == OLD
    return wrong


async def test_aws_endpoint_stopped_mid_run_every_job_times_out_with_its_last_state(
    aws: AwsEmulator, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=4.0))
    seed(aws.endpoint_url, *SERVICES)
    jobs = [make_job("run-dead", V2, service, timeout_s=TIMEOUT_S) for service in SERVICES]
    try:
        state, _ = await run_while_aws_fails(redis_url, AwsAccess(), aws.stop, jobs)
        in_flight, untouched = await assert_timed_out_in_time_with_last_state(redis_url, state, jobs)
    finally:
        aws.start()  # ECS went on meanwhile (moto's state is this process's): ask it what it did
        monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint_url)  # on a new port
    wrong = compare_with_ecs(aws.endpoint_url, state, in_flight, untouched)
    fault_tally.record(
        "AWS endpoint stopped mid-run",
        faults=1,
        jobs=len(jobs),
        duplicate_registrations=fault_tally.duplicate_registrations(SERVICES, REGION),
        statuses_compared=len(jobs),
        statuses_wrong=wrong,
    )
    assert wrong == 0


@pytest.fixture
def emulator_process(redis_url: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`python -m bench.emulator` in a process of its own (4 s rollouts): (endpoint, process)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.emulator", "--port", "0", "--rollout-s", "4", "--no-control"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
    )
    try:
        assert process.stdout is not None
        endpoint_url = str(json.loads(process.stdout.readline())["endpoint_url"])
        yield endpoint_url, process
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(timeout=10)


async def test_aws_endpoint_frozen_mid_run_the_deadline_still_holds(
    redis_url: str, emulator_process: tuple[str, subprocess.Popen[str]]
) -> None:
    """A frozen endpoint accepts connections and never answers: botocore's own timeouts and
    retries would take half a minute per call; the job's deadline holds anyway."""
    endpoint_url, process = emulator_process
    seed(endpoint_url, *SERVICES)
    access = AwsAccess(endpoint_url=endpoint_url, static_credentials=SANDBOX_KEYS)
    jobs = [make_job("run-frozen", V2, service, timeout_s=TIMEOUT_S) for service in SERVICES]

    state, frozen_at = await run_while_aws_fails(
        redis_url, access, lambda: process.send_signal(signal.SIGSTOP), jobs
    )

    in_flight, untouched = await assert_timed_out_in_time_with_last_state(redis_url, state, jobs)
    process.send_signal(signal.SIGCONT)  # ECS went on meanwhile: ask it what it did
    wrong = compare_with_ecs(endpoint_url, state, in_flight, untouched)
    fault_tally.record(
        "AWS endpoint frozen mid-run",
        faults=1,
        jobs=len(jobs),
        duplicate_registrations=0,
        statuses_compared=len(jobs),
        statuses_wrong=wrong,
    )
    assert wrong == 0
    assert max(j.ended_at or 0 for j in state.jobs.values()) - frozen_at < 2 * TIMEOUT_S + LATE_S
