"""What `plan` and `--dry-run` say of a wave's gate. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.plan import plan_jobs
from orchestrator.spec import spec_from_data
from orchestrator.wave_words import gate_words, wave_heading
from orchestrator.waves import plan_waves


def planned_wave(gate: dict[str, Any], services: tuple[str, ...] = ("api",)) -> tuple[Any, dict[str, str]]:
    entries = [
        {"cluster": "prod", "service": s, "container": "app", "image": f"r/{s}:2", "wave": "one"}
        for s in services
    ]
    spec = spec_from_data({"deploy": entries, "wave": [{"name": "one", **gate}]}, "waves.toml")
    planned = plan_jobs(spec, "run-1", default_region="us-east-1")
    waves = plan_waves(spec, planned, default_region="us-east-1")
    assert waves is not None
    return waves.waves[0], {p.job.job_id: p.target.name for p in planned}


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        ({}, ["stop on a failure"]),
        ({"halt": False}, ["go on after a failure"]),
        ({"soak": "10m", "approve": True}, ["stop on a failure", "soak 10m", "wait for approval"]),
        (
            {"alarms": ["api-5xx", "p99"], "alarm_wait": "90s"},
            ["stop on a failure", "alarms api-5xx, p99 not in ALARM (up to 90s for data)"],
        ),
        (
            {"smoke_test": {"service": "api", "command": ["./smoke", "--fast"], "timeout": "2m"}},
            ["stop on a failure", "smoke test on cluster prod: prod/api's new revision `./smoke --fast`"],
        ),
    ],
)
def test_a_gates_steps_in_the_order_the_run_takes_them(gate: dict[str, Any], expected: list[str]) -> None:
    wave, service_of = planned_wave(gate)
    words = gate_words(wave.gate, service_of)
    assert len(words) == len(expected)
    assert all(said.startswith(start) for said, start in zip(words, expected, strict=True)), words


def test_a_wave_heading_counts_services_not_containers() -> None:
    wave, service_of = planned_wave({"soak": "30s"}, ("api", "web"))
    assert wave_heading(wave, service_of) == "wave one: 2 services; then stop on a failure; soak 30s"
