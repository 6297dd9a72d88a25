"""The emulator's ECS service deployments: strategies, bakes, hooks, breaker, alarms, stops.

Every call goes over real HTTP to moto with the rollout simulator; the simulator runs on the
test's clock (`tests.sim_deployments`), so each stage is observed where the schedule puts it.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.sandbox.deploy_schedule import Timing, build_schedule
from tests.sim_deployments import (
    CLUSTER,
    SCENARIO,
    SERVICE,
    Clock,
    SimulatedEcs,
    alarm,
    hook,
    simulated_ecs,
    stages,
    statuses,
)

PRE = ["RECONCILE_SERVICE", "PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP"]
SHIFT = ["TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"]
AFTER_SHIFT = ["POST_PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"]
BAD = "registry.example.com/api:bad-1"


@pytest.fixture
def sim(aws: AwsEmulator) -> Iterator[SimulatedEcs]:
    with simulated_ecs(aws) as simulated:
        yield simulated


def error_code(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


@pytest.mark.parametrize(
    ("config", "expected_stages", "production_traffic"),
    [
        ({}, [*PRE, "CLEAN_UP"], [0.0, 100.0]),
        ({"bakeTimeInMinutes": 1}, [*PRE, "BAKE_TIME", "CLEAN_UP"], [0.0, 100.0]),
        ({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1}, [*PRE, *SHIFT, *AFTER_SHIFT], [0.0, 100.0]),
        (
            {
                "strategy": "LINEAR",
                "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 1},
                "bakeTimeInMinutes": 1,
            },
            [*PRE, *SHIFT, *AFTER_SHIFT],
            [0.0, 25.0, 50.0, 75.0, 100.0],
        ),
        (
            {
                "strategy": "CANARY",
                "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 1},
                "bakeTimeInMinutes": 1,
            },
            [*PRE, *SHIFT, *AFTER_SHIFT],
            [0.0, 10.0, 100.0],
        ),
    ],
    ids=["rolling", "rolling-bake", "blue-green", "linear", "canary"],
)
def test_each_strategy_walks_its_stages_in_order(
    sim: SimulatedEcs, config: dict[str, Any], expected_stages: list[str], production_traffic: list[float]
) -> None:
    sim.seed(**config)
    arn = sim.arn_of(sim.deploy())
    seen = sim.walk(arn)
    assert statuses(seen) == ["PENDING", "IN_PROGRESS", "SUCCESSFUL"]
    assert stages(seen) == expected_stages
    assert list(dict.fromkeys(traffic for _, _, traffic in seen)) == production_traffic
    done = sim.describe(arn)
    assert done["deploymentConfiguration"]["strategy"] == config.get("strategy", "ROLLING")
    assert done["startedAt"] < done["finishedAt"] == done["updatedAt"]
    assert (
        done["targetServiceRevision"]["runningTaskCount"],
        done["sourceServiceRevisions"][0]["runningTaskCount"],
    ) == (2, 0)
    [deployment] = sim.service()["deployments"]
    assert deployment["rolloutState"] == "COMPLETED"


def test_the_arns_follow_ecs_and_the_revision_carries_the_deployment_number(sim: SimulatedEcs) -> None:
    sim.seed()
    old_id = sim.service()["deployments"][0]["id"]
    new_id = sim.deploy()
    found = sim.describe(sim.arn_of(new_id))
    prefix = "arn:aws:ecs:us-east-1:123456789012"
    assert re.fullmatch(
        rf"{prefix}:service-deployment/{CLUSTER}/{SERVICE}/[A-Za-z0-9]{{21}}", found["serviceDeploymentArn"]
    )
    revision = f"{prefix}:service-revision/{CLUSTER}/{SERVICE}/"
    assert found["targetServiceRevision"]["arn"] == revision + new_id.split("/")[1]
    assert [s["arn"] for s in found["sourceServiceRevisions"]] == [revision + old_id.split("/")[1]]
    assert found["serviceArn"] == f"{prefix}:service/{CLUSTER}/{SERVICE}"
    assert found["clusterArn"] == f"{prefix}:cluster/{CLUSTER}"


@pytest.mark.parametrize(
    ("config", "blue_running"),
    [({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 2}, 2), ({"bakeTimeInMinutes": 2}, 0)],
    ids=["blue-green", "rolling"],
)
def test_rollout_state_is_completed_while_the_service_deployment_bakes(
    sim: SimulatedEcs, config: dict[str, Any], blue_running: int
) -> None:
    rev1 = sim.seed(**config)
    arn = sim.arn_of(sim.deploy())
    while sim.describe(arn).get("lifecycleStage") != "BAKE_TIME":
        sim.clock.advance(0.05)
    baking = sim.describe(arn)
    assert baking["status"] == "IN_PROGRESS"
    green, blue = sim.service()["deployments"]
    assert (green["status"], green["rolloutState"], green["runningCount"]) == ("PRIMARY", "COMPLETED", 2)
    assert (blue["status"], blue["taskDefinition"], blue["runningCount"]) == ("ACTIVE", rev1, blue_running)
    sim.clock.advance(2 * 0.2 - 0.05)  # the bake is 2 ECS minutes of 0.2 s
    assert sim.describe(arn)["lifecycleStage"] == "BAKE_TIME"
    assert sim.until(arn, "SUCCESSFUL")["lifecycleStage"] == "CLEAN_UP"
    assert len(sim.service()["deployments"]) == 1


def test_a_rolling_deployment_without_bake_succeeds_when_its_rollout_completes(aws: AwsEmulator) -> None:
    with simulated_ecs(aws, RolloutScenario(rollout_s=0.6)) as sim:
        sim.seed()
        arn = sim.arn_of(sim.deploy())
        sim.clock.advance(0.59)
        assert (sim.describe(arn)["status"], sim.service()["deployments"][0]["rolloutState"]) == (
            "IN_PROGRESS",
            "IN_PROGRESS",
        )
        sim.clock.advance(0.01)
        done = sim.describe(arn)
        assert (done["status"], sim.service()["deployments"][0]["rolloutState"]) == (
            "SUCCESSFUL",
            "COMPLETED",
        )
        took = done["finishedAt"] - done["createdAt"]
        assert abs(took - timedelta(seconds=0.6)) <= timedelta(milliseconds=2)  # ECS shows milliseconds


@pytest.mark.parametrize(
    ("strategy", "stage"),
    [
        ("ROLLING", "POST_SCALE_UP"),
        ("BLUE_GREEN", "POST_TEST_TRAFFIC_SHIFT"),
        ("CANARY", "PRODUCTION_TRAFFIC_SHIFT"),
    ],
)
def test_a_hook_holds_its_stage_until_released(sim: SimulatedEcs, strategy: str, stage: str) -> None:
    sim.seed(strategy=strategy, lifecycleHooks=[hook([stage])])
    arn = sim.arn_of(sim.deploy())
    assert sim.simulator.release_hooks(CLUSTER, SERVICE) == 0  # nothing waits for it yet
    while sim.describe(arn).get("lifecycleStage") != stage:
        sim.clock.advance(0.05)
    sim.clock.advance(3600.0)  # an hour later: still waiting
    assert (sim.describe(arn)["status"], sim.describe(arn)["lifecycleStage"]) == ("IN_PROGRESS", stage)
    assert sim.simulator.release_hooks(CLUSTER, SERVICE) == 1
    assert sim.describe(arn)["lifecycleStage"] != stage
    assert sim.until(arn, "SUCCESSFUL")["lifecycleStage"] == "CLEAN_UP"


@pytest.mark.parametrize("cause", ["release-failed", "hook-fail-image"])
def test_a_hook_that_answers_failed_rolls_the_deployment_back(sim: SimulatedEcs, cause: str) -> None:
    sim.simulator.scenario = dataclasses.replace(SCENARIO, hook_hold_s=0.3)
    rev1 = sim.seed(strategy="BLUE_GREEN", lifecycleHooks=[hook(["PRE_SCALE_UP"], name="smoke")])
    arn = sim.arn_of(
        sim.deploy("registry.example.com/api:nohook-2" if cause == "hook-fail-image" else "api:2")
    )
    while sim.describe(arn).get("lifecycleStage") != "PRE_SCALE_UP":
        sim.clock.advance(0.05)
    sim.clock.advance(0.1)  # the stage's own work is done: it waits for its hook
    if cause == "release-failed":
        assert sim.simulator.release_hooks(CLUSTER, SERVICE, succeed=False) == 1
    else:
        sim.clock.advance(0.3)  # the hook answers FAILED when its hold is over
    failed = sim.describe(arn)
    assert failed["status"] in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
    assert ":function:smoke" in failed["statusReason"] and "PRE_SCALE_UP" in failed["statusReason"]
    done = sim.until(arn, "ROLLBACK_SUCCESSFUL")
    assert done["rollback"]["reason"] == failed["statusReason"]
    assert sim.service()["taskDefinition"] == rev1


@pytest.mark.parametrize("rollback", [True, False])
def test_the_circuit_breaker_rolls_back_or_stops(sim: SimulatedEcs, rollback: bool) -> None:
    rev1 = sim.seed(deploymentCircuitBreaker={"enable": True, "rollback": rollback})
    bad_id = sim.deploy(BAD)
    arn = sim.arn_of(bad_id)
    seen = sim.walk(arn)
    done = sim.describe(arn)
    assert done["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert (
        done["deploymentCircuitBreaker"]["failureCount"] >= done["deploymentCircuitBreaker"]["threshold"] == 3
    )
    assert "circuit breaker" in done["statusReason"]
    service = sim.service()
    if rollback:
        assert statuses(seen) == [
            "PENDING",
            "IN_PROGRESS",
            "ROLLBACK_REQUESTED",
            "ROLLBACK_IN_PROGRESS",
            "ROLLBACK_SUCCESSFUL",
        ]
        [settled] = service["deployments"]
        assert (settled["taskDefinition"], service["taskDefinition"]) == (rev1, rev1)
        assert done["rollback"]["serviceRevisionArn"].endswith("/" + settled["id"].split("/")[1])
        assert done["targetServiceRevision"]["requestedProductionTrafficWeight"] == 0.0
    else:
        assert statuses(seen) == ["PENDING", "IN_PROGRESS", "STOPPED"]
        assert done["stoppedAt"] == done["finishedAt"]
        primary = service["deployments"][0]
        assert (primary["id"], primary["rolloutState"]) == (bad_id, "FAILED")


@pytest.mark.parametrize("rollback", [True, False])
def test_an_alarm_during_the_bake_rolls_back_or_stops(sim: SimulatedEcs, rollback: bool) -> None:
    alarms = {"alarmNames": ["api-5xx", "api-latency"], "enable": True, "rollback": rollback}
    rev1 = sim.seed(strategy="BLUE_GREEN", bakeTimeInMinutes=5, alarms=alarms)
    arn = sim.arn_of(sim.deploy())
    while sim.describe(arn).get("lifecycleStage") != "BAKE_TIME":
        sim.clock.advance(0.05)
    alarm(sim.aws, "unrelated")  # not the deployment's: ignored
    assert sim.describe(arn)["alarms"]["status"] == "MONITORING"
    alarm(sim.aws, "api-5xx")
    done = sim.until(arn, "ROLLBACK_SUCCESSFUL" if rollback else "STOPPED")
    assert done["alarms"] == {
        "status": "TRIGGERED",
        "alarmNames": ["api-5xx", "api-latency"],
        "triggeredAlarmNames": ["api-5xx"],
    }
    assert "api-5xx" in done["statusReason"]
    primary = sim.service()["deployments"][0]
    if rollback:
        assert (primary["taskDefinition"], primary["rolloutState"]) == (rev1, "COMPLETED")
    else:
        assert primary["rolloutState"] == "FAILED" and primary["taskDefinition"] != rev1


def test_an_alarm_after_the_bake_changes_nothing(sim: SimulatedEcs) -> None:
    sim.seed(strategy="BLUE_GREEN", alarms={"alarmNames": ["api-5xx"], "enable": True, "rollback": True})
    arn = sim.arn_of(sim.deploy())
    while sim.describe(arn).get("lifecycleStage") != "CLEAN_UP":
        sim.clock.advance(0.05)
    alarm(sim.aws, "api-5xx")
    done = sim.until(arn, "SUCCESSFUL")
    assert done["alarms"]["status"] == "MONITORING_COMPLETE"
    assert done["alarms"]["triggeredAlarmNames"] == []


@pytest.mark.parametrize("at_stage", [None, "SCALE_UP", "BAKE_TIME"], ids=["pending", "scale-up", "bake"])
def test_stop_with_rollback_goes_back_to_the_source_revision(sim: SimulatedEcs, at_stage: str | None) -> None:
    rev1 = sim.seed(strategy="BLUE_GREEN", bakeTimeInMinutes=5)
    new_id = sim.deploy()
    arn = sim.arn_of(new_id)
    while sim.describe(arn).get("lifecycleStage") != at_stage:
        sim.clock.advance(0.05)
    assert (
        sim.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")["serviceDeploymentArn"]
        == arn
    )
    assert sim.describe(arn)["status"] == "ROLLBACK_REQUESTED"
    rollback, failed, *_ = sim.service()["deployments"]
    assert (rollback["status"], rollback["taskDefinition"]) == ("PRIMARY", rev1)
    assert (failed["id"], failed["rolloutState"]) == (new_id, "FAILED")
    sim.clock.advance(0.1)
    assert sim.describe(arn)["status"] == "ROLLBACK_IN_PROGRESS"
    done = sim.until(arn, "ROLLBACK_SUCCESSFUL")
    assert "StopServiceDeployment" in done["rollback"]["reason"]
    [settled] = sim.service()["deployments"]
    assert (settled["id"], settled["taskDefinition"]) == (rollback["id"], rev1)


def test_stop_with_abort_stops_where_it_is(sim: SimulatedEcs) -> None:
    sim.seed()
    new_id = sim.deploy()
    arn = sim.arn_of(new_id)
    sim.until(arn, "IN_PROGRESS")
    sim.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")
    assert sim.describe(arn)["status"] == "STOP_REQUESTED"
    done = sim.until(arn, "STOPPED")
    assert "ABORT" in done["statusReason"] and done["stoppedAt"] == done["finishedAt"]
    primary, _ = sim.service()["deployments"]
    assert (primary["id"], primary["rolloutState"]) == (new_id, "FAILED")


def test_stop_refuses_an_ended_or_unknown_deployment(sim: SimulatedEcs) -> None:
    sim.seed()
    arn = sim.arn_of(sim.deploy())
    sim.until(arn, "SUCCESSFUL")
    with pytest.raises(ClientError) as ended:
        sim.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert error_code(ended) == "ConflictException"
    with pytest.raises(ClientError) as unknown:
        sim.ecs.stop_service_deployment(serviceDeploymentArn=arn[:-3] + "xyz", stopType="ABORT")
    assert error_code(unknown) == "ServiceDeploymentNotFoundException"


def test_a_newer_update_stops_the_deployment_it_replaces(sim: SimulatedEcs) -> None:
    sim.seed()
    first = sim.arn_of(sim.deploy("api:2"))
    sim.until(first, "IN_PROGRESS")
    second = sim.arn_of(sim.deploy("api:3"))
    replaced = sim.describe(first)
    assert replaced["status"] == "STOPPED" and second in replaced["statusReason"]
    assert (
        sim.until(second, "SUCCESSFUL")["sourceServiceRevisions"][0]["arn"]
        == replaced["targetServiceRevision"]["arn"]
    )


def test_list_filters_pages_and_puts_the_newest_first(sim: SimulatedEcs) -> None:
    sim.seed()
    arns = [sim.arn_of(sim.deploy("api:2"))]
    sim.clock.advance(5.0)  # api:2 succeeds
    arns.append(sim.arn_of(sim.deploy("api:3")))
    sim.clock.advance(0.15)
    arns.append(sim.arn_of(sim.deploy("api:4")))  # stops api:3's
    newest_first = sim.list_deployments()["serviceDeployments"]
    assert [b["serviceDeploymentArn"] for b in newest_first] == arns[::-1]
    assert [b["status"] for b in newest_first] == ["PENDING", "STOPPED", "SUCCESSFUL"]

    def listed(**params: Any) -> list[str]:
        return [b["serviceDeploymentArn"] for b in sim.list_deployments(**params)["serviceDeployments"]]

    assert listed(status=["STOPPED"]) == [arns[1]]
    assert listed(status=["SUCCESSFUL", "PENDING"]) == [arns[2], arns[0]]
    first_at = newest_first[2]["createdAt"]
    second = timedelta(seconds=1)  # botocore sends whole seconds: the first is 5 s before the others
    assert listed(createdAt={"after": first_at - second, "before": first_at + second}) == [arns[0]]
    assert listed(createdAt={"after": first_at + 2 * second}) == [arns[2], arns[1]]
    first = sim.list_deployments(maxResults=2)
    rest = sim.list_deployments(maxResults=2, nextToken=first["nextToken"])
    assert [
        b["serviceDeploymentArn"] for b in first["serviceDeployments"] + rest["serviceDeployments"]
    ] == arns[::-1]
    assert "nextToken" not in rest
    with pytest.raises(ClientError) as unknown:
        sim.ecs.list_service_deployments(cluster=CLUSTER, service="nope")
    assert error_code(unknown) == "ServiceNotFoundException"


def test_describe_reports_unknown_arns_as_missing(sim: SimulatedEcs) -> None:
    sim.seed()
    arn = sim.arn_of(sim.deploy())
    unknown = arn.rsplit("/", 1)[0] + "/" + "a" * 21
    answer = sim.ecs.describe_service_deployments(serviceDeploymentArns=[arn, unknown, "not-an-arn"])
    assert [d["serviceDeploymentArn"] for d in answer["serviceDeployments"]] == [arn]
    assert answer["failures"] == [
        {"arn": unknown, "reason": "MISSING"},
        {"arn": "not-an-arn", "reason": "MISSING"},
    ]
    with pytest.raises(ClientError) as too_many:
        sim.ecs.describe_service_deployments(serviceDeploymentArns=[f"{arn}{i}" for i in range(21)])
    assert error_code(too_many) == "InvalidParameterException"


def test_the_api_can_be_switched_off_like_an_endpoint_that_predates_it(sim: SimulatedEcs) -> None:
    sim.seed()
    sim.simulator.scenario = dataclasses.replace(SCENARIO, service_deployments_api=False)
    calls: dict[str, dict[str, Any]] = {
        "list_service_deployments": {"cluster": CLUSTER, "service": SERVICE},
        "describe_service_deployments": {"serviceDeploymentArns": ["arn:aws:ecs:x"]},
        "stop_service_deployment": {"serviceDeploymentArn": "arn:aws:ecs:x"},
    }
    for method, params in calls.items():
        with pytest.raises(ClientError) as refused:
            getattr(sim.ecs, method)(**params)
        assert error_code(refused) == "UnknownOperationException"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    sim.deploy()  # deployments still roll out, followed through DescribeServices alone
    sim.clock.advance(2.0)
    assert sim.service()["deployments"][0]["rolloutState"] == "COMPLETED"


def test_linear_steps_stop_short_of_100_percent_however_the_floats_round() -> None:
    config = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 33.3, "stepBakeTimeInMinutes": 2}}
    schedule = build_schedule(config, Timing(rollout_s=1.0, stage_s=0.5, minute_s=10.0))
    shifts = [(s.traffic, s.duration_s) for s in schedule.stages if s.name == "PRODUCTION_TRAFFIC_SHIFT"]
    assert shifts == [(33.3, 20.0), (66.6, 20.0), (99.9, 20.0), (100.0, 0.5)]
    assert schedule.stages[schedule.rolled_out].name == "POST_PRODUCTION_TRAFFIC_SHIFT"


def test_on_the_wall_clock_a_released_hook_and_a_bake_end_in_success(aws: AwsEmulator) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.3, stage_s=0.05, minute_s=0.3, hook_hold_s=None))
    sim = SimulatedEcs(aws, aws.simulator, Clock())  # the emulator's own simulator, on time.time
    sim.seed(strategy="BLUE_GREEN", bakeTimeInMinutes=1, lifecycleHooks=[hook(["PRE_SCALE_UP"])])
    arn = sim.arn_of(sim.deploy())
    deadline = time.monotonic() + 5.0
    while aws.simulator.release_hooks(CLUSTER, SERVICE) == 0:
        assert time.monotonic() < deadline, sim.describe(arn)
        time.sleep(0.02)
    while (found := sim.describe(arn))["status"] != "SUCCESSFUL":
        assert time.monotonic() < deadline, found
        time.sleep(0.02)
    assert stages(sim.walk(arn)) == ["CLEAN_UP"]
