"""Deploying a run wave by wave: start a wave's jobs, wait for their ends, run its gate, go on.

The run core (`orchestrator.run.run_jobs`) takes this as its `schedule`: instead of starting
every job at once, it hands the wave driver a way to start jobs and a way to wait on the
run's state. One run id covers every wave: one stream, one plan, one summary. Each wave is
said as gate events (`orchestrator.gate_events`): `wave started`, its gate's steps, then
`wave passed` or `wave stopped`. When a gate stops the run, every job of the later waves ends
`not_started` (the orchestrator's word, published to the run's stream like a `lost`, so that
`attach` sees the same), and nothing of them is registered or updated.

A run taken over while its gate waited for a person (`orchestrator.resume`) comes back here
with its waves' state replayed: passed waves are skipped, and the waiting wave's gate goes on
from its `approve` step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.approval import Decision, decide, stop_requested, who
from orchestrator.gate_events import GatePublisher
from orchestrator.gate_run import GateRunner
from orchestrator.gates import services_text
from orchestrator.plan import PlannedJob
from orchestrator.run import Schedule, StartJobs, WaitUntil
from orchestrator.state import ORCHESTRATOR_SEQ, RunState
from orchestrator.wave_store import save_waves
from orchestrator.waves import GateStep, PlannedWave, WavePlan
from worker.contract import DeployJob, Phase, WorkerEvent
from worker.credentials import Clients
from worker.publisher import EventPublisher, connect_redis

__all__ = ["Approver", "WaveDriver", "approver", "wave_schedule"]

log = logging.getLogger(__name__)

RETRY_S = 1.0


class WaveDriver:
    """The run core's schedule for a run with waves."""

    def __init__(
        self,
        plan: WavePlan,
        state: RunState,
        jobs: Mapping[str, DeployJob],
        redis: Redis,
        gates: GateRunner,
        publisher: GatePublisher,
    ) -> None:
        self._plan = plan
        self._state = state
        self._jobs = jobs
        self._redis = redis
        self._gates = gates
        self._say = publisher.say
        self._events = EventPublisher(redis)

    async def __call__(self, start: StartJobs, wait_until: WaitUntil) -> None:
        for index, wave in enumerate(self._plan.waves):
            status = self._state.waves.waves[wave.name]
            if status.status == "passed":
                continue  # a run taken over: this wave was done before
            if status.decided:
                return
            resume_at: GateStep | None = "approve" if status.awaiting_approval else None
            if resume_at is None and status.status == "pending":
                stop = await stop_requested(self._redis, self._state.run_id)
                if stop is not None:
                    await self._stop(index, f"stopped by {stop.by} (`ecs-fanout stop`) before it started")
                    return
                await self._say(wave.name, "wave", "started", f"deploying {services_text(len(wave.job_ids))}")
                await start([self._jobs[job_id] for job_id in wave.job_ids])
            await wait_until(partial(self._ended, wave))
            verdict = await self._gates.run(wave, from_step=resume_at)
            if not verdict.passed:
                await self._stop(index, verdict.message)
                return
            await self._say(wave.name, "wave", "passed", verdict.message)

    def _ended(self, wave: PlannedWave) -> bool:
        return all(self._state.jobs[job_id].terminal for job_id in wave.job_ids)

    async def _stop(self, index: int, message: str) -> None:
        wave = self._plan.waves[index]
        await self._say(wave.name, "wave", "stopped", message)
        for later in self._plan.waves[index + 1 :]:
            for job_id in later.job_ids:
                await self._not_started(job_id, f"wave {wave.name} stopped the run: {message}")

    async def _not_started(self, job_id: str, message: str) -> None:
        event = WorkerEvent(
            run_id=self._state.run_id,
            job_id=job_id,
            seq=ORCHESTRATOR_SEQ,
            phase=Phase.NOT_STARTED,
            message=message,
        )
        while True:  # the run ends only once its jobs' ends are told
            try:
                await self._events.publish(event)
                return
            except (RedisError, OSError) as exc:
                log.warning("could not publish that %s was not started (%s); trying again", job_id, exc)
                await anyio.sleep(RETRY_S)


async def wave_schedule(
    plan: WavePlan, state: RunState, planned: Sequence[PlannedJob], redis: Redis, clients: Clients
) -> Schedule:
    """The run core's schedule for `plan`: saved first, so that `attach` and `approve` know it."""
    await save_waves(redis, state.run_id, plan)
    jobs = {p.job.job_id: p.job for p in planned}
    publisher = GatePublisher(redis, state.run_id)
    gates = GateRunner(state, jobs, redis, clients, publisher)
    return WaveDriver(plan, state, jobs, redis, gates, publisher)


Approver = Callable[[str, Decision], Awaitable[None]]  # (wave, decision): the live view's prompt


def approver(redis_url: str, run_id: str) -> Approver:
    """What the live view's approval prompt calls: the decision, recorded as any other."""

    async def decide_here(wave: str, decision: Decision) -> None:
        redis = connect_redis(redis_url, max_connections=2)
        try:
            await decide(redis, run_id, wave, decision, who())
        finally:
            await redis.aclose()

    return decide_here
