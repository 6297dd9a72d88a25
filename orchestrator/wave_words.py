"""What a wave's gate will do, in words, for `plan` and `--dry-run`. Pure.

A dry run of a spec with waves shows the services wave by wave, each wave headed by what runs
between it and the next: the gate's steps in the order the run takes them (`waves.gate_steps`).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.waves import Gate, PlannedWave, SmokeTest, gate_steps

__all__ = ["gate_words", "wave_heading"]


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _smoke_words(smoke: SmokeTest, service_of: Mapping[str, str]) -> str:
    what = (
        f"task definition {smoke.task_definition}"
        if smoke.task_definition is not None
        else f"{service_of.get(smoke.job_id or '', 'the service')}'s new revision"
    )
    command = "" if smoke.command is None else f" `{' '.join(smoke.command)}`"
    return f"smoke test on cluster {smoke.cluster}: {what}{command} (at most {_duration(smoke.timeout_s)})"


def gate_words(gate: Gate, service_of: Mapping[str, str]) -> list[str]:
    """The gate's steps in words, in order; `service_of`: job id -> its service's name."""
    words: list[str] = []
    for step in gate_steps(gate):
        if step == "halt":
            words.append("stop on a failure" if gate.halt else "go on after a failure")
        elif step == "smoke_test" and gate.smoke_test is not None:
            words.append(_smoke_words(gate.smoke_test, service_of))
        elif step == "soak" and gate.soak_s is not None:
            words.append(f"soak {_duration(gate.soak_s)}")
        elif step == "alarms":
            alarms = ", ".join(gate.alarms)
            words.append(f"alarms {alarms} not in ALARM (up to {_duration(gate.alarm_wait_s)} for data)")
        elif step == "approve":
            words.append("wait for approval (ecs-fanout approve RUN_ID)")
    return words


def wave_heading(wave: PlannedWave, service_of: Mapping[str, str]) -> str:
    """One line heading a wave's services: its name, its size, and its gate (the last wave's
    too: the run ends on its verdict)."""
    services = len({service_of.get(job_id, job_id) for job_id in wave.job_ids})
    size = f"{services} service{'s' * (services != 1)}"
    return f"wave {wave.name}: {size}; then {'; '.join(gate_words(wave.gate, service_of))}"
