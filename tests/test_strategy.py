"""What a job makes of ECS's service deployments (worker.strategy, worker.watch): pure."""

from __future__ import annotations

from typing import Any

import pytest

from worker.contract import DoneWhen
from worker.rollout import RolloutState
from worker.strategy import bake_total_s, evaluate_service_deployment, matches_deployment
from worker.watch import progress_words

NOW = 1_800_000_000.0
HOOK = "arn:aws:lambda:us-east-1:123456789012:function:check-green"
SD_ARN = "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/s/abcdefghijklmnopqrstu"


def _sd(status: str = "IN_PROGRESS", stage: str | None = "SCALE_UP", **config: Any) -> dict[str, Any]:
    return {
        "serviceDeploymentArn": SD_ARN,
        "status": status,
        "lifecycleStage": stage,
        "statusReason": "",
        "deploymentConfiguration": {"strategy": "BLUE_GREEN", **config},
        "targetServiceRevision": {
            "arn": "arn:aws:ecs:us-east-1:123456789012:service-revision/c/s/1234567890123456789",
            "requestedTaskCount": 4,
            "runningTaskCount": 3,
            "pendingTaskCount": 1,
            "requestedProductionTrafficWeight": 30.0,
        },
        "deploymentCircuitBreaker": {"status": "MONITORING", "failureCount": 2, "threshold": 3},
    }


@pytest.mark.parametrize(
    ("status", "stage", "done_when", "expected"),
    [
        ("PENDING", None, DoneWhen.BAKED, RolloutState.IN_PROGRESS),
        ("IN_PROGRESS", "SCALE_UP", DoneWhen.BAKED, RolloutState.IN_PROGRESS),
        ("IN_PROGRESS", "BAKE_TIME", DoneWhen.BAKED, RolloutState.IN_PROGRESS),
        ("IN_PROGRESS", "BAKE_TIME", DoneWhen.TRAFFIC_SHIFTED, RolloutState.TRAFFIC_SHIFTED),
        ("IN_PROGRESS", "CLEAN_UP", DoneWhen.TRAFFIC_SHIFTED, RolloutState.TRAFFIC_SHIFTED),
        # a hook after the production shift may still fail it: not shifted "for good" yet
        ("IN_PROGRESS", "POST_PRODUCTION_TRAFFIC_SHIFT", DoneWhen.TRAFFIC_SHIFTED, RolloutState.IN_PROGRESS),
        ("SUCCESSFUL", "CLEAN_UP", DoneWhen.BAKED, RolloutState.COMPLETED),
        ("SUCCESSFUL", "CLEAN_UP", DoneWhen.TRAFFIC_SHIFTED, RolloutState.COMPLETED),
        # ECS rolling ours back: not over until ECS says how the rollback ended
        ("ROLLBACK_REQUESTED", "BAKE_TIME", DoneWhen.TRAFFIC_SHIFTED, RolloutState.IN_PROGRESS),
        ("ROLLBACK_IN_PROGRESS", "SCALE_UP", DoneWhen.BAKED, RolloutState.IN_PROGRESS),
        ("STOP_REQUESTED", "SCALE_UP", DoneWhen.BAKED, RolloutState.IN_PROGRESS),
        ("ROLLBACK_SUCCESSFUL", None, DoneWhen.BAKED, RolloutState.ROLLED_BACK),
        ("ROLLBACK_FAILED", None, DoneWhen.BAKED, RolloutState.FAILED),
        ("STOPPED", None, DoneWhen.BAKED, RolloutState.FAILED),
    ],
)
def test_status_and_stage_decide_the_state(
    status: str, stage: str | None, done_when: DoneWhen, expected: RolloutState
) -> None:
    rollout = evaluate_service_deployment(_sd(status, stage), "fam:1", now=NOW, done_when=done_when)
    assert rollout.state is expected
    assert rollout.progress is not None and rollout.progress.status == status


def test_counts_come_from_the_target_revision_and_the_breaker() -> None:
    rollout = evaluate_service_deployment(_sd(), "fam:1", now=NOW)
    assert (rollout.running, rollout.desired, rollout.pending, rollout.failed_tasks) == (3, 4, 1, 2)
    assert rollout.progress is not None
    assert (rollout.progress.strategy, rollout.progress.traffic_percent) == ("BLUE_GREEN", 30.0)


