"""Redis dies mid-run and comes back: every job still ends as ECS says it did, no event is lost.

The fault is real: the test's own `redis-server` (not the session's) is SIGKILLed about a second
into an 8-service run (one bad image, which ECS's circuit breaker rolls back) and started again
on the same port two seconds later: from its append-only file, or empty (as a Redis without
persistence comes back). Workers buffer their events and pace their ECS calls locally
meanwhile, the run core's feed reconnects and replays the stream, and nobody marks a job `lost`
for the silence. Afterwards each job's status is checked against ECS's own state of its
service, its record against the ledger, and the run's plan and stream must still be there for
`ecs-fanout attach`. The same outage under the CLI prints no traceback.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import anyio
import boto3
import pytest
import redis
from redis.asyncio import Redis

from orchestrator.attach import follow_run
from orchestrator.feed import read_stream
from orchestrator.plan import PlannedJob, plan_jobs
from orchestrator.redis_server import RedisServer
from orchestrator.run import load_plan
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.state import JobState, RunState
from tests import fault_tally
from tests.cli import spawn_cli
from tests.fleet import REGION, Fleets, Recorder, Silent, published_seqs, run_planned
from worker.budget import ApiBudget, BucketSize, budget_key
from worker.contract import Phase, WorkerEvent
from worker.keys import job_hash
from worker.outbox import Outbox
from worker.publisher import EventPublisher, connect_redis
from worker.target import Target

SERVICES = 8
BAD = 5  # s5 gets an image that never starts: ECS's circuit breaker rolls it back
EXPECTED = {f"s{i}": Phase.ROLLED_BACK if i == BAD else Phase.SUCCEEDED for i in range(SERVICES)}
# Rollouts that span the outage: healthy ones complete 4 s after their update, the bad one's
# fails (and ECS rolls it back) after 2 s, while Redis is down.
SCENARIO = RolloutScenario(rollout_s=4.0, failure_s=2.0, bad_images=("*:bad*",))
KILL_AFTER_S = 1.0  # after the run's first deployment started
DOWN_FOR_S = 2.0


@dataclass
class Outage:
    """When the test's Redis was killed and when it answered again (this machine's clock)."""

    empty: bool = False  # comes back without its data
    killed_at: float = 0.0
    back_at: float = 0.0


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


class Watch(Recorder):
    """A Recorder that also tells (across threads) when the run's first deployment started."""

    def __init__(self) -> None:
        super().__init__()
        self.updated = threading.Event()

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        super().changed(job, event)
        if event is not None and event.phase is Phase.UPDATED:
            self.updated.set()


def kill_and_restart(server: RedisServer, outage: Outage, started: threading.Event) -> None:
    """SIGKILL `server` KILL_AFTER_S after `started`, start it again on its port DOWN_FOR_S later."""
    assert started.wait(60), "no deployment started"
    time.sleep(KILL_AFTER_S)
    outage.killed_at = time.time()
    server.kill()
    time.sleep(DOWN_FOR_S)
    server.restart(empty=outage.empty)
    outage.back_at = time.time()


@dataclass(frozen=True)
class Ended:
    """How a job ended, as the run (or its ledger) tells: status, revision, deployment."""

    phase: Phase | None
    task_definition_arn: str | None
    deployment_id: str | None


def ecs_verdict(ecs: Any, target: Target, ended: Ended) -> Phase | None:
    """What ECS itself says of the job's rollout: SUCCEEDED when the service runs the job's
    revision on the job's deployment, COMPLETED; ROLLED_BACK when it runs another revision and
    the job's deployment failed or is gone; None for anything else."""
    [service] = ecs.describe_services(cluster=target.cluster, services=[target.service])["services"]
    primary = service["deployments"][0]
    ours = [d for d in service["deployments"] if d["id"] == ended.deployment_id]
    if (
        service["taskDefinition"] == ended.task_definition_arn
        and primary["id"] == ended.deployment_id
        and primary.get("rolloutState") == "COMPLETED"
    ):
        return Phase.SUCCEEDED
    if service["taskDefinition"] != ended.task_definition_arn and all(
        d.get("rolloutState") == "FAILED" for d in ours
    ):
        return Phase.ROLLED_BACK
    return None


def ledger_says(url: str, run_id: str, job_id: str) -> Ended:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        record = cast("dict[str, str]", client.hgetall(job_hash(run_id, job_id)))
    finally:
        client.close()
    terminal = record.get("terminal")
    return Ended(
        Phase(terminal) if terminal else None, record.get("task_definition_arn"), record.get("deployment_id")
    )


