"""Waves in the spec (`[[wave]]`, `wave =` on entries) and the wave plan made of them. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import SpecError
from orchestrator.plan import plan_jobs
from orchestrator.spec import Spec, spec_from_data
from orchestrator.waves import Gate, gate_steps, plan_waves

ROLE = "arn:aws:iam::111111111111:role/deployer"


def entry(service: str, wave: str | None = "one", **fields: Any) -> dict[str, Any]:
    data = {"cluster": "prod", "service": service, "container": "app", "image": f"r/{service}:2", **fields}
    return data if wave is None else {**data, "wave": wave}


def spec(waves: list[dict[str, Any]] | None, entries: list[dict[str, Any]], **top: Any) -> Spec:
    data: dict[str, Any] = {**top, "deploy": entries}
    if waves is not None:
        data["wave"] = waves
    return spec_from_data(data, "waves.toml")


def problems(waves: Any, entries: list[dict[str, Any]], **top: Any) -> list[str]:
    data: dict[str, Any] = {**top, "deploy": entries, "wave": waves}
    with pytest.raises(SpecError) as info:
        spec_from_data(data, "waves.toml")
    return list(info.value.problems)


def test_a_spec_without_waves_is_deployed_at_once_as_ever() -> None:
    plain = spec(None, [entry("a", wave=None), entry("b", wave=None)])
    assert plain.wave == []
    assert plan_waves(plain, plan_jobs(plain, "run-1")) is None
    assert {p.wave for p in plan_jobs(plain, "run-1")} == {None}


@pytest.mark.parametrize(
    ("waves", "entries", "expected"),
    [
        pytest.param(
            [{"name": "one"}, {"name": "two"}],
            [entry("a"), entry("b", wave=None)],
            "entry 2 (prod/b/app): no 'wave': in a spec with waves, every entry names one (waves: one, two)",
            id="entry-without-wave",
        ),
        pytest.param(
            [{"name": "canary"}, {"name": "rest"}],
            [entry("a", wave="canary"), entry("b", wave="canery"), entry("c", wave="rest")],
            "entry 2 (prod/b/app): unknown wave 'canery' (did you mean 'canary'?) (waves: canary, rest)",
            id="unknown-wave",
        ),
        pytest.param(
            [{"name": "one"}, {"name": "one"}],
            [entry("a")],
            "wave 2 (one): duplicate wave name 'one' (wave 1 has it)",
            id="duplicate-name",
        ),
        pytest.param(
            [{"name": "one"}, {"name": "two"}],
            [entry("a")],
            "wave 2 (two): empty: no [[deploy]] entry names it (a wave deploys at least one service)",
            id="empty-wave",
        ),
        pytest.param(
            [{"name": "one", "sok": "10m"}],
            [entry("a")],
            "wave 1 (one): unknown key 'sok' (did you mean 'soak'?)",
            id="bad-gate-key",
        ),
        pytest.param(
            [{"name": "one", "soak": "ten minutes"}],
            [entry("a")],
            "wave 1 (one): 'soak': invalid duration 'ten minutes'",
            id="bad-soak",
        ),
        pytest.param(
            [{"name": "one", "halt": "yes"}],
            [entry("a")],
            "wave 1 (one): 'halt' must be true or false, got a string",
            id="bad-halt",
        ),
        pytest.param(
            [{"name": "one", "alarms": "api-5xx"}],
            [entry("a")],
            "wave 1 (one): 'alarms' must be an array, got a string",
            id="alarms-not-a-list",
        ),
        pytest.param(
            [{"name": "one", "smoke_test": {"service": "a", "comand": ["x"]}}],
            [entry("a")],
            "wave 1 (one): unknown key 'smoke_test.comand' (did you mean 'command'?)",
            id="bad-smoke-key",
        ),
        pytest.param(
            [{"name": "one", "smoke_test": {"service": "a", "task_definition": "smoke"}}],
            [entry("a")],
            "give either 'service' (the wave's new revision of it is run) or 'task_definition'",
            id="smoke-two-tasks",
        ),
        pytest.param(
            [{"name": "one", "smoke_test": {"task_definition": "smoke"}}],
            [entry("a")],
            "'task_definition' needs 'cluster': where the task runs",
            id="smoke-no-cluster",
        ),
        pytest.param(
            [{"name": "one", "smoke_test": {"service": "zzz"}}],
            [entry("a")],
            "wave 1 (one): smoke_test.service 'zzz' is not deployed in this wave (its services: prod/a)",
            id="smoke-service-elsewhere",
        ),
        pytest.param(
            [{"name": "one"}, {"name": "two"}],
            [
                entry("a", wave="one"),
                {**entry("a", wave="two"), "container": "sidecar"},
                entry("b", wave="two"),
            ],
            "entry 2 (prod/a/sidecar): wave 'two' conflicts with entry 1 (prod/a/app), which puts the same "
            "service prod/a in wave 'one'",
            id="service-in-two-waves",
        ),
        pytest.param(
            [{"name": "one", "alarms": ["api-5xx"]}],
            [entry("a"), entry("b", region="eu-west-1")],
            "wave 1 (one): its entries are in several regions or accounts: give the wave 'region'",
            id="alarms-where",
        ),
        pytest.param(
            {"name": "one"},
            [entry("a")],
            "'wave' must be an array of tables (write [[wave]], not [wave]), got a table",
            id="single-table",
        ),
        pytest.param(
            [], [entry("a")], "'wave' must be an array of tables, got an empty array", id="empty-array"
        ),
    ],
)
def test_bad_waves_are_one_line_each(waves: Any, entries: list[dict[str, Any]], expected: str) -> None:
    found = problems(waves, entries)
    assert any(expected in line for line in found), found


def test_a_wave_named_without_waves_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        spec(None, [entry("a", wave="canary")])
    assert info.value.problems == (
        "entry 1 (prod/a/app): wave = 'canary', but the spec declares no [[wave]] tables",
    )


def test_a_gate_key_at_the_top_level_says_where_it_belongs() -> None:
    found = problems([{"name": "one"}], [entry("a")], soak="10m")
    assert "top level: unknown key 'soak' (it belongs in a [[wave]] table)" in found


def test_every_problem_is_listed_not_just_the_first() -> None:
    found = problems(
        [{"name": "one", "sok": "1m"}, {"name": "one"}, {"name": "two"}],
        [entry("a"), entry("b", wave="three")],
    )
    assert len(found) == 4, found  # bad key, duplicate, unknown wave, empty wave


def test_the_wave_plan_keeps_the_order_and_resolves_the_gates() -> None:
    waves: list[dict[str, Any]] = [
        {"name": "staging"},
        {
            "name": "canary",
            "soak": "10m",
            "alarms": ["api-5xx", "api-latency"],
            "approve": True,
            "halt": False,
            "smoke_test": {
                "service": "api",
                "command": ["./smoke"],
                "subnets": ["subnet-1"],
                "timeout": "2m",
            },
        },
        {"name": "rest", "smoke_test": {"task_definition": "smoke:3", "cluster": "tools"}},
    ]
    entries = [
        entry("api", wave="canary", region="eu-west-1", role_arn=ROLE),
        entry("web", wave="rest"),
        {**entry("db", wave="staging"), "cluster": "staging"},
        entry("worker", wave="rest"),
    ]
    deployed = spec(waves, entries, region="us-east-1")
    planned = plan_jobs(deployed, "run-1")
    plan = plan_waves(deployed, planned, all_or_nothing=True, max_parallel=7)

    assert plan is not None and plan.names == ["staging", "canary", "rest"]
    jobs = {p.target.service: p.job.job_id for p in planned}
    assert [wave.job_ids for wave in plan.waves] == [
        (jobs["db"],),
        (jobs["api"],),
        (jobs["web"], jobs["worker"]),
    ]
    canary = plan.waves[1]
    assert (canary.region, canary.access.role_arn) == ("eu-west-1", ROLE)  # where its one service is
    assert canary.gate.soak_s == 600 and canary.gate.alarms == ("api-5xx", "api-latency")
    assert canary.gate.halt is False and canary.gate.approve is True
    smoke = canary.gate.smoke_test
    assert smoke is not None
    assert (smoke.job_id, smoke.cluster, smoke.container, smoke.command) == (
        jobs["api"],
        "prod",
        "app",
        ("./smoke",),
    )
    assert (smoke.region, smoke.timeout_s, smoke.subnets) == ("eu-west-1", 120, ("subnet-1",))
    rest = plan.waves[2].gate.smoke_test
    assert rest is not None and (rest.task_definition, rest.cluster, rest.job_id) == (
        "smoke:3",
        "tools",
        None,
    )
    assert (plan.all_or_nothing, plan.max_parallel) == (True, 7)
    assert {p.target.service: p.wave for p in planned} == {
        "api": "canary",
        "web": "rest",
        "db": "staging",
        "worker": "rest",
    }


@pytest.mark.parametrize(
    ("gate", "steps"),
    [
        (Gate(), ["halt"]),
        (Gate(soak_s=60, approve=True), ["halt", "soak", "approve"]),
        (Gate(alarms=("a",), soak_s=5), ["halt", "soak", "alarms"]),
    ],
)
def test_a_gates_steps_run_in_one_order(gate: Gate, steps: list[str]) -> None:
    assert gate_steps(gate) == steps


def test_a_wave_plan_goes_through_json_unchanged() -> None:
    deployed = spec([{"name": "one", "soak": "1m", "alarms": ["x"]}], [entry("a")])
    plan = plan_waves(deployed, plan_jobs(deployed, "run-1"))
    assert plan is not None
    assert type(plan).model_validate_json(plan.model_dump_json()) == plan
