"""Waves end to end: the CLI as users run it, against the emulator (moto + our simulator) and Redis.

A fleet in three waves (staging s0, canary s1, rest s2-s4; `tests.waves_fleet`). What a user
notices: the order things happen in (`--json` gate lines), the summary's statuses and waves,
the exit code, and what ECS runs afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.sandbox import AwsEmulator, RolloutScenario
from tests.cli import ROOT, CliInTerminal, run_cli, spawn_cli
from tests.waves_fleet import (
    SERVICES,
    WAVES,
    Lines,
    gate_events,
    json_lines,
    registered,
    revisions_in_use,
    set_alarm,
    write_waves,
)

SCENARIO = RolloutScenario(rollout_s=0.6, bad_images=("*:bad*",), task_s=0.6, failing_tasks=("*fail*",))
SMOKE = ["[wave.smoke_test]", 'service = "s1"', 'subnets = ["subnet-1"]', 'timeout = "30s"']


@pytest.fixture
def emulator(aws: AwsEmulator) -> AwsEmulator:
    aws.set_scenario(SCENARIO)
    return aws


def summary_of(lines: list[dict[str, object]]) -> dict[str, tuple[object, object]]:
    (summary,) = [line for line in lines if line["type"] == "summary"]
    results = summary["results"]
    assert isinstance(results, list)
    return {r["service"]: (r["status"], r["wave"]) for r in results}


def test_three_waves_pass_in_order_through_their_gates(
    emulator: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    spec = write_waves(
        tmp_path,
        {"canary": ['soak = "2s"', 'alarms = ["canary-5xx"]', *SMOKE, 'command = ["./smoke", "--quick"]']},
    )

    result = run_cli(str(spec), "--json", redis_url=redis_url)

    assert result.returncode == 0, result.stderr[-3000:]
    lines = json_lines(result.stdout)
    assert [w["name"] for w in lines[0]["waves"]] == list(WAVES)
    said = gate_events(lines)
    assert [step for i, step in enumerate(said) if i == 0 or said[i - 1] != step] == [
        ("staging", "wave", "started"),
        ("staging", "halt", "passed"),
        ("staging", "wave", "passed"),
        ("canary", "wave", "started"),
        ("canary", "halt", "passed"),
        ("canary", "smoke_test", "running"),  # said as the task moves on: started, RUNNING, ...
        ("canary", "smoke_test", "passed"),
        ("canary", "soak", "soaking"),
        ("canary", "soak", "passed"),
        ("canary", "alarms", "passed"),
        ("canary", "wave", "passed"),
        ("rest", "wave", "started"),
        ("rest", "halt", "passed"),
        ("rest", "wave", "passed"),
    ]
    # A wave starts only after the one before it passed: no job of a later wave speaks earlier.
    order = [(line["type"], line.get("wave") or line.get("service")) for line in lines]
    first_rest_event = next(i for i, (kind, name) in enumerate(order) if kind == "event" and name == "s2")
    canary_passed = max(
        i for i, line in enumerate(lines) if line["type"] == "gate" and line["wave"] == "canary"
    )
    assert canary_passed < first_rest_event
    smoke = next(
        line
        for line in lines
        if line["type"] == "gate" and line["gate"] == "smoke_test" and line["state"] == "passed"
    )
    assert smoke["details"]["exit_code"] == 0 and smoke["details"]["log_group"] == "/ecs/s1"
    assert "exited 0" in smoke["message"] and "/ecs/s1" in smoke["message"]
    wave_of = {service: wave for wave, services in WAVES.items() for service in services}
    assert summary_of(lines) == {s: ("succeeded", wave_of[s]) for s in SERVICES}
    assert revisions_in_use() == {s: f"{s}:2" for s in SERVICES}


def test_a_failed_smoke_test_stops_the_run_before_the_rest(
    emulator: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    spec = write_waves(tmp_path, {"canary": [*SMOKE, 'command = ["./smoke", "--fail-on-purpose"]']})

    result = run_cli(str(spec), "--json", redis_url=redis_url)

    assert result.returncode == 1, result.stderr[-3000:]
    lines = json_lines(result.stdout)
    smoke = [line for line in lines if line["type"] == "gate" and line["gate"] == "smoke_test"][-1]
    assert smoke["state"] == "stopped"
    assert smoke["details"]["exit_code"] == 1
    assert smoke["details"]["stop_reason"] == "Essential container in task exited"
    assert "container app exited 1" in smoke["message"] and "/ecs/s1" in smoke["message"]
    assert ("canary", "wave", "stopped") in gate_events(lines)
    assert not any(w == "rest" for w, _, _ in gate_events(lines))  # never started
    statuses = summary_of(lines)
    assert statuses == {
        "s0": ("succeeded", "staging"),
        "s1": ("succeeded", "canary"),
        **{s: ("not_started", "rest") for s in WAVES["rest"]},
    }
    not_started = [line for line in lines if line["type"] == "event" and line["phase"] == "not_started"]
    assert {line["service"] for line in not_started} == set(WAVES["rest"])
    assert "wave canary stopped the run" in not_started[0]["message"]
    # Nothing of the rest was registered: each family still has its one seeded revision.
    for service in WAVES["rest"]:
        assert registered(service) == [f"{service}:1"]
    assert revisions_in_use() == {"s0": "s0:2", "s1": "s1:2", "s2": "s2:1", "s3": "s3:1", "s4": "s4:1"}


def test_an_alarm_during_the_soak_puts_every_changed_service_back(
    emulator: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    spec = write_waves(tmp_path, {"canary": ['soak = "30s"', 'alarms = ["canary-5xx"]']})
    process = spawn_cli(str(spec), "--plain", "--all-or-nothing", redis_url=redis_url)
    lines = Lines(process)

    lines.until(lambda line: "soaking" in line, 60)
    set_alarm("canary-5xx", "ALARM")
    output = lines.rest(120)

    assert process.returncode == 1, output[-3000:]
    assert "during the soak: alarm canary-5xx in ALARM" in output
    # --all-or-nothing: both waves that changed something are put back; the rest never moved.
    assert revisions_in_use() == {s: f"{s}:1" for s in SERVICES}
    for service in WAVES["rest"]:
        assert registered(service) == [f"{service}:1"]


def test_approval_given_from_another_process(emulator: AwsEmulator, redis_url: str, tmp_path: Path) -> None:
    spec = write_waves(tmp_path, {"canary": ["approve = true"]})
    process = spawn_cli(str(spec), "--plain", redis_url=redis_url)
    lines = Lines(process)
    run_id = lines.until(lambda line: line.startswith("run "), 60).split()[1].rstrip(":")

    lines.until(lambda line: "waiting for approval" in line, 60)
    assert revisions_in_use()["s2"] == "s2:1"  # the rest waits for the approval
    approved = run_cli("approve", run_id, redis_url=redis_url, timeout=60)
    output = lines.rest(120)

    assert approved.returncode == 0, approved.stderr
    assert f"wave canary of run {run_id} approved" in approved.stderr
    assert process.returncode == 0, output[-3000:]
    assert "approval: approved by" in output
    assert revisions_in_use() == {s: f"{s}:2" for s in SERVICES}


def test_a_run_killed_while_waiting_for_approval_is_attached_and_finished_by_approving(
    emulator: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    spec = write_waves(tmp_path, {"canary": ["approve = true"]})
    process = spawn_cli(str(spec), "--plain", redis_url=redis_url)
    lines = Lines(process)
    run_id = lines.until(lambda line: line.startswith("run "), 60).split()[1].rstrip(":")
    lines.until(lambda line: "waiting for approval" in line, 60)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    env = {**os.environ, "REDIS_URL": redis_url}
    attach = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "attach", run_id, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    attached = Lines(attach)
    waiting = attached.until(lambda line: '"gate":"approve","state":"waiting"' in line, 60)
    assert "ecs-fanout approve" in waiting
    approved = run_cli("approve", run_id, "--json", redis_url=redis_url, timeout=120)
    followed = json_lines(attached.rest(120))

    assert approved.returncode == 0, approved.stderr[-3000:]
    assert "takes the run over from wave canary" in approved.stderr
    assert attach.returncode == 0
    assert summary_of(followed) == {
        s: ("succeeded", wave) for wave, services in WAVES.items() for s in services
    }
    assert revisions_in_use() == {s: f"{s}:2" for s in SERVICES}


def test_the_live_view_asks_for_the_approval_and_a_gives_it(
    emulator: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    spec = write_waves(tmp_path, {"canary": ["approve = true"]})
    env = {**os.environ, "REDIS_URL": redis_url, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"}
    terminal = CliInTerminal(str(spec), "--exit-on-done", env=env)

    terminal.read(60, until=lambda shown: b"passed its checks" in shown)
    assert revisions_in_use()["s2"] == "s2:1"  # the rest waits for the answer
    os.write(terminal.leader, b"a")
    shown = terminal.finish(120)

    assert terminal.process.returncode == 0, shown[-3000:]
    assert "wave canary — 1 service: 1 succeeded · passed: gate passed (halt, approve)" in shown
    assert revisions_in_use() == {s: f"{s}:2" for s in SERVICES}


def test_stop_from_another_process_starts_no_further_wave(
    emulator: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    spec = write_waves(tmp_path, {"canary": ["approve = true"]})
    process = spawn_cli(str(spec), "--json", redis_url=redis_url)
    lines = Lines(process)
    run_id = json_lines(lines.until(lambda line: '"type":"run"' in line, 60))[0]["run_id"]
    lines.until(lambda line: '"gate":"approve","state":"waiting"' in line, 60)

    stopped = run_cli("stop", run_id, redis_url=redis_url, timeout=60)
    output = json_lines(lines.rest(120))

    assert stopped.returncode == 0, stopped.stderr
    assert f"run {run_id} stopped: it starts no further wave" in stopped.stderr
    assert process.returncode == 1
    assert ("canary", "approve", "stopped") in gate_events(output)
    assert summary_of(output) == {
        "s0": ("succeeded", "staging"),
        "s1": ("succeeded", "canary"),
        **{s: ("not_started", "rest") for s in WAVES["rest"]},
    }
    for service in WAVES["rest"]:
        assert registered(service) == [f"{service}:1"]


def test_approve_says_what_it_cannot_approve(emulator: AwsEmulator, redis_url: str, tmp_path: Path) -> None:
    unknown = run_cli("approve", "20200101T000000Z-000000", redis_url=redis_url, timeout=60)
    assert unknown.returncode == 2 and "no run '20200101T000000Z-000000'" in unknown.stderr
    done = run_cli(str(write_waves(tmp_path)), "--json", redis_url=redis_url)
    run_id = json_lines(done.stdout)[0]["run_id"]
    late = run_cli("approve", run_id, "--wave", "rest", redis_url=redis_url, timeout=60)
    assert late.returncode == 2 and f"run {run_id} has ended" in late.stderr
    assert "Traceback" not in unknown.stderr + late.stderr


def test_plan_shows_the_services_wave_by_wave_with_each_gate(redis_url: str) -> None:
    """`plan` of the waves demo: each wave's heading (its services, what its gate will do), its
    services under it, in the order the run deploys them; in JSON, a `wave` object and field."""
    spec = str(ROOT / "specs" / "waves.toml")
    plain = run_cli("plan", spec, "--sandbox", redis_url="", timeout=120)
    assert plain.returncode == 0, plain.stderr
    headings = [line for line in plain.stdout.splitlines() if line.startswith("wave ")]
    assert [h.split(":")[0] for h in headings] == ["wave staging", "wave canary", "wave production"]
    assert "smoke test on cluster prod: prod/api-canary's new revision" in headings[1]
    assert "soak 8s" in headings[1] and "alarms prod-api-5xx" in headings[1]
    lines = plain.stdout.splitlines()
    canary_at = lines.index(headings[1])
    assert lines[canary_at + 1].startswith("prod/api-canary: ")
    assert lines.index(headings[2]) > canary_at

    as_json = run_cli("plan", spec, "--sandbox", "--json", redis_url="", timeout=120)
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [o["name"] for o in objects if o["type"] == "wave"] == ["staging", "canary", "production"]
    targets = [o for o in objects if o["type"] == "target"]
    assert {o["service"]: o["wave"] for o in targets}["api-canary"] == "canary"