@pytest.mark.parametrize(
    ("empty", "heartbeat"),
    [
        pytest.param(False, "10s", id="from-its-file"),
        pytest.param(True, "10s", id="back-empty"),
        # Longer than a heartbeat: silence while nobody could hear is no sign of a lost job.
        pytest.param(False, "1500ms", id="outage-longer-than-heartbeat"),
    ],
)
async def test_redis_killed_and_restarted_mid_run_every_job_ends_as_ecs_says(
    aws: AwsEmulator,
    fleet: Fleets,
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
    empty: bool,
    heartbeat: str,
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    aws.set_scenario(SCENARIO)
    spec = fleet(SERVICES, bad=BAD, heartbeat=heartbeat).spec
    if heartbeat != "10s":
        assert spec.heartbeat < DOWN_FOR_S, "the outage must outlast a heartbeat"
    run_id = f"run-redis-outage-{'empty' if empty else 'aof'}-{heartbeat}"
    planned = plan_jobs(spec, run_id)
    state = RunState.from_plan(run_id, planned)
    recorder = Watch()
    outage = Outage(empty=empty)

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, kill_and_restart, own_redis, outage, recorder.updated)
        await run_planned(
            state, planned, own_redis.url, recorder, heartbeat_s=spec.heartbeat, max_parallel=SERVICES
        )
    assert outage.back_at > 0, "the run ended before Redis came back: the outage proved nothing"

    # Every job ended as ECS says its service ended: 7 rolled out, the bad one rolled back; and
    # the ledger's record of each job ended the same (terminal phase, revision, deployment),
    # even when Redis came back without it.
    ecs = boto3.client("ecs", region_name=REGION)
    phases = {job.target.service: job.phase for job in state.jobs.values()}
    assert phases == EXPECTED
    for job_id, job in state.jobs.items():
        run_says = Ended(job.phase, job.task_definition_arn, job.deployment_id)
        assert ecs_verdict(ecs, job.target, run_says) is job.phase, job.name
        assert ledger_says(own_redis.url, run_id, job_id) == run_says, job.name

    # No event lost: every one in the stream reached the run core, each job's numbers strictly
    # increasing; and the workers did talk during the outage (their held events are there).
    published = await published_seqs(own_redis.url, run_id)
    assert all(seqs == sorted(set(seqs)) for seqs in published.values()), published
    lost = fault_tally.events_lost(published, recorder.seen)
    client = connect_redis(own_redis.url)
    try:
        during = [e for _, e in await read_stream(client, run_id) if outage.killed_at < e.ts < outage.back_at]
        # attach would work: the plan is there, and the stream folds to the same end
        saved = await load_plan(client, run_id)
        assert saved is not None, "the run's plan is gone: attach would say 'no run'"
        with anyio.fail_after(10):
            attached = await follow_run(RunState.from_plan(run_id, saved), client, Silent())
    finally:
        await client.aclose()
    assert during, "no event was emitted while Redis was down: nothing was held back"
    assert {j.target.service: j.phase for j in attached.jobs.values()} == EXPECTED
    said = [r.getMessage() for r in caplog.records]
    assert any("events are buffered" in line for line in said), said
    assert any("pacing ECS calls locally" in line for line in said), said

    fault_tally.record(
        f"Redis SIGKILLed mid-run, restarted {'empty' if empty else 'from its file'}, heartbeat {heartbeat}",
        faults=1,
        jobs=len(planned),
        duplicate_registrations=fault_tally.duplicate_registrations(
            [f"s{i}" for i in range(SERVICES)], REGION
        ),
        events_lost=lost,
    )
    assert lost == 0


def test_cli_rides_out_the_outage_without_a_traceback(
    aws: AwsEmulator, fleet: Fleets, own_redis: RedisServer
) -> None:
    """What the user ran into: the CLI (`--plain`), its Redis SIGKILLed and back 2 s later."""
    aws.set_scenario(SCENARIO)
    spec = fleet(SERVICES, bad=BAD)
    run = spawn_cli(str(spec.path), "--plain", redis_url=own_redis.url)
    outage = Outage()
    try:
        assert run.stdout is not None
        first = run.stdout.readline()  # printed as the run starts, before any job
        started = re.match(r"run (\S+): 8 services( as \S+)?$", first.strip())  # (and who runs it)
        assert started, first
        updated = threading.Event()
        while not updated.is_set() and (line := run.stdout.readline()):
            if " updated " in line:  # the run's first deployment started
                updated.set()
        kill_and_restart(own_redis, outage, updated)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    run_id = started[1]
    assert "Traceback" not in err, err
    assert err == "", "the outage is logged with -v only"
    assert run.returncode == 1, f"exit {run.returncode}\n{out}\n{err}"  # one rolled back
    assert f"run {run_id}: 1 rolled_back, 7 succeeded" in out, out
    # what the run printed is what ECS did, and the run's plan and ledger say so too
    ecs = boto3.client("ecs", region_name=REGION)
    saved = anyio.run(_load_plan, own_redis.url, run_id)
    assert saved is not None and len(saved) == SERVICES, "attach would not know the run"
    for planned in saved:
        ended = ledger_says(own_redis.url, run_id, planned.job.job_id)
        assert ended.phase is EXPECTED[planned.job.target.service], planned.job.target
        assert ecs_verdict(ecs, planned.job.target, ended) is ended.phase, planned.job.target


