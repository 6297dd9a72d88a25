"""Running a wave's gate: its steps in order, each said as a gate event, until one stops the run.

The steps (`orchestrator.waves.gate_steps`): `halt` (the wave's results), `smoke_test` (a
one-off task, `orchestrator.smoke_test`), `soak` (the wave's services and the gate's alarms
watched for the soak time), `alarms` (every alarm OK; INSUFFICIENT_DATA is waited on up to
`alarm_wait`), `approve` (a person's word, `orchestrator.approval`). The judging is pure
(`orchestrator.gates`); here are the calls and the clock. A `stop` of the run
(`ecs-fanout stop`, or "stop" at an approval) ends whichever step is waiting, at its next look.

What AWS refuses at a gate (access denied, a throttle that outlasted the retries) stops the
run: a gate that cannot look does not pass.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio
from botocore.exceptions import BotoCoreError, ClientError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.alarms import read_alarms
from orchestrator.approval import Decided, decision_for, set_awaiting, stop_requested
from orchestrator.ecs_reads import EcsReads
from orchestrator.gate_events import AlarmState, GateDetails, GatePublisher, GateStatus
from orchestrator.gates import (
    Verdict,
    alarm_verdict,
    halt_verdict,
    poll_interval,
    services_text,
    soak_problem,
    wanted_revisions,
)
from orchestrator.smoke_test import run_smoke_test
from orchestrator.state import OK_PHASES, RunState
from orchestrator.waves import GateStep, PlannedWave, gate_steps
from worker.access import Access
from worker.aws_errors import error_message
from worker.contract import DeployJob
from worker.credentials import Clients
from worker.target import Target

__all__ = ["APPROVAL_POLL_S", "GateRunner"]

APPROVAL_POLL_S = 0.5  # how soon a decision given elsewhere is seen


class GateRunner:
    """Runs the gates of one run's waves."""

    def __init__(
        self,
        state: RunState,
        jobs: Mapping[str, DeployJob],
        redis: Redis,
        clients: Clients,
        publisher: GatePublisher,
    ) -> None:
        self._state = state
        self._jobs = jobs
        self._redis = redis
        self._clients = clients
        self._say = publisher.say
        self._run_id = state.run_id

    async def run(self, wave: PlannedWave, from_step: GateStep | None = None) -> Verdict:
        """Every step of the wave's gate (from `from_step` on, for a run taken over); the first
        that does not pass stops the run."""
        every = gate_steps(wave.gate)
        steps = every[every.index(from_step) :] if from_step is not None else every
        for step in steps:
            stop = await stop_requested(self._redis, self._run_id)
            if stop is not None and step != "approve":
                return Verdict(False, f"stopped by {stop.by} (`ecs-fanout stop`)")
            try:
                verdict = await self._step(step, wave)
            except (ClientError, BotoCoreError) as exc:
                verdict = Verdict(False, f"{step}: AWS refused a call: {error_message(exc)}")
                await self._say(wave.name, step, "stopped", verdict.message)
            if not verdict.passed:
                return verdict
        return Verdict(True, f"gate passed ({', '.join(every)})")

    async def _step(self, step: GateStep, wave: PlannedWave) -> Verdict:
        if step == "halt":
            return await self._halt(wave)
        if step == "smoke_test":
            return await self._smoke_test(wave)
        if step == "soak":
            return await self._soak(wave)
        if step == "alarms":
            return await self._alarms(wave)
        return await self._approve(wave)

    async def _end(
        self, wave: PlannedWave, step: GateStep, verdict: Verdict, details: GateDetails | None = None
    ) -> Verdict:
        state: GateStatus = "passed" if verdict.passed else "stopped"
        await self._say(wave.name, step, state, verdict.message, details=details)
        return verdict

    async def _halt(self, wave: PlannedWave) -> Verdict:
        jobs = self._state.wave_jobs(self._state.waves.waves[wave.name])
        return await self._end(wave, "halt", halt_verdict(wave.gate.halt, jobs))

    async def _smoke_test(self, wave: PlannedWave) -> Verdict:
        smoke = wave.gate.smoke_test
        assert smoke is not None
        task_definition = smoke.task_definition
        if smoke.job_id is not None:
            job = self._state.jobs[smoke.job_id]
            task_definition = job.task_definition_arn if job.phase in OK_PHASES else None
            if task_definition is None:
                verdict = Verdict(
                    False, f"smoke test: {job.name} has no new revision to test ({job.phase.value})"
                )
                return await self._end(wave, "smoke_test", verdict)
        assert task_definition is not None
        ecs = await self._clients.get("ecs", smoke.region, smoke.access)
        until = time.time() + smoke.timeout_s

        async def said(message: str, details: GateDetails) -> None:
            await self._say(wave.name, "smoke_test", "running", message, until=until, details=details)

        await said(
            f"running a task of {task_definition.rsplit('/', 1)[-1]} in {smoke.cluster}", GateDetails()
        )
        result = await run_smoke_test(ecs, smoke, task_definition, f"ecs-fanout/{self._run_id}", said)
        return await self._end(
            wave, "smoke_test", Verdict(result.passed, result.message), details=result.details
        )

    async def _read_alarms(self, wave: PlannedWave) -> dict[str, str | None]:
        cloudwatch = await self._clients.get("cloudwatch", wave.region, wave.access)
        return await read_alarms(cloudwatch, wave.gate.alarms)

    async def _read_services(self, targets: Mapping[Target, str]) -> dict[Target, dict[str, Any] | str]:
        places: dict[tuple[str | None, Access], list[Target]] = {}
        for job in self._jobs.values():
            if job.target in targets:
                places.setdefault((job.target.region, job.access), []).append(job.target)
        services: dict[Target, dict[str, Any] | str] = {}
        for (region, access), group in places.items():
            reads = EcsReads(await self._clients.get("ecs", region, access))
            await reads.read_services(group)
            services |= reads.services
        return services

    async def _soak(self, wave: PlannedWave) -> Verdict:
        soak_s = wave.gate.soak_s
        assert soak_s is not None
        wanted = wanted_revisions(self._state.wave_jobs(self._state.waves.waves[wave.name]))
        until = time.time() + soak_s
        watched = services_text(len(wanted)) + (
            f" and alarm(s) {', '.join(wave.gate.alarms)}" if wave.gate.alarms else ""
        )
        await self._say(wave.name, "soak", "soaking", f"watching {watched} for {soak_s:g}s", until=until)
        poll = poll_interval(soak_s)
        while (left := until - time.time()) > 0:
            await anyio.sleep(min(poll, left))
            problem = await self._soak_problem(wave, wanted)
            if problem is not None:
                return await self._end(wave, "soak", Verdict(False, f"during the soak: {problem}"))
        return await self._end(wave, "soak", Verdict(True, f"soaked {soak_s:g}s: {watched} steady"))

    async def _soak_problem(self, wave: PlannedWave, wanted: Mapping[Target, str]) -> str | None:
        stop = await stop_requested(self._redis, self._run_id)
        if stop is not None:
            return f"stopped by {stop.by} (`ecs-fanout stop`)"
        problem = soak_problem(wanted, await self._read_services(wanted))
        if problem is None and wave.gate.alarms:
            verdict = alarm_verdict(await self._read_alarms(wave))
            problem = verdict.message if verdict.state == "stopped" else None
        return problem

    async def _alarms(self, wave: PlannedWave) -> Verdict:
        until = time.time() + wave.gate.alarm_wait_s
        poll = poll_interval(wave.gate.alarm_wait_s)
        said = ""
        while True:
            states = await self._read_alarms(wave)
            verdict = alarm_verdict(states)
            details = GateDetails(alarms=tuple(AlarmState(name=n, state=s) for n, s in states.items()))
            if verdict.state != "waiting":
                return await self._end(
                    wave, "alarms", Verdict(verdict.state == "ok", verdict.message), details=details
                )
            if time.time() >= until:
                message = (
                    f"{verdict.message} after {wave.gate.alarm_wait_s:g}s (alarm_wait): no data to judge by"
                )
                return await self._end(wave, "alarms", Verdict(False, message), details=details)
            if verdict.message != said:
                said = verdict.message
                await self._say(wave.name, "alarms", "waiting", said, until=until, details=details)
            stop = await stop_requested(self._redis, self._run_id)
            if stop is not None:
                return await self._end(
                    wave, "alarms", Verdict(False, f"stopped by {stop.by} (`ecs-fanout stop`)")
                )
            await anyio.sleep(min(poll, max(0.0, until - time.time())))

    async def _approve(self, wave: PlannedWave) -> Verdict:
        await set_awaiting(self._redis, self._run_id, wave.name)
        how = f"`ecs-fanout approve {self._run_id} --wave {wave.name}` (or `ecs-fanout stop {self._run_id}`)"
        await self._say(wave.name, "approve", "waiting", f"waiting for approval: {how}")
        decided = await self._decision(wave.name)
        await set_awaiting(self._redis, self._run_id, None)
        details = GateDetails(by=decided.by)
        if decided.decision == "approve":
            return await self._end(
                wave, "approve", Verdict(True, f"approved by {decided.by}"), details=details
            )
        return await self._end(wave, "approve", Verdict(False, f"stopped by {decided.by}"), details=details)

    async def _decision(self, wave: str) -> Decided:
        """A person's word on `wave`, as soon as it is given (Redis away: asked again)."""
        while True:
            try:
                decided = await decision_for(self._redis, self._run_id, wave)
            except (RedisError, OSError):
                decided = None
            if decided is not None:
                return decided
            await anyio.sleep(APPROVAL_POLL_S)
