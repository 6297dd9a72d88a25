"""Duplicate deliveries of a job, against the moto server + rollout simulator and a real Redis.

SQS delivers at least once: the same job reaches workers twice or more, at once or after it
ended. A duplicate must not hold the job (a later copy must still be told the job ended), must
not disturb the job's numbering (its events are numbered after the job's last, and the job's
own events go on after them) nor its state, and `--json`/`--plain` print each change of a job
once: one terminal line per job, whatever the deliveries. An AWS error ending a job says
whether UpdateService was ever sent: a rollout may be in progress only if it was.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import boto3
import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from redis.asyncio import Redis

from orchestrator.feed import read_stream
from orchestrator.gate_events import GateEvent
from orchestrator.plan import PlannedJob
from orchestrator.render import JsonRenderer, PlainRenderer
from orchestrator.run import run_jobs
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.state import JobState, RunState
from orchestrator.wave_state import WaveState
from worker.aws import AwsAccess
from worker.aws_errors import CREDENTIALS_HINT, aws_failure_message
from worker.contract import ContainerChange, DeployJob, JobOptions, Phase, WorkerEvent
from worker.engine import Deployer
from worker.keys import job_lease
from worker.ledger import JobLedger, JobRecord
from worker.publisher import EventPublisher
from worker.target import Target

REGION = "us-east-1"
CLUSTER = "prod"
RUN_ID = "run-dup"
OLD = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:1.0"
NEW = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:2.0"
BAD = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:bad-1"  # never starts: ECS rolls back
FAST = JobOptions(timeout_s=30, poll_min_s=0.1, poll_max_s=0.3, heartbeat_s=3)
ANOTHER_WORKER = "duplicate delivery: another worker is running this job"
ALREADY_ENDED = "duplicate delivery: job already ended"
MAY_BE_ROLLING = "may still be in progress"


# --- helpers ----------------------------------------------------------------------------------


def make_job(service: str, image: str = NEW, **options: Any) -> DeployJob:
    return DeployJob(
        run_id=RUN_ID,
        job_id=f"{RUN_ID}:{service}",
        target=Target(cluster=CLUSTER, service=service, region=REGION),
        changes=(ContainerChange(container="app", image=image),),
        options=FAST.model_copy(update=options),
    )


def seed(aws: AwsEmulator, *services: str) -> None:
    seed_services(aws.endpoint_url, REGION, [(CLUSTER, name, {"app": OLD}) for name in services])


def service_task_definition(aws: AwsEmulator, service: str) -> str:
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=aws.endpoint_url)
    return str(ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]["taskDefinition"])


async def stream(redis: Redis) -> list[WorkerEvent]:
    return [event for _, event in await read_stream(redis, RUN_ID)]


def by_job(events: Sequence[WorkerEvent]) -> dict[str, list[WorkerEvent]]:
    jobs: dict[str, list[WorkerEvent]] = {}
    for event in events:
        jobs.setdefault(event.job_id, []).append(event)
    return jobs


def assert_strictly_increasing(events: Sequence[WorkerEvent]) -> None:
    """Every job's events, duplicates' included, numbered strictly increasing in stream order."""
    for job_id, mine in by_job(events).items():
        seqs = [e.seq for e in mine]
        assert all(a < b for a, b in itertools.pairwise(seqs)), (job_id, seqs)
        assert seqs[0] >= 1, (job_id, seqs)


class Headless:
    """The `--json` and `--plain` renderers side by side, each writing to a buffer."""

    def __init__(self) -> None:
        self.json_out, self.plain_out = io.StringIO(), io.StringIO()
        self.json = JsonRenderer(self.json_out)
        self.plain = PlainRenderer(self.plain_out)

    def started(self, state: RunState) -> None:
        self.json.started(state)
        self.plain.started(state)

    def setup_changed(self, step: str, status: str, message: str) -> None:
        self.json.setup_changed(step, status, message)
        self.plain.setup_changed(step, status, message)

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        self.json.changed(job, event)
        self.plain.changed(job, event)

    def gate_changed(self, wave: WaveState, event: GateEvent) -> None:
        self.json.gate_changed(wave, event)
        self.plain.gate_changed(wave, event)

    def finished(self, state: RunState) -> None:
        self.json.finished(state)
        self.plain.finished(state)

    def json_phases(self) -> dict[str, list[tuple[str, int | None]]]:
        """(phase, seq) of every `event` line, per job."""
        lines = [json.loads(line) for line in self.json_out.getvalue().splitlines()]
        phases: dict[str, list[tuple[str, int | None]]] = {}
        for line in lines:
            if line["type"] == "event":
                phases.setdefault(line["job_id"], []).append((line["phase"], line["seq"]))
        return phases

    def plain_phases(self, state: RunState) -> dict[str, list[str]]:
        """The phase word of every line naming a job, per job (the summary table aside)."""
        phases: dict[str, list[str]] = {job_id: [] for job_id in state.jobs}
        body = self.plain_out.getvalue().split("\nTARGET ")[0]
        for line in body.splitlines()[1:]:  # after "run ...: N services"
            _, name, phase, *_ = line.split()
            [job_id] = [j.job_id for j in state.jobs.values() if j.name == name]
            phases[job_id].append(phase)
        return phases


def assert_each_change_printed_once(
    headless: Headless, state: RunState, repeatable: frozenset[Phase] = frozenset({Phase.IN_PROGRESS})
) -> None:
    """One terminal line per job in both outputs; every phase but the `repeatable` ones printed
    once; never a `duplicate` line; the printed seqs strictly increasing."""
    terminal = {phase.value for phase in Phase if phase.terminal}
    json_phases = headless.json_phases()
    plain_phases = headless.plain_phases(state)
    assert set(json_phases) == set(state.jobs)
    for job_id, printed in json_phases.items():
        phases = [phase for phase, _ in printed]
        assert [p for p in phases if p in terminal] == [state.jobs[job_id].phase.value], (job_id, phases)
        repeated = {p for p in phases if phases.count(p) > 1} - {phase.value for phase in repeatable}
        assert not repeated, (job_id, phases)
        assert Phase.DUPLICATE.value not in phases
        seqs = [seq for _, seq in printed if seq is not None]
        assert all(a < b for a, b in itertools.pairwise(seqs)), (job_id, seqs)
        assert [p for p in plain_phases[job_id] if p in terminal] == [state.jobs[job_id].phase.value]
        assert plain_phases[job_id] == phases, job_id


def assert_every_event_printed(headless: Headless, events: Sequence[WorkerEvent]) -> None:
    """Each job's own events (duplicates aside) all folded in and printed: none was taken for a
    replay because a number was used twice."""
    printed = {job_id: [seq for _, seq in lines] for job_id, lines in headless.json_phases().items()}
    published = {
        job_id: [e.seq for e in mine if e.phase is not Phase.DUPLICATE]
        for job_id, mine in by_job(events).items()
    }
    assert printed == published


def fold(planned: Sequence[PlannedJob], events: Sequence[WorkerEvent]) -> tuple[RunState, Headless]:
    """Every event folded in and rendered, as the run core and `attach` do (past the end too)."""
    state = RunState.from_plan(RUN_ID, planned)
    headless = Headless()
    headless.started(state)
    for event in events:
        job = state.apply(event, received_at=event.ts)
        if job is not None:
            headless.changed(job, event)
    return state, headless


# --- the same job delivered three times -------------------------------------------------------


class TripleDelivery:
    """The real workers (a deployer as the local executor makes it), every job delivered three
    times: two copies at once, then a third once both returned. Keeps each delivery's outcome."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.outcomes: dict[str, list[Phase | None]] = {}

    async def prepare(self) -> None:
        pass

    async def run_all(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        async with AwsAccess().ecs(REGION) as ecs:
            deployer = Deployer.on_redis(ecs, self._redis, scope=f"-/{REGION}")

            async def deliver(job: DeployJob) -> None:
                self.outcomes.setdefault(job.job_id, []).append(await deployer.run(job))

            async def three_times(job: DeployJob) -> None:
                on_start(job)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(deliver, job)
                    tg.start_soon(deliver, job)
                await deliver(job)

            async with anyio.create_task_group() as tg:
                for job in jobs:
                    tg.start_soon(three_times, job)


async def test_three_deliveries_at_once_then_after_print_each_change_once(
    aws: AwsEmulator, redis: Redis
) -> None:
    seed(aws, "api", "web", "worker")
    jobs = [make_job("api"), make_job("web"), make_job("worker", BAD)]  # "worker" ends last
    planned = [PlannedJob(job=job) for job in jobs]
    state = RunState.from_plan(RUN_ID, planned)
    live = Headless()
    executor = TripleDelivery(redis)
    await run_jobs(state, planned, redis, executor, live, heartbeat_s=10)

    expected = {
        jobs[0].job_id: Phase.SUCCEEDED,
        jobs[1].job_id: Phase.SUCCEEDED,
        jobs[2].job_id: Phase.ROLLED_BACK,
    }
    assert {job_id: job.phase for job_id, job in state.jobs.items()} == expected
    for job_id, outcomes in executor.outcomes.items():
        # One of the copies sent at once ran the job, the other found it running; the third
        # is told how the job ended (the copy before it left no lease behind).
        assert sorted(outcomes[:2], key=str) == sorted([expected[job_id], None], key=str), outcomes
        assert outcomes[2] is expected[job_id]

    events = await stream(redis)
    assert_strictly_increasing(events)
    for job_id, mine in by_job(events).items():
        duplicates = [e.message for e in mine if e.phase is Phase.DUPLICATE]
        assert duplicates == [ANOTHER_WORKER, f"{ALREADY_ENDED} {expected[job_id]}"], duplicates
        assert [e.phase for e in mine].count(Phase.REGISTERED) == 1
        assert sum(e.phase.terminal for e in mine) == 1

    # What the run printed live, and what a replay of the whole stream prints (as `attach`
    # would, here past each job's end too): each change of a job once, one terminal line.
    assert_each_change_printed_once(live, state)
    replayed, headless = fold(planned, events)
    assert {job_id: job.phase for job_id, job in replayed.jobs.items()} == expected
    assert_each_change_printed_once(headless, replayed)
    assert_every_event_printed(headless, events)


async def test_deliveries_one_after_another_are_all_told_the_job_ended(
    aws: AwsEmulator, redis: Redis
) -> None:
    seed(aws, "api")
    job = make_job("api")
    async with AwsAccess().ecs(REGION) as ecs:
        deployer = Deployer.on_redis(ecs, redis, scope=f"-/{REGION}")  # the default lease: 60 s at least
        outcomes = [await deployer.run(job) for _ in range(3)]
    assert outcomes == [Phase.SUCCEEDED] * 3
    assert not await redis.exists(job_lease(job.run_id, job.job_id)), "a duplicate left the lease held"
    assert aws.request_counts().get("UpdateService") == 1

    events = await stream(redis)
    assert_strictly_increasing(events)
    assert [e.message for e in events if e.phase is Phase.DUPLICATE] == [f"{ALREADY_ENDED} succeeded"] * 2
    state, headless = fold([PlannedJob(job=job)], events)
    assert state.jobs[job.job_id].phase is Phase.SUCCEEDED
    assert state.jobs[job.job_id].last_seq == next(e for e in events if e.phase is Phase.SUCCEEDED).seq
    assert_each_change_printed_once(headless, state)
    assert_every_event_printed(headless, events)


async def test_a_duplicate_mid_rollout_does_not_make_the_next_worker_reuse_numbers(
    aws: AwsEmulator, redis: Redis
) -> None:
    """The owner dies mid-rollout, a duplicate comes while its lease still holds (the last event
    of the job before the redelivery that resumes it): the redelivery's events come after every
    number used, so the run folds them in and sees the job end."""
    aws.set_scenario(RolloutScenario(rollout_s=3.0))
    seed(aws, "api")
    job = make_job("api", heartbeat_s=0.6)  # a lease of about a second
    async with AwsAccess().ecs(REGION) as ecs:
        deployer = Deployer(ecs, JobLedger(redis), EventPublisher(redis), min_lease_s=1.0)
        with anyio.move_on_after(1.0):  # the owner dies after update_service, mid-rollout
            await deployer.run(job)
        assert (await stream(redis))[-1].phase is Phase.IN_PROGRESS
        assert await deployer.run(job) is None  # the dead owner's lease still holds
        await anyio.sleep(1.3)  # its lease runs out; SQS redelivers
        assert await deployer.run(job) is Phase.SUCCEEDED
    assert aws.request_counts().get("UpdateService") == 1

    events = await stream(redis)
    assert [e.message for e in events if e.phase is Phase.DUPLICATE] == [ANOTHER_WORKER]
    assert any(e.message.startswith("resuming") for e in events)
    assert_strictly_increasing(events)
    state, headless = fold([PlannedJob(job=job)], events)
    assert state.jobs[job.job_id].phase is Phase.SUCCEEDED
    # The redelivery says it resumes: `started` twice, rightly.
    assert_each_change_printed_once(headless, state, frozenset({Phase.IN_PROGRESS, Phase.STARTED}))
    assert_every_event_printed(headless, events)


def test_a_replayed_duplicate_is_logged_once_and_changes_nothing() -> None:
    """A reader that reconnects may get an event twice: a duplicate's report is logged once,
    and neither copy moves the job's phase or sequence, nor prints a line."""
    job = make_job("api")
    state = RunState.from_plan(RUN_ID, [PlannedJob(job=job)])
    headless = Headless()

    def event(seq: int, phase: Phase, message: str) -> WorkerEvent:
        return WorkerEvent(run_id=RUN_ID, job_id=job.job_id, seq=seq, phase=phase, message=message)

    duplicate = event(2, Phase.DUPLICATE, ANOTHER_WORKER)
    for each in (event(1, Phase.STARTED, "runs api:1"), duplicate, duplicate, event(3, Phase.UPDATED, "d")):
        changed = state.apply(each, received_at=each.ts)
        if changed is not None:
            headless.changed(changed, each)
    folded = state.jobs[job.job_id]
    assert [e.seq for e in folded.recent] == [1, 2, 3]
    assert folded.phase is Phase.UPDATED and folded.last_seq == 3
    assert headless.json_phases() == {job.job_id: [("started", 1), ("updated", 3)]}
    assert len(headless.plain_out.getvalue().splitlines()) == 2


# --- an AWS error says whether UpdateService was sent -----------------------------------------


async def last_message(redis: Redis) -> str:
    [*_, last] = await stream(redis)
    assert last.phase is Phase.FAILED, last
    return last.message


async def test_error_before_update_service_says_nothing_was_changed(aws: AwsEmulator, redis: Redis) -> None:
    seed(aws, "api")
    before = service_task_definition(aws, "api")
    aws.inject_fault("DescribeTaskDefinition", 403)  # not retried: AccessDeniedException
    async with AwsAccess().ecs(REGION) as ecs:
        assert await Deployer.on_redis(ecs, redis, scope=f"-/{REGION}").run(make_job("api")) is Phase.FAILED
    assert not aws.pending_faults(), "the fault was never reached: the test proves nothing"
    message = await last_message(redis)
    assert "AccessDeniedException" in message and "nothing was changed" in message, message
    assert MAY_BE_ROLLING not in message and "may have reached" not in message
    assert "UpdateService" not in aws.request_counts() and service_task_definition(aws, "api") == before


async def test_no_credentials_says_how_to_give_them_and_that_nothing_was_changed(
    aws: AwsEmulator, redis: Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(aws, "api")
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    requests_before = aws.request_counts()
    async with AwsAccess().ecs(REGION) as ecs:
        assert await Deployer.on_redis(ecs, redis, scope=f"-/{REGION}").run(make_job("api")) is Phase.FAILED
    assert aws.request_counts() == requests_before, "a request reached AWS: credentials were found"
    message = await last_message(redis)
    assert "Unable to locate credentials" in message and "nothing was changed" in message, message
    for how in ("AWS_PROFILE", "--profile", "AWS_ACCESS_KEY_ID", "aws sso login"):
        assert how in message, how
    assert MAY_BE_ROLLING not in message


async def test_error_after_update_service_keeps_the_rollout_warning(aws: AwsEmulator, redis: Redis) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=30.0))  # still rolling out when the error comes
    seed(aws, "api")
    job = make_job("api", heartbeat_s=0.6)
    async with AwsAccess().ecs(REGION) as ecs:
        deployer = Deployer(ecs, JobLedger(redis), EventPublisher(redis), min_lease_s=1.0)
        with anyio.move_on_after(1.0):  # the worker dies after update_service, mid-rollout
            await deployer.run(job)
        await anyio.sleep(1.3)
        # the redelivery's first call: its first look at the service deployment it resumes
        aws.inject_fault("DescribeServiceDeployments", 403)
        assert await deployer.run(job) is Phase.FAILED
    assert not aws.pending_faults()
    [updated] = [e for e in await stream(redis) if e.phase is Phase.UPDATED]
    message = await last_message(redis)
    assert f"deployment {updated.details.deployment_id} was started" in message, message
    assert MAY_BE_ROLLING in message and "nothing was changed" not in message