async def _load_plan(url: str, run_id: str) -> list[PlannedJob] | None:
    client = connect_redis(url)
    try:
        return await load_plan(client, run_id)
    finally:
        await client.aclose()


# --- the pieces, one at a time ----------------------------------------------------------------


def _event(job: str, seq: int, phase: Phase) -> WorkerEvent:
    return WorkerEvent(run_id="run-outbox", job_id=job, seq=seq, phase=phase, message=f"{job} {seq}")


async def test_outbox_holds_events_in_order_within_its_bound_and_publishes_them_when_redis_is_back(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client: Redis = connect_redis(own_redis.url)
    outbox = Outbox(EventPublisher(client), limit=10)
    try:
        assert await outbox.send(_event("a", 1, Phase.STARTED)) == 1  # Redis up: out at once
        own_redis.kill()
        emitted = [_event("a", 2, Phase.UPDATED)]
        emitted += [_event(job, seq, Phase.IN_PROGRESS) for seq in range(3, 15) for job in ("a", "b")]
        emitted += [_event("a", 15, Phase.SUCCEEDED), _event("b", 15, Phase.ROLLED_BACK)]
        for event in emitted:
            assert await outbox.send(event) == event.seq  # held: the job goes on from its own number
            assert outbox.pending <= 10
        assert outbox.pending == 10
        own_redis.restart()
        assert await outbox.drain(patience_s=10)
    finally:
        await client.aclose()
        reader = connect_redis(own_redis.url)
        stream = [event for _, event in await read_stream(reader, "run-outbox")]
        await reader.aclose()

    # The oldest progress reports were dropped (never a step or a job's last word); what was
    # kept went out in the order emitted, and the dropping was said.
    kept = [(e.job_id, e.seq, e.phase) for e in stream[1:]]
    expected = [(e.job_id, e.seq, e.phase) for e in [emitted[0], *emitted[-9:]]]
    assert kept == expected, kept
    assert stream[0].phase is Phase.STARTED
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("dropping the oldest progress reports" in line for line in warnings), warnings
    assert any(f"{len(emitted) - 10} dropped" in line for line in warnings), warnings


async def test_budget_paces_locally_while_redis_is_away_with_the_same_buckets(own_redis: RedisServer) -> None:
    client: Redis = connect_redis(own_redis.url)
    sizes = {"RegisterTaskDefinition": BucketSize(burst=3, per_second=2.0)}
    budget = ApiBudget(client, "outage-test", sizes)
    key = budget_key("outage-test", "RegisterTaskDefinition")
    try:
        own_redis.kill()
        # A burst of 3, then a token each 0.5 s: reserved back to back, the 4th..6th wait their
        # turn (0.5, 1.0, 1.5 s after the first, less the time gone since; a call that asked
        # the dead Redis first takes longer, hence the bounds).
        spans, waits = [], []
        for _ in range(6):
            before = time.monotonic()
            waits.append(await budget.reserve("RegisterTaskDefinition"))
            spans.append((before, time.monotonic()))
        assert waits[:3] == [0.0, 0.0, 0.0], waits
        first = spans[0][1]  # the first local token was taken as that call ended
        for turn, (wait, (before, after)) in enumerate(zip(waits[3:], spans[3:], strict=True), start=1):
            due = turn * 0.5
            assert due - (after - first) - 0.01 <= wait <= due - (before - first) + 0.01, (turn, waits)
        assert await budget.reserve("UpdateService") == 0.0  # unmetered stays unmetered
        own_redis.restart()
        await anyio.sleep(1.1)  # past the budget's wait before asking Redis again
        assert await budget.reserve("RegisterTaskDefinition") == 0.0  # Redis's bucket: full
        assert await client.hget(key, "tokens") is not None, "Redis is back, yet the budget stays local"
    finally:
        await client.aclose()
