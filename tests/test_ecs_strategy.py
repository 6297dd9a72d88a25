"""ECS's deployment strategies in words: a service's set-up (plan, --dry-run) and where its service
deployment stands (the live view's words, --json events, the summary's word for a `baking` end)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from orchestrator.ecs_strategy import DeploymentSetup, deployment_text, span_text
from orchestrator.plan import PlannedJob
from orchestrator.render import JsonRenderer, scope_line, summary_table
from orchestrator.state import RunState
from worker.contract import ContainerChange, DeployJob, EventDetails, Phase, WorkerEvent
from worker.target import Target

HOOK = "arn:aws:lambda:eu-west-1:123456789012:function:check-payments-traffic"
T0 = 1_795_000_000.0


@pytest.mark.parametrize(
    ("service", "text"),
    [
        pytest.param({}, "ECS controller, strategy ROLLING", id="no-configuration-is-rolling"),
        pytest.param(
            {"deploymentController": {"type": "ECS"}, "deploymentConfiguration": {"strategy": "ROLLING"}},
            "ECS controller, strategy ROLLING",
            id="rolling",
        ),
        pytest.param(
            {
                "deploymentConfiguration": {
                    "strategy": "BLUE_GREEN",
                    "bakeTimeInMinutes": 10,
                    "lifecycleHooks": [{"hookTargetArn": HOOK}, {"hookTargetArn": HOOK + "-2"}],
                }
            },
            "ECS controller, strategy BLUE_GREEN, bake 10m, 2 hooks",
            id="blue-green",
        ),
        pytest.param(
            {
                "deploymentConfiguration": {
                    "strategy": "LINEAR",
                    "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 2},
                }
            },
            "ECS controller, strategy LINEAR 10% every 2m",
            id="linear",
        ),
        pytest.param(
            {
                "deploymentConfiguration": {
                    "strategy": "CANARY",
                    "bakeTimeInMinutes": 90,
                    "canaryConfiguration": {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 3},
                    "lifecycleHooks": [{"hookTargetArn": HOOK}],
                }
            },
            "ECS controller, strategy CANARY 5% for 3m, bake 1h30m, 1 hook",
            id="canary",
        ),
        pytest.param(
            {"deploymentController": {"type": "CODE_DEPLOY"}}, "CODE_DEPLOY controller", id="code-deploy"
        ),
        pytest.param({"deploymentController": {"type": "EXTERNAL"}}, "EXTERNAL controller", id="external"),
    ],
)
def test_a_services_set_up_in_one_phrase(service: dict[str, Any], text: str) -> None:
    assert DeploymentSetup.of(service).text == text


def test_plan_json_names_each_part_of_the_set_up() -> None:
    setup = DeploymentSetup.of(
        {
            "deploymentConfiguration": {
                "strategy": "LINEAR",
                "bakeTimeInMinutes": 5,
                "linearConfiguration": {"stepPercent": 12.5, "stepBakeTimeInMinutes": 1},
                "lifecycleHooks": [{"hookTargetArn": HOOK}],
            }
        }
    )
    assert setup.as_json() == {
        "controller": "ECS",
        "strategy": "LINEAR",
        "bake_minutes": 5.0,
        "hooks": [HOOK],
        "linear": {"step_percent": 12.5, "step_minutes": 1.0},
        "canary": None,
        "text": "ECS controller, strategy LINEAR 12.5% every 1m, bake 5m, 1 hook",
    }


@pytest.mark.parametrize(
    ("details", "seconds_later", "text"),
    [
        pytest.param(
            {
                "strategy": "BLUE_GREEN",
                "service_deployment_status": "IN_PROGRESS",
                "lifecycle_stage": "POST_TEST_TRAFFIC_SHIFT",
                "traffic_percent": 0.0,
                "hook": HOOK,
                "hook_since": T0 - 180,
            },
            12,
            "waiting for hook check-payments-traffic for 3m12s · POST_TEST_TRAFFIC_SHIFT · traffic 0% "
            "· BLUE_GREEN IN_PROGRESS",
            id="held-by-a-hook",
        ),
        pytest.param(
            {
                "strategy": "CANARY",
                "lifecycle_stage": "BAKE_TIME",
                "traffic_percent": 100.0,
                "bake_left_s": 600,
            },
            48,
            "BAKE_TIME · traffic 100% · bake 9m12s left · CANARY",
            id="baking-counts-down",
        ),
        pytest.param(
            {"lifecycle_stage": "BAKE_TIME", "bake_left_s": 30},
            45,
            "BAKE_TIME · bake 0s left",
            id="never-below-zero",
        ),
        pytest.param(
            {"strategy": "LINEAR", "traffic_percent": 33.333, "service_deployment_status": "IN_PROGRESS"},
            0,
            "traffic 33.3% · LINEAR IN_PROGRESS",
            id="linear-step",
        ),
        pytest.param(
            {"service_deployment_status": "ROLLBACK_IN_PROGRESS"},
            0,
            "ROLLBACK_IN_PROGRESS",
            id="status-alone",
        ),
        pytest.param({"following": "rollout_state", "strategy": "ROLLING"}, 0, "", id="rolling-fallback"),
        pytest.param(
            {
                "strategy": "ROLLING",
                "service_deployment_status": "IN_PROGRESS",
                "lifecycle_stage": "SCALE_UP",
                "traffic_percent": 100.0,
            },
            0,
            "SCALE_UP · ROLLING IN_PROGRESS",
            id="rolling-shifts-no-traffic",
        ),
        pytest.param({"hook": HOOK}, 0, "waiting for hook check-payments-traffic", id="hook-since-unknown"),
    ],
)
def test_where_a_service_deployment_stands(details: dict[str, Any], seconds_later: float, text: str) -> None:
    assert deployment_text(EventDetails(**details), T0 + seconds_later, T0) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45.4, "45s"), (192, "3m12s"), (600, "10m"), (5400, "1h30m"), (7200, "2h"), (-3, "0s")],
)
def test_spans(seconds: float, text: str) -> None:
    assert span_text(seconds) == text


def one_job(*events: WorkerEvent) -> RunState:
    job = DeployJob(
        run_id="run-1",
        job_id="run-1:api",
        target=Target(cluster="prod", service="api"),
        changes=(ContainerChange(container="app", image="repo/api:2"),),
    )
    state = RunState.from_plan("run-1", [PlannedJob(job=job)])
    for event in events:
        state.apply(event)
    return state


def event(seq: int, phase: Phase, message: str, at: float, **details: Any) -> WorkerEvent:
    return WorkerEvent(
        run_id="run-1",
        job_id="run-1:api",
        seq=seq,
        ts=T0 + at,
        phase=phase,
        message=message,
        details=EventDetails(**details),
    )


HELD = event(
    4,
    Phase.IN_PROGRESS,
    "3/3 running",
    200,
    following="service_deployment",
    strategy="BLUE_GREEN",
    service_deployment_status="IN_PROGRESS",
    lifecycle_stage="POST_TEST_TRAFFIC_SHIFT",
    traffic_percent=0.0,
    hook=HOOK,
    hook_since=T0 + 8,
)
BAKING = event(
    5,
    Phase.BAKING,
    "production traffic is on api:2; ECS is still baking it (10m left)",
    260,
    following="service_deployment",
    strategy="BLUE_GREEN",
    service_deployment_status="IN_PROGRESS",
    lifecycle_stage="BAKE_TIME",
    traffic_percent=100.0,
    bake_left_s=600.0,
)


def test_a_baking_end_is_a_success_the_summary_qualifies() -> None:
    state = one_job(HELD, BAKING)
    lines = summary_table(state).splitlines()
    assert lines[1].split()[:2] == ["prod/api/app", "baking"]
    assert lines[-2] == "run run-1: 1 baking"
    assert lines[-1] == (
        "1 service is still baking: traffic is on the new revision, ECS may yet roll back "
        "(`ecs-fanout status run-1` asks ECS)"
    )
    assert all(len(line) <= 120 for line in lines)


def test_json_events_carry_the_service_deployment_and_the_summary_says_baking() -> None:
    out = io.StringIO()
    renderer = JsonRenderer(out)
    state = one_job()
    renderer.started(state)
    for each in (HELD, BAKING):
        job = state.apply(each)
        assert job is not None
        renderer.changed(job, each)
    renderer.finished(state)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    held, baking = (line["details"] for line in lines if line["type"] == "event")
    assert held == {
        "following": "service_deployment",
        "strategy": "BLUE_GREEN",
        "service_deployment_status": "IN_PROGRESS",
        "lifecycle_stage": "POST_TEST_TRAFFIC_SHIFT",
        "traffic_percent": 0.0,
        "hook": HOOK,
        "hook_since": T0 + 8,
    }
    assert (baking["lifecycle_stage"], baking["bake_left_s"], "hook" in baking) == ("BAKE_TIME", 600.0, False)
    [result] = lines[-1]["results"]
    assert (result["status"], result["message"]) == ("baking", BAKING.message)


def test_a_groups_counts_name_baking_apart() -> None:
    phases = [Phase.SUCCEEDED, Phase.BAKING, Phase.BAKING, Phase.ROLLED_BACK, Phase.IN_PROGRESS]
    assert scope_line(("111111111111", "eu-west-1"), phases) == (
        "111111111111 · eu-west-1 — 5 services: 1 succeeded, 2 baking, 1 in progress, 1 failed"
    )