def _denied(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "UpdateService")


@pytest.mark.parametrize(
    ("error", "at_start", "now", "expected", "absent"),
    [
        pytest.param(
            EndpointConnectionError(endpoint_url="https://ecs.example"),
            JobRecord(),
            JobRecord(),
            "nothing was changed (UpdateService was never sent)",
            MAY_BE_ROLLING,
            id="unreachable-before-anything",
        ),
        pytest.param(
            NoCredentialsError(),
            JobRecord(),
            JobRecord(task_definition_arn="arn:td/api:2"),
            "nothing was changed on the service (UpdateService was never sent; api:2 is not in use)",
            "may have reached",
            id="credentials-expired-after-registering",
        ),
        pytest.param(
            _denied("ExpiredTokenException"),
            JobRecord(),
            JobRecord(),
            CREDENTIALS_HINT,
            MAY_BE_ROLLING,
            id="expired-token-hint",
        ),
        pytest.param(
            ReadTimeoutError(endpoint_url="https://ecs.example"),
            JobRecord(),
            JobRecord(task_definition_arn="arn:td/api:2"),
            "UpdateService to arn:td/api:2 may have reached ECS",
            "nothing was changed",
            id="no-answer-to-update-service",
        ),
        pytest.param(
            NoCredentialsError(),
            JobRecord(task_definition_arn="arn:td/api:2"),
            JobRecord(task_definition_arn="arn:td/api:2"),
            "may have reached ECS",  # a worker before this one may have sent it, then died
            "nothing was changed",
            id="credentials-missing-on-a-redelivery",
        ),
        pytest.param(
            ReadTimeoutError(endpoint_url="https://ecs.example"),
            JobRecord(deployment_id="ecs-svc/1"),
            JobRecord(task_definition_arn="arn:td/api:2", deployment_id="ecs-svc/1"),
            f"deployment ecs-svc/1 was started: check the service, a rollout {MAY_BE_ROLLING}",
            "nothing was changed",
            id="following-a-deployment",
        ),
    ],
)
def test_failure_message_says_what_the_error_left_behind(
    error: ClientError | BotoCoreError, at_start: JobRecord, now: JobRecord, expected: str, absent: str
) -> None:
    message = aws_failure_message(error, at_start, now)
    assert message.startswith("AWS call failed: ") and expected in message, message
    assert absent not in message