def test_a_rollback_names_the_revision_it_put_back_and_ecs_reason() -> None:
    sd = _sd("ROLLBACK_SUCCESSFUL", None)
    sd["rollback"] = {"reason": "alarm latency-high in ALARM", "serviceRevisionArn": "x"}
    rollout = evaluate_service_deployment(sd, "fam:1", now=NOW)
    assert rollout.primary_task_definition == "fam:1"
    assert "latency-high" in rollout.reason


@pytest.mark.parametrize(
    ("status", "said", "expected"),
    [
        ("STOPPED", "circuit breaker", "ECS stopped the service deployment: circuit breaker"),
        ("STOPPED", "", "ECS stopped the service deployment: no reason given"),
        ("ROLLBACK_FAILED", "tasks failed", "ECS's rollback failed: tasks failed"),
    ],
)
def test_failures_carry_ecs_reason(status: str, said: str, expected: str) -> None:
    sd = _sd(status, None)
    sd["statusReason"] = said
    assert evaluate_service_deployment(sd, "fam:1", now=NOW).reason == expected


def test_triggered_alarms_are_named() -> None:
    sd = _sd("ROLLBACK_IN_PROGRESS", "BAKE_TIME")
    sd["alarms"] = {"status": "TRIGGERED", "alarmNames": ["p99", "5xx"], "triggeredAlarmNames": ["5xx"]}
    assert "alarms in ALARM: 5xx" in evaluate_service_deployment(sd, "fam:1", now=NOW).reason


def test_bake_time_left_counts_from_when_the_stage_began() -> None:
    sd = _sd("IN_PROGRESS", "BAKE_TIME", bakeTimeInMinutes=10)
    rollout = evaluate_service_deployment(sd, "fam:1", now=NOW, stage_since=NOW - 150)
    assert rollout.progress is not None and rollout.progress.bake_left_s == pytest.approx(450)
    words = progress_words(rollout, NOW)
    assert "baking, 7m30s left" in words and "bake time" in words


@pytest.mark.parametrize(
    ("stage", "held"), [("POST_TEST_TRAFFIC_SHIFT", True), ("SCALE_UP", False), ("PRE_SCALE_UP", False)]
)
def test_a_hook_holds_only_the_stages_it_is_registered_for(stage: str, held: bool) -> None:
    hooks = [{"hookTargetArn": HOOK, "roleArn": "r", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}]
    sd = _sd("IN_PROGRESS", stage, lifecycleHooks=hooks)
    rollout = evaluate_service_deployment(sd, "fam:1", now=NOW, stage_since=NOW - 192)
    assert rollout.progress is not None
    assert (rollout.progress.hook == HOOK) is held
    words = progress_words(rollout, NOW)
    assert ("waiting for hook check-green for 3m12s" in words) is held


@pytest.mark.parametrize(
    ("config", "minutes"),
    [
        ({}, 0),
        ({"strategy": "ROLLING", "bakeTimeInMinutes": 5}, 5),
        ({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 15}, 15),
        # 10% steps: 10 shifts, a hold between each two of them
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10, "stepBakeTimeInMinutes": 2}}, 18),
        # 30% steps: 30, 60, 90, then 100
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 30, "stepBakeTimeInMinutes": 1}}, 3),
        (
            {
                "strategy": "CANARY",
                "bakeTimeInMinutes": 10,
                "canaryConfiguration": {"canaryPercent": 5, "canaryBakeTimeInMinutes": 3},
            },
            13,
        ),
    ],
)
def test_bake_total_adds_every_configured_wait(config: dict[str, Any], minutes: float) -> None:
    assert bake_total_s(config) == minutes * 60


@pytest.mark.parametrize(
    ("revision_arn", "deployment_id", "expected"),
    [
        ("arn:aws:ecs:r:1:service-revision/c/s/4980306466373577095", "ecs-svc/4980306466373577095", True),
        ("arn:aws:ecs:r:1:service-revision/c/s/4980306466373577095", "ecs-svc/4980306466373577096", False),
        (None, "ecs-svc/4980306466373577095", False),
    ],
)
def test_ours_is_the_one_carrying_our_deployment_number(
    revision_arn: str | None, deployment_id: str, expected: bool
) -> None:
    assert matches_deployment(revision_arn, deployment_id) is expected
