"""A worker that goes silent after UpdateService: the run asks ECS before it says `lost`.

Real workers (the local executor) on the emulator's ECS and a real Redis; one job's worker is
cancelled right after it published UPDATED, without a word more (like a Lambda killed for
memory). With a short heartbeat the run core finds it silent and asks ECS once: a rollout ECS
completed is `succeeded` "confirmed by ECS after the worker went silent", one ECS rolled back
is `rolled_back`, one still going is `lost` with what ECS says of it. The end is on the run's
stream, so `attach` folds the same; and the worker's own verdict, should it come late, still
beats it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest
import redis.asyncio

from orchestrator.attach import follow_run
from orchestrator.confirm_silent import ecs_confirm
from orchestrator.feed import read_stream
from orchestrator.local import LocalExecutor
from orchestrator.plan import PlannedJob, plan_jobs
from orchestrator.renderer import Renderer
from orchestrator.run import Executor, run_jobs
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.session import run_session
from orchestrator.spec import Spec
from orchestrator.state import ORCHESTRATOR_SEQ, RunState
from tests.fleet import Fleets, Silent
from worker.aws import AwsAccess
from worker.contract import DeployJob, Phase, WorkerEvent
from worker.credentials import Clients
from worker.publisher import EventPublisher, connect_redis

RUN_ID = "run-silent"
SILENCED = "s1"


class SilencedAfterUpdate:
    """The real workers, but the one of `silenced` is cancelled once its UPDATED event is on
    the run's stream: it never reports again, and nobody tells the run core."""

    def __init__(self, client: redis.asyncio.Redis, silenced: str) -> None:
        self._client = client
        self._local = LocalExecutor(client, max_parallel=10, aws=AwsAccess())
        self._silenced = silenced

    async def prepare(self) -> None:
        pass

    async def _updated(self, job: DeployJob) -> None:
        while not any(  # noqa: ASYNC110 -- polls Redis, which no local event can signal
            e.job_id == job.job_id and e.phase is Phase.UPDATED
            for _, e in await read_stream(self._client, job.run_id)
        ):
            await anyio.sleep(0.02)

    async def run_all(
        self,
        jobs: Sequence[DeployJob],
        on_start: Callable[[DeployJob], None],
        on_failed: Callable[[DeployJob, str], None],
    ) -> None:
        silenced = [job for job in jobs if job.target.service == self._silenced]
        others = [job for job in jobs if job not in silenced]
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._local.run_all, others, on_start, on_failed)
            async with anyio.create_task_group() as doomed:
                doomed.start_soon(self._local.run_all, silenced, on_start, on_failed)
                await self._updated(silenced[0])
                doomed.cancel_scope.cancel()  # dies without a word, after UpdateService


async def run_with_silent_worker(spec: Spec, redis_url: str) -> tuple[RunState, list[PlannedJob]]:
    """Run the fleet with s1's worker silenced after UpdateService, asking ECS about silent jobs."""
    planned = plan_jobs(spec, RUN_ID)
    state = RunState.from_plan(RUN_ID, planned)
    client = connect_redis(redis_url)
    try:
        with anyio.fail_after(40):
            async with AsyncExitStack() as stack:
                confirm = ecs_confirm(Clients(stack, AwsAccess(), RUN_ID), client)
                executor = SilencedAfterUpdate(client, SILENCED)
                await run_jobs(
                    state, planned, client, executor, Silent(), heartbeat_s=spec.heartbeat, confirm=confirm
                )
    finally:
        await client.aclose()
    return state, planned


def by_service(state: RunState) -> dict[str, Phase]:
    return {job.target.service: job.phase for job in state.jobs.values()}


async def stream_of(redis_url: str, job_id: str) -> list[WorkerEvent]:
    client = connect_redis(redis_url)
    try:
        return [e for _, e in await read_stream(client, RUN_ID) if e.job_id == job_id]
    finally:
        await client.aclose()


async def attached(redis_url: str, planned: Sequence[PlannedJob]) -> RunState:
    """What `attach` folds from the run's stream."""
    client = connect_redis(redis_url)
    try:
        with anyio.fail_after(20):
            return await follow_run(RunState.from_plan(RUN_ID, planned), client, Silent(), planned=planned)
    finally:
        await client.aclose()


def silenced_id(state: RunState) -> str:
    return next(j.job_id for j in state.jobs.values() if j.target.service == SILENCED)


async def test_a_rollout_ecs_completed_after_the_worker_went_silent_succeeded(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.3, failure_s=0.3, bad_images=("*:bad*",)))
    state, planned = await run_with_silent_worker(fleet(3, heartbeat="3s").spec, redis_url)

    assert by_service(state) == {"s0": Phase.SUCCEEDED, "s1": Phase.SUCCEEDED, "s2": Phase.SUCCEEDED}
    job = state.jobs[silenced_id(state)]
    assert "confirmed by ECS after the worker went silent" in job.message, job.message
    assert f"2/2 running {str(job.task_definition_arn).rsplit('/', 1)[-1]};" in job.message
    assert job.details.running == job.details.desired == 2
    events = await stream_of(redis_url, job.job_id)
    assert [e.phase for e in events][-2:] == [Phase.UPDATED, Phase.SUCCEEDED]
    assert events[-1].seq == ORCHESTRATOR_SEQ and events[-1].message == job.message
    follower = (await attached(redis_url, planned)).jobs[job.job_id]
    assert (follower.phase, follower.message) == (Phase.SUCCEEDED, job.message)


