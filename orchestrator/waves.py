"""A run's waves, planned: which jobs each wave starts, and its gate, as the run saves them. Pure.

From a validated spec (`orchestrator.spec_waves`) and its planned jobs (each `PlannedJob.wave`
names its wave) to a `WavePlan`: the waves in the spec's order, each with its jobs' ids and its
`Gate`, resolved to what the run needs at the gate: the place (region and way in) its alarms are
read and its smoke test runs, and, for a smoke test of a service, the job whose new revision it
runs. The run keeps the plan in Redis (`worker.keys.run_waves`) next to its jobs, so that
`attach`, `approve` and a run taken over by `approve` know the waves and their gates.

A gate's steps, in order: `halt` (the wave's results), `smoke_test`, `soak`, `alarms`,
`approve`; each is there only when the spec asks for it, `halt` always (with `halt = false` it
only reports).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.plan import PlannedJob
from orchestrator.spec import Spec
from orchestrator.spec_waves import WaveSpec, wave_place
from worker.access import CALLER, Access

__all__ = ["Gate", "GateStep", "PlannedWave", "SmokeTest", "WavePlan", "gate_steps", "plan_waves"]

GateStep = Literal["halt", "smoke_test", "soak", "alarms", "approve"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmokeTest(_Wire):
    """A one-off task to run, resolved: where, and which revision (given, or a job's)."""

    cluster: str
    region: str | None
    access: Access = CALLER
    task_definition: str | None = None  # given in the spec
    job_id: str | None = None  # else: the revision this job of the wave registered (or runs)
    container: str | None = None
    command: tuple[str, ...] | None = None
    launch_type: str = "FARGATE"
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False
    timeout_s: float = Field(gt=0)


class Gate(_Wire):
    halt: bool = True
    smoke_test: SmokeTest | None = None
    soak_s: float | None = None
    alarms: tuple[str, ...] = ()
    alarm_wait_s: float = 300.0
    approve: bool = False


class PlannedWave(_Wire):
    name: str
    job_ids: tuple[str, ...]
    gate: Gate = Gate()
    region: str | None = None  # where the gate's alarms are read
    access: Access = CALLER


class WavePlan(_Wire):
    """The run's waves in order, and what a run taken over needs to finish like the original."""

    waves: tuple[PlannedWave, ...]
    all_or_nothing: bool = False
    max_parallel: int = Field(default=50, gt=0)

    def wave(self, name: str) -> PlannedWave | None:
        return next((wave for wave in self.waves if wave.name == name), None)

    def wave_of(self, job_id: str) -> PlannedWave | None:
        return next((wave for wave in self.waves if job_id in wave.job_ids), None)

    @property
    def names(self) -> list[str]:
        return [wave.name for wave in self.waves]


def gate_steps(gate: Gate) -> list[GateStep]:
    """The steps of a gate, in the order they run."""
    steps: list[GateStep] = ["halt"]
    if gate.smoke_test is not None:
        steps.append("smoke_test")
    if gate.soak_s is not None:
        steps.append("soak")
    if gate.alarms:
        steps.append("alarms")
    if gate.approve:
        steps.append("approve")
    return steps


def plan_waves(
    spec: Spec,
    planned: Sequence[PlannedJob],
    *,
    region: str | None = None,
    default_region: str | None = None,
    all_or_nothing: bool = False,
    max_parallel: int = 50,
) -> WavePlan | None:
    """The waves of `spec` over its planned jobs; None for a spec without waves. `region`
    (`--region`) wins over the spec's, `default_region` (the environment's) fills in, as for jobs."""
    if not spec.wave:
        return None
    waves = []
    for wave in spec.wave:
        jobs = [p for p in planned if p.wave == wave.name]
        entries = [entry for entry in spec.deploy if entry.wave == wave.name]
        place = wave_place(wave, entries, spec, spec.region)
        gate_region, access = place if place is not None else (None, CALLER)
        gate_region = region or gate_region or default_region
        waves.append(
            PlannedWave(
                name=wave.name,
                job_ids=tuple(p.job.job_id for p in jobs),
                gate=_gate(wave, jobs, gate_region, access),
                region=gate_region,
                access=access,
            )
        )
    return WavePlan(waves=tuple(waves), all_or_nothing=all_or_nothing, max_parallel=max_parallel)


def _gate(wave: WaveSpec, jobs: Sequence[PlannedJob], region: str | None, access: Access) -> Gate:
    return Gate(
        halt=wave.halt,
        smoke_test=_smoke_test(wave, jobs, region, access),
        soak_s=wave.soak,
        alarms=tuple(wave.alarms),
        alarm_wait_s=wave.alarm_wait,
        approve=wave.approve,
    )


def _smoke_test(
    wave: WaveSpec, jobs: Sequence[PlannedJob], region: str | None, access: Access
) -> SmokeTest | None:
    smoke = wave.smoke_test
    if smoke is None:
        return None
    task_definition, job_id, container = smoke.task_definition, None, smoke.container
    cluster = smoke.cluster
    if task_definition is None:
        # The spec checked that the wave deploys the service: its job's revision is the one to run.
        job = next(
            p.job
            for p in jobs
            if p.target.service == smoke.service and smoke.cluster in (None, p.target.cluster)
        )
        job_id, cluster, region, access = (
            job.job_id,
            smoke.cluster or job.target.cluster,
            job.target.region,
            job.access,
        )
        container = container or job.changes[0].container  # the first the wave changes in it
    assert cluster is not None  # the spec refuses a task definition without a cluster
    return SmokeTest(
        cluster=cluster,
        region=region,
        access=access,
        task_definition=task_definition,
        job_id=job_id,
        container=container,
        command=None if smoke.command is None else tuple(smoke.command),
        launch_type=smoke.launch_type,
        subnets=tuple(smoke.subnets),
        security_groups=tuple(smoke.security_groups),
        assign_public_ip=smoke.assign_public_ip,
        timeout_s=smoke.timeout,
    )
