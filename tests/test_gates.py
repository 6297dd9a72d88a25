"""Judging a gate (`orchestrator.gates`), folding gate events (`orchestrator.wave_state`) and how
both read (`--plain`, `--json`, the live view's wave header). Pure: no AWS, no Redis."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pytest

from orchestrator.gate_events import GateDetails, GateEvent
from orchestrator.gates import (
    alarm_verdict,
    halt_verdict,
    log_location,
    poll_interval,
    smoke_verdict,
    soak_problem,
    wanted_revisions,
)
from orchestrator.liveness import RunMeta
from orchestrator.plan import PlannedJob
from orchestrator.render import JsonRenderer, PlainRenderer, summary_table
from orchestrator.state import ORCHESTRATOR_SEQ, JobState, RunState
from orchestrator.takeover import GONE_FOR_S, Judge
from orchestrator.waves import Gate, PlannedWave, WavePlan
from tui.wave_section import gate_text
from worker.contract import ContainerChange, DeployJob, Phase, WorkerEvent
from worker.target import Target

RUN_ID = "gates-run"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition"


def job(service: str, phase: Phase, revision: int | None = 2) -> JobState:
    state = JobState(f"{RUN_ID}:{service}", Target(cluster="c", service=service), ())
    state.phase = phase
    state.task_definition_arn = None if revision is None else f"{TD}/{service}:{revision}"
    return state


@pytest.mark.parametrize(
    ("halt", "phases", "passed", "said"),
    [
        (True, [Phase.SUCCEEDED, Phase.SKIPPED], True, "2 services deployed"),
        (
            True,
            [Phase.SUCCEEDED, Phase.ROLLED_BACK],
            False,
            "1 of 2 services did not succeed (c/s1 rolled_back): halt stops",
        ),
        (
            False,
            [Phase.TIMED_OUT],
            True,
            "1 of 1 service did not succeed (c/s0 timed_out); halt = false: the run goes on",
        ),
        (True, [Phase.LOST] * 5, False, "(c/s0 lost, c/s1 lost, c/s2 lost and 2 more)"),
    ],
)
def test_halt(halt: bool, phases: list[Phase], passed: bool, said: str) -> None:
    verdict = halt_verdict(halt, [job(f"s{i}", phase) for i, phase in enumerate(phases)])
    assert verdict.passed is passed and said in verdict.message


def service(
    revision: int, *, rollout: str = "COMPLETED", others: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    primary = {
        "id": "ecs-svc/1",
        "status": "PRIMARY",
        "taskDefinition": f"{TD}/api:{revision}",
        "rolloutState": rollout,
    }
    return {"serviceName": "api", "deployments": [primary, *others]}


API = Target(cluster="c", service="api")


@pytest.mark.parametrize(
    ("described", "problem"),
    [
        (service(2), None),
        (service(1), "c/api: ECS runs api:1 now, not the wave's api:2 (rolled back, or deployed over)"),
        (service(2, rollout="FAILED"), "c/api: deployment ecs-svc/1 of api:2 FAILED: no reason given"),
        (
            service(
                2,
                others=[
                    {
                        "id": "ecs-svc/9",
                        "status": "ACTIVE",
                        "taskDefinition": f"{TD}/api:3",
                        "rolloutState": "FAILED",
                        "rolloutStateReason": "tasks failed to start",
                    }
                ],
            ),
            "c/api: deployment ecs-svc/9 of api:3 FAILED: tasks failed to start",
        ),
        ("service 'api' not found in cluster 'c'", "c/api: service 'api' not found in cluster 'c'"),
        ({"serviceName": "api", "deployments": []}, "c/api: ECS shows no PRIMARY deployment"),
    ],
)
def test_soak(described: dict[str, Any] | str, problem: str | None) -> None:
    assert soak_problem({API: f"{TD}/api:2"}, {API: described}) == problem


def test_a_soak_watches_only_what_the_wave_put_there() -> None:
    jobs = [
        job("a", Phase.SUCCEEDED),
        job("b", Phase.SKIPPED, 1),
        job("c", Phase.ROLLED_BACK),
        job("d", Phase.SUCCEEDED, None),
    ]
    assert wanted_revisions(jobs) == {jobs[0].target: f"{TD}/a:2", jobs[1].target: f"{TD}/b:1"}


@pytest.mark.parametrize(
    ("states", "verdict", "said"),
    [
        ({"a": "OK", "b": "OK"}, "ok", "alarm a, b OK"),
        ({"a": "OK", "b": "ALARM"}, "stopped", "alarm b in ALARM"),
        ({"a": "INSUFFICIENT_DATA", "b": "OK"}, "waiting", "not OK yet: a INSUFFICIENT_DATA"),
        ({"a": None}, "stopped", "no alarm named a in CloudWatch"),
        ({"a": "INSUFFICIENT_DATA", "b": "ALARM"}, "stopped", "alarm b in ALARM"),
    ],
)
def test_alarms(states: dict[str, str | None], verdict: str, said: str) -> None:
    found = alarm_verdict(states)
    assert (found.state, found.message) == (verdict, said)


ARN = "arn:aws:ecs:us-east-1:123456789012:task/c/0a1b"


def task(status: str, **containers: int | None) -> dict[str, Any]:
    described: dict[str, Any] = {"taskArn": ARN, "lastStatus": status, "containers": []}
    for name, code in containers.items():
        described["containers"].append({"name": name, **({} if code is None else {"exitCode": code})})
    if status == "STOPPED":
        described["stoppedReason"] = "Essential container in task exited"
    return described


@pytest.mark.parametrize(
    ("described", "container", "done", "passed", "said"),
    [
        (task("PROVISIONING"), "app", False, False, "task 0a1b PROVISIONING"),
        (task("RUNNING", app=None), "app", False, False, "task 0a1b RUNNING"),
        (task("STOPPED", app=0, log=1), "app", True, True, "container app exited 0"),
        (
            task("STOPPED", app=1, log=0),
            "app",
            True,
            False,
            "container app exited 1 (Essential container in task exited)",
        ),
        (
            task("STOPPED", app=None),
            "app",
            True,
            False,
            "container app has no exit code: Essential container",
        ),
        (task("STOPPED", app=0), None, True, True, "container app exited 0"),
        (task("STOPPED", log=0), "app", True, False, "stopped without container app"),
    ],
)
def test_smoke(described: dict[str, Any], container: str | None, done: bool, passed: bool, said: str) -> None:
    verdict = smoke_verdict(described, container)
    assert (verdict.done, verdict.passed) == (done, passed) and said in verdict.message


@pytest.mark.parametrize(
    ("config", "location"),
    [
        (
            {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/ecs/api", "awslogs-stream-prefix": "ecs"},
            },
            ("/ecs/api", "ecs/app/0a1b", "us-east-1"),
        ),
        (
            {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/api", "awslogs-region": "eu-west-1"}},
            ("/ecs/api", None, "eu-west-1"),
        ),
        ({"logDriver": "splunk", "options": {}}, None),
        (None, None),
    ],
)
def test_where_a_tasks_logs_are(
    config: dict[str, Any] | None, location: tuple[str, str | None, str] | None
) -> None:
    definition = {"name": "app", **({"logConfiguration": config} if config else {})}
    assert log_location({"containerDefinitions": [definition]}, "app", ARN, "us-east-1") == location


@pytest.mark.parametrize(("window", "poll"), [(1, 0.5), (20, 2.0), (600, 15.0)])
def test_gates_look_ten_times_a_window_within_bounds(window: float, poll: float) -> None:
    assert poll_interval(window) == poll


def run_with_waves() -> RunState:
    planned = [
        PlannedJob(
            job=DeployJob(
                run_id=RUN_ID,
                job_id=f"{RUN_ID}:{s}",
                target=Target(cluster="c", service=s),
                changes=(ContainerChange(container="app", image=f"r/{s}:2"),),
            ),
            wave=wave,
        )
        for s, wave in (("a", "one"), ("b", "two"), ("c", "two"))
    ]
    plan = WavePlan(
        waves=(
            PlannedWave(name="one", job_ids=(f"{RUN_ID}:a",), gate=Gate(soak_s=60)),
            PlannedWave(name="two", job_ids=(f"{RUN_ID}:b", f"{RUN_ID}:c")),
        )
    )
    return RunState.from_plan(RUN_ID, planned, plan)


def gate(wave: str, step: str, state: str, message: str = "", **extra: Any) -> GateEvent:
    return GateEvent.model_validate(
        {
            "run_id": RUN_ID,
            "wave": wave,
            "gate": step,
            "state": state,
            "message": message,
            "ts": 100.0,
            **extra,
        }
    )


def end(state: RunState, service: str, phase: Phase, message: str = "") -> None:
    seq = ORCHESTRATOR_SEQ if phase is Phase.NOT_STARTED else 5
    state.apply(
        WorkerEvent(
            run_id=RUN_ID, job_id=f"{RUN_ID}:{service}", seq=seq, ts=100.0, phase=phase, message=message
        )
    )


def test_a_run_with_waves_is_done_only_when_its_waves_are_decided() -> None:
    state = run_with_waves()
    board = state.waves
    assert [w.status for w in board.waves.values()] == ["pending", "pending"] and not board.started("two")
    state.apply_gate(gate("one", "wave", "started"))
    end(state, "a", Phase.SUCCEEDED)
    assert not state.done  # its gate has not spoken
    state.apply_gate(gate("one", "soak", "soaking", "watching", until=160.0))
    wave = board.waves["one"]
    assert (wave.status, wave.current) == ("gating", "soak")
    assert gate_text(wave, now=130.0) == ("soaking, 0:30 left: watching", "active")
    state.apply_gate(gate("one", "soak", "stopped", "during the soak: alarm x in ALARM"))
    state.apply_gate(gate("one", "wave", "stopped", "during the soak: alarm x in ALARM"))
    assert board.stopped_by == "one" and board.waves["two"].status == "not_started"
    assert not state.done  # two's jobs have not been told
    end(state, "b", Phase.NOT_STARTED, "not started: wave one stopped the run")
    end(state, "c", Phase.NOT_STARTED, "not started: wave one stopped the run")
    assert state.done
    assert (
        gate_text(board.waves["one"], 0)[1] == "failed"
        and "stopped the run" in gate_text(board.waves["one"], 0)[0]
    )
    assert state.jobs[f"{RUN_ID}:b"].started_at is None  # it never started


def test_a_wave_waiting_for_approval_is_found_and_said() -> None:
    state = run_with_waves()
    state.apply_gate(gate("one", "wave", "started"))
    state.apply_gate(
        gate("one", "approve", "waiting", "waiting for approval: `ecs-fanout approve gates-run --wave one`")
    )
    waiting = state.waves.awaiting()
    assert waiting is not None and waiting.name == "one"
    assert gate_text(waiting, 0, can_decide=True) == (
        "waiting for approval: press a to approve or stop",
        "waiting",
    )
    assert "ecs-fanout approve gates-run --wave one" in gate_text(waiting, 0)[0]
    state.apply_gate(gate("one", "approve", "passed", "approved by someone@somewhere"))
    assert state.waves.awaiting() is None


def test_gate_lines_in_json_and_plain_and_the_summary_by_wave() -> None:
    state = run_with_waves()
    json_out, plain_out = io.StringIO(), io.StringIO()
    renderers = (JsonRenderer(json_out), PlainRenderer(plain_out))
    for renderer in renderers:
        renderer.started(state)
    event = gate(
        "one",
        "smoke_test",
        "stopped",
        "container app exited 1",
        details=GateDetails(exit_code=1, log_group="/ecs/a"),
    )
    wave = state.apply_gate(event)
    assert wave is not None
    for renderer in renderers:
        renderer.gate_changed(wave, event)
    run_line, gate_line = (json.loads(line) for line in json_out.getvalue().splitlines())
    assert [w["name"] for w in run_line["waves"]] == ["one", "two"]
    assert {t["service"]: t["wave"] for t in run_line["targets"]} == {"a": "one", "b": "two", "c": "two"}
    assert gate_line == {
        "type": "gate",
        "run_id": RUN_ID,
        "wave": "one",
        "gate": "smoke_test",
        "state": "stopped",
        "message": "container app exited 1",
        "ts": 100.0,
        "until": None,
        "details": {"exit_code": 1, "log_group": "/ecs/a"},
    }
    plain = plain_out.getvalue().splitlines()
    assert plain[0] == f"run {RUN_ID}: 3 services in 2 waves (one, two)"
    assert plain[1].split(None, 1)[1].split() == [
        "wave",
        "one",
        "stopped",
        "smoke",
        "test:",
        "container",
        "app",
        "exited",
        "1",
    ]
    state.apply_gate(gate("one", "wave", "stopped", "smoke test: container app exited 1"))
    end(state, "a", Phase.SUCCEEDED)
    end(state, "b", Phase.NOT_STARTED, "not started: wave one stopped the run")
    end(state, "c", Phase.NOT_STARTED, "not started: wave one stopped the run")
    table = summary_table(state).splitlines()
    assert (
        table[1] == "wave one — 1 service: 1 succeeded · stopped the run: smoke test: container app exited 1"
    )
    assert table[3] == "wave two — 2 services: 2 not started · not started: wave one stopped the run"
    assert [r.wave for r in state.results()] == ["one", "two", "two"]


def judged(items: list[GateEvent]) -> tuple[RunState, list[str]]:
    """`attach`'s judge, the run's orchestrator gone for good, after `items` were folded."""
    state = run_with_waves()
    for item in items:
        state.apply_gate(item)
    end(state, "a", Phase.SUCCEEDED)
    judge = Judge(state, [], RunMeta(heartbeat_s=30.0))
    said: list[str] = []
    for now in (200.0, 200.0 + GONE_FOR_S):
        judge.orchestrator_seen(False, now, lambda j: said.append(j.job_id), lambda w, e: said.append(w.name))
    return state, said


def test_attach_ends_the_waves_of_a_run_whose_orchestrator_is_gone() -> None:
    state, said = judged([gate("one", "wave", "started"), gate("one", "soak", "soaking", "watching")])
    assert [w.status for w in state.waves.waves.values()] == ["stopped", "not_started"]
    assert said == ["one", f"{RUN_ID}:b", f"{RUN_ID}:c"] and state.done
    assert state.jobs[f"{RUN_ID}:b"].message.startswith("wave one stopped the run: its orchestrator stopped")


def test_attach_waits_with_a_run_whose_gate_waits_for_a_person() -> None:
    state, said = judged(
        [gate("one", "wave", "started"), gate("one", "approve", "waiting", "waiting for approval")]
    )
    assert said == [] and not state.done  # `ecs-fanout approve` takes the run over and decides
    assert state.jobs[f"{RUN_ID}:b"].phase is Phase.QUEUED