async def test_a_bad_image_ecs_rolled_back_after_the_worker_went_silent_is_rolled_back(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    # ECS's breaker rolls back within about a second; the worker is silent for two before the run asks
    aws.set_scenario(RolloutScenario(rollout_s=0.3, failure_s=0.3, bad_images=("*:bad*",)))
    state, planned = await run_with_silent_worker(fleet(3, bad=1, heartbeat="3s").spec, redis_url)

    assert by_service(state) == {"s0": Phase.SUCCEEDED, "s1": Phase.ROLLED_BACK, "s2": Phase.SUCCEEDED}, [
        j.message for j in state.jobs.values()
    ]
    job = state.jobs[silenced_id(state)]
    assert "ECS rolled back to" in job.message, job.message
    assert "confirmed by ECS after the worker went silent" in job.message
    assert (await stream_of(redis_url, job.job_id))[-1].phase is Phase.ROLLED_BACK
    follower = (await attached(redis_url, planned)).jobs[job.job_id]
    assert (follower.phase, follower.message) == (Phase.ROLLED_BACK, job.message)


async def test_a_rollout_still_going_when_the_worker_went_silent_is_lost_with_ecs_last_state(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=10.0, failure_s=10.0, bad_images=("*:bad*",)))
    state, _ = await run_with_silent_worker(fleet(2, heartbeat="2s").spec, redis_url)

    assert by_service(state) == {"s0": Phase.SUCCEEDED, "s1": Phase.LOST}
    job = state.jobs[silenced_id(state)]
    assert job.message.startswith("no event for 2s (last: "), job.message
    assert f"ECS reports deployment {job.deployment_id} in progress (" in job.message
    assert "the rollout goes on without ecs-fanout" in job.message
    assert not any(e.phase.terminal for e in await stream_of(redis_url, job.job_id))


async def test_the_workers_own_verdict_still_beats_the_one_ecs_gave_of_its_silence(
    redis_url: str, fleet: Fleets
) -> None:
    planned = plan_jobs(fleet(1).spec, RUN_ID)
    job_id = planned[0].job.job_id
    client = connect_redis(redis_url)
    try:
        publisher = EventPublisher(client)
        for seq, phase in ((1, Phase.STARTED), (2, Phase.UPDATED)):
            await publisher.publish(WorkerEvent(run_id=RUN_ID, job_id=job_id, seq=seq, phase=phase))
        ours = WorkerEvent(
            run_id=RUN_ID, job_id=job_id, seq=ORCHESTRATOR_SEQ, phase=Phase.SUCCEEDED, message="by ECS"
        )
        assert (await publisher.publish(ours)).seq == ORCHESTRATOR_SEQ
        # the worker was slow, not dead: its verdict comes after, numbered past ours
        late = await publisher.publish(
            WorkerEvent(run_id=RUN_ID, job_id=job_id, seq=3, phase=Phase.FAILED, message="worker's own")
        )
        assert late.seq == ORCHESTRATOR_SEQ + 1
        await publisher.publish(WorkerEvent(run_id=RUN_ID, job_id=job_id, seq=4, phase=Phase.SUCCEEDED))
        state = RunState.from_plan(RUN_ID, planned)
        for _, event in await read_stream(client, RUN_ID):
            state.apply(event)
    finally:
        await client.aclose()
    assert (state.jobs[job_id].phase, state.jobs[job_id].message) == (Phase.FAILED, "worker's own")


def test_a_session_asks_ecs_with_the_runs_aws_and_exits_ok(
    aws: AwsEmulator, fleet: Fleets, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The way in that `ecs-fanout deploy` takes: `run_session` given the run's AWS builds the
    question itself; the user sees the silent job succeeded, confirmed by ECS, and exit 0."""
    aws.set_scenario(RolloutScenario(rollout_s=0.3, failure_s=0.3, bad_images=("*:bad*",)))
    spec = fleet(2, heartbeat="3s")  # a busy machine may take a second to the first event

    @asynccontextmanager
    async def silencing(client: redis.asyncio.Redis, renderer: Renderer) -> AsyncIterator[Executor]:
        yield SilencedAfterUpdate(client, SILENCED)

    code = run_session(
        plan_jobs(spec.spec, RUN_ID),
        run_id=RUN_ID,
        redis_url=redis_url,
        output="plain",
        spec_path=str(spec.path),
        heartbeat_s=spec.spec.heartbeat,
        executor_factory=silencing,
        aws=AwsAccess(),
    )
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(line for line in out.splitlines() if "confirmed by ECS after the worker went silent" in line)
    assert "s1" in line and "succeeded" in line, out
