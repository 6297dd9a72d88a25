"""The run core with the local executor: events over a real Redis, reconnects, silent jobs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
import redis.asyncio

from orchestrator.feed import read_stream
from orchestrator.local import LocalExecutor
from orchestrator.plan import plan_jobs
from orchestrator.run import Executor
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.spec import Spec
from orchestrator.state import RunState
from tests import fault_tally
from tests.fleet import REGION, Fleets, Recorder, published_seqs, run_planned
from worker.aws import AwsAccess
from worker.budget import budget_key
from worker.contract import DeployJob, Phase

RUN_ID = "run-core"


async def run(
    spec: Spec, redis_url: str, executor: Callable[[redis.asyncio.Redis], Executor] | None = None
) -> tuple[RunState, Recorder]:
    planned = plan_jobs(spec, RUN_ID)
    state = RunState.from_plan(RUN_ID, planned)
    recorder = Recorder()
    await run_planned(state, planned, redis_url, recorder, heartbeat_s=spec.heartbeat, executor=executor)
    return state, recorder


async def test_run_ends_with_every_final_state(fleet: Fleets, redis_url: str) -> None:
    state, recorder = await run(fleet(6, bad=2, heartbeat="5s").spec, redis_url)
    phases = {job.target.service: job.phase for job in state.jobs.values()}
    assert phases == {f"s{i}": Phase.ROLLED_BACK if i == 2 else Phase.SUCCEEDED for i in range(6)}
    assert recorder.seen == await published_seqs(redis_url, RUN_ID)


async def test_subscriber_dropped_mid_run_still_sees_every_event(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=2.0, bad_images=("*:bad*",)))
    spec = fleet(6, bad=2, heartbeat="5s").spec
    killer = redis.asyncio.Redis.from_url(redis_url)
    kills = 0

    async def drop_subscribers() -> None:
        nonlocal kills
        while True:
            await anyio.sleep(0.25)
            kills += int(await killer.client_kill_filter(_type="pubsub"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(drop_subscribers)
        state, recorder = await run(spec, redis_url)
        tg.cancel_scope.cancel()
    await killer.aclose()

    assert kills >= 3, "the subscriber was never dropped: the test proves nothing"
    assert {job.target.service: job.phase for job in state.jobs.values()} == {
        f"s{i}": Phase.ROLLED_BACK if i == 2 else Phase.SUCCEEDED for i in range(6)
    }
    # Every event each worker published reached the run, once, in order.
    published = await published_seqs(redis_url, RUN_ID)
    assert recorder.seen == published
    fault_tally.record(
        "subscriber dropped mid-run",
        faults=kills,
        jobs=len(state.jobs),
        duplicate_registrations=fault_tally.duplicate_registrations([f"s{i}" for i in range(6)], REGION),
        events_lost=fault_tally.events_lost(published, recorder.seen),
    )


class StallingExecutor:
    """Runs every job with the real workers, except one whose worker hangs without a word."""

    async def prepare(self) -> None:
        pass

    def __init__(self, client: redis.asyncio.Redis, stalled_service: str) -> None:
        self._local = LocalExecutor(client, max_parallel=10, aws=AwsAccess())
        self._stalled = stalled_service

    async def run_all(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        stalled = [job for job in jobs if job.target.service == self._stalled]
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                self._local.run_all, [job for job in jobs if job not in stalled], on_start, on_failed
            )
            for job in stalled:
                on_start(job)
            await anyio.sleep_forever()


async def test_silent_job_is_reported_lost(fleet: Fleets, redis_url: str) -> None:
    spec = fleet(3, heartbeat="2s").spec  # the others' heartbeats every 0.67 s: a margin under load
    with anyio.fail_after(30):
        state, _ = await run(spec, redis_url, lambda client: StallingExecutor(client, "s1"))
    phases = {job.target.service: job.phase for job in state.jobs.values()}
    assert phases == {"s0": Phase.SUCCEEDED, "s1": Phase.LOST, "s2": Phase.SUCCEEDED}
    assert (
        "no event for 2s"
        in state.jobs[next(j for j in state.jobs if state.jobs[j].target.service == "s1")].message
    )


async def test_job_waiting_for_the_budget_keeps_saying_so(fleet: Fleets, redis_url: str) -> None:
    """A job that waits seconds for its account's first DescribeServices token (1,000 jobs
    starting at once) is not silent meanwhile: it must not be taken for a lost one."""
    spec = fleet(2, heartbeat="1s").spec
    planned = plan_jobs(spec, RUN_ID)
    client = redis.asyncio.Redis.from_url(redis_url)
    (now, _) = await client.time()
    # 60 tokens owed at 20 a second: the first DescribeServices waits 3 s, three heartbeats.
    key = budget_key(planned[0].job.target.scope, "DescribeServices")
    await client.hset(key, mapping={"tokens": "-60", "at": str(now)})
    state = RunState.from_plan(RUN_ID, planned)
    with anyio.fail_after(30):
        await run_planned(state, planned, redis_url, Recorder(), heartbeat_s=spec.heartbeat)
    assert {job.phase for job in state.jobs.values()} == {Phase.SUCCEEDED}
    said = [event.message for _, event in await read_stream(client, RUN_ID)]
    await client.aclose()
    assert sum("starting" in message for message in said) >= 2 * 2


class CrashingExecutor:
    """A worker that dies of an unexpected error before publishing anything."""

    async def prepare(self) -> None:
        pass

    async def run_all(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        for job in jobs:
            on_start(job)
            on_failed(job, "worker crashed: RuntimeError('out of memory')")


async def test_crashed_worker_ends_its_job_failed(fleet: Fleets, redis_url: str) -> None:
    spec = fleet(2, heartbeat="5s").spec
    with anyio.fail_after(10):
        state, _ = await run(spec, redis_url, lambda client: CrashingExecutor())
    assert {job.phase for job in state.jobs.values()} == {Phase.FAILED}
    assert all("out of memory" in job.message for job in state.jobs.values())
