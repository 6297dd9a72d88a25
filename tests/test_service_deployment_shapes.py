"""Every answer of the emulated service-deployments API fits botocore's output shapes, and
DescribeServices returns the deploymentConfiguration (strategy, bake, hooks, alarms) as set.

The raw JSON bodies (before botocore parses them) of ListServiceDeployments,
DescribeServiceDeployments, StopServiceDeployment and DescribeServices are checked member by
member against ECS's model as botocore 1.40 ships it: no key outside its shape, every required
member there, strings (and enums) strings, integers integers, doubles numbers, timestamps epoch
seconds, in every state a deployment goes through, rollbacks included.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.model import ListShape, Shape, StringShape, StructureShape

from orchestrator.sandbox import AwsEmulator
from tests.sim_deployments import (
    CLUSTER,
    OLD_IMAGE,
    SCENARIO,
    SERVICE,
    SESSION,
    SimulatedEcs,
    alarm,
    hook,
    simulated_ecs,
)

ECS_MODEL = SESSION.get_service_model("ecs")
CHECKED = (
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "StopServiceDeployment",
    "DescribeServices",
)
BAD = "registry.example.com/api:bad-1"
FULL_CONFIG: dict[str, Any] = {
    "strategy": "BLUE_GREEN",
    "bakeTimeInMinutes": 1,
    "alarms": {"alarmNames": ["api-5xx"], "enable": True, "rollback": True},
    "lifecycleHooks": [hook(["PRE_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT"])],
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_SCALARS: dict[str, Callable[[object], bool]] = {
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "long": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "double": _is_number,
    "float": _is_number,
    "timestamp": _is_number,  # JSON protocols: epoch seconds
}


def output_shape(action: str) -> Shape:
    shape = ECS_MODEL.operation_model(action).output_shape
    assert shape is not None
    return shape


def shape_problems(value: object, shape: Shape, path: str) -> list[str]:
    """Where `value` (parsed JSON) does not fit `shape`; empty when it does."""
    kind = shape.type_name
    if kind == "structure" and shape.metadata.get("document"):
        return []  # any JSON value
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a {shape.name} object"]
        found = [f"{path}.{key}: not a member of {shape.name}" for key in value if key not in shape.members]
        found += [f"{path}.{key}: required, missing" for key in shape.required_members if key not in value]
        for key, member in value.items():
            if key in shape.members:
                found += shape_problems(member, shape.members[key], f"{path}.{key}")
        return found
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [
            problem
            for i, item in enumerate(value)
            for problem in shape_problems(item, shape.member, f"{path}[{i}]")
        ]
    if not _SCALARS[kind](value):
        return [f"{path}: {value!r} is not a {kind} ({shape.name})"]
    enum = shape.enum if isinstance(shape, StringShape) else []
    return [f"{path}: {value!r} not in {shape.name}'s enum"] if enum and value not in enum else []


@pytest.fixture
def sim(aws: AwsEmulator) -> Iterator[SimulatedEcs]:
    with simulated_ecs(aws) as simulated:
        yield simulated


@pytest.fixture
def answers(aws: AwsEmulator) -> Iterator[tuple[SimulatedEcs, list[tuple[str, Any]]]]:
    """The simulated ECS, and every raw answer of a checked action it gives: (action, body)."""
    bodies: list[tuple[str, Any]] = []

    def keep(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        if operation_model.name in CHECKED and response_dict["status_code"] == 200:
            bodies.append((operation_model.name, json.loads(response_dict["body"])))

    with simulated_ecs(aws) as sim:
        sim.ecs.meta.events.register("before-parse.ecs.*", keep)
        yield sim, bodies


def to_the_end(sim: SimulatedEcs, arn: str) -> None:
    """Look at the deployment (and list it) at every step until it ends."""
    for _ in range(600):
        sim.list_deployments()
        sim.service()
        if "finishedAt" in sim.describe(arn):
            return
        sim.clock.advance(0.05)
    raise AssertionError(f"{arn} did not end")


def at_bake_alarm_fires(sim: SimulatedEcs) -> None:
    sim.seed(**FULL_CONFIG)
    arn = sim.arn_of(sim.deploy())
    while sim.describe(arn).get("lifecycleStage") != "BAKE_TIME":
        sim.simulator.release_hooks(CLUSTER, SERVICE)
        sim.clock.advance(0.05)
    alarm(sim.aws, "api-5xx")
    to_the_end(sim, arn)


def bad_image(rollback: bool) -> Callable[[SimulatedEcs], None]:
    def run(sim: SimulatedEcs) -> None:
        sim.seed(deploymentCircuitBreaker={"enable": True, "rollback": rollback})
        to_the_end(sim, sim.arn_of(sim.deploy(BAD)))

    return run


def stopped_by_the_api(stop_type: str) -> Callable[[SimulatedEcs], None]:
    def run(sim: SimulatedEcs) -> None:
        sim.seed(strategy="LINEAR", linearConfiguration={"stepPercent": 50.0, "stepBakeTimeInMinutes": 1})
        arn = sim.arn_of(sim.deploy())
        sim.until(arn, "IN_PROGRESS")
        sim.ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType=stop_type)
        to_the_end(sim, arn)
        sim.ecs.describe_service_deployments(serviceDeploymentArns=[arn, arn[:-1] + "0"])  # with a failure

    return run


def rollback_fails_too(sim: SimulatedEcs) -> None:
    """A hook fails the new revision; the old one's image does not start any more either."""
    sim.simulator.scenario = dataclasses.replace(SCENARIO, hook_hold_s=0.0, bad_images=(OLD_IMAGE,))
    sim.seed(lifecycleHooks=[hook(["POST_SCALE_UP"])])
    to_the_end(sim, sim.arn_of(sim.deploy("registry.example.com/api:nohook-2")))


def superseded_then_successful(sim: SimulatedEcs) -> None:
    sim.seed(strategy="CANARY", canaryConfiguration={"canaryPercent": 20.0, "canaryBakeTimeInMinutes": 1})
    first = sim.arn_of(sim.deploy("api:2"))
    sim.until(first, "IN_PROGRESS")
    to_the_end(sim, sim.arn_of(sim.deploy("api:3")))
    sim.describe(first)


@pytest.mark.parametrize(
    ("run", "statuses"),
    [
        (
            at_bake_alarm_fires,
            {"PENDING", "IN_PROGRESS", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL"},
        ),
        (bad_image(rollback=True), {"IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL"}),
        (bad_image(rollback=False), {"IN_PROGRESS", "STOPPED"}),
        (stopped_by_the_api("ROLLBACK"), {"ROLLBACK_REQUESTED", "ROLLBACK_SUCCESSFUL"}),
        (stopped_by_the_api("ABORT"), {"STOP_REQUESTED", "STOPPED"}),
        (superseded_then_successful, {"STOPPED", "IN_PROGRESS", "SUCCESSFUL"}),
        (rollback_fails_too, {"ROLLBACK_IN_PROGRESS", "ROLLBACK_FAILED"}),
    ],
    ids=[
        "alarm-rollback",
        "breaker-rollback",
        "breaker-stop",
        "stop-rollback",
        "stop-abort",
        "superseded",
        "rollback-failed",
    ],
)
def test_every_answer_fits_botocores_output_shapes(
    answers: tuple[SimulatedEcs, list[tuple[str, Any]]],
    run: Callable[[SimulatedEcs], None],
    statuses: set[str],
) -> None:
    sim, bodies = answers
    run(sim)
    problems = [
        problem for action, body in bodies for problem in shape_problems(body, output_shape(action), action)
    ]
    assert problems == []
    described = [
        sd
        for action, body in bodies
        if action == "DescribeServiceDeployments"
        for sd in body["serviceDeployments"]
    ]
    assert statuses <= {sd["status"] for sd in described}
    assert {action for action, _ in bodies} >= {
        "ListServiceDeployments",
        "DescribeServiceDeployments",
        "DescribeServices",
    }


def test_the_checker_finds_what_does_not_fit() -> None:
    shape = output_shape("DescribeServiceDeployments")
    wrong = {
        "serviceDeployments": [
            {
                "status": "DONE",
                "createdAt": "2025-01-01",
                "extra": 1,
                "targetServiceRevision": {"requestedTaskCount": 1.5},
            }
        ],
        "failures": [{"arn": 5}],
    }
    assert sorted(shape_problems(wrong, shape, "x")) == [
        "x.failures[0].arn: 5 is not a string (String)",
        "x.serviceDeployments[0].createdAt: '2025-01-01' is not a timestamp (Timestamp)",
        "x.serviceDeployments[0].extra: not a member of ServiceDeployment",
        "x.serviceDeployments[0].status: 'DONE' not in ServiceDeploymentStatus's enum",
        "x.serviceDeployments[0].targetServiceRevision.requestedTaskCount: 1.5 is not a integer (Integer)",
    ]
    config = ECS_MODEL.shape_for("DeploymentConfiguration")
    assert shape_problems({"alarms": {"enable": True}}, config, "c") == [
        "c.alarms.alarmNames: required, missing",
        "c.alarms.rollback: required, missing",
    ]


def test_describe_services_returns_the_deployment_configuration_as_set(sim: SimulatedEcs) -> None:
    config: dict[str, Any] = {
        "strategy": "LINEAR",
        "bakeTimeInMinutes": 3,
        "linearConfiguration": {"stepPercent": 20.0, "stepBakeTimeInMinutes": 2},
        "alarms": {"alarmNames": ["a"], "enable": True, "rollback": False},
        "lifecycleHooks": [hook(["PRE_SCALE_UP"])],
    }
    sim.seed(**config)
    assert sim.service()["deploymentConfiguration"] == {
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        **config,
    }
    sim.ecs.update_service(cluster=CLUSTER, service=SERVICE, deploymentConfiguration={"strategy": "CANARY"})
    updated = sim.service()["deploymentConfiguration"]
    assert (updated["strategy"], updated["bakeTimeInMinutes"]) == ("CANARY", 3)  # what it does not name stays
    refused_configs: list[dict[str, Any]] = [
        {"bakeTimeInMinutes": 1441},
        {"strategy": "RED_BLACK"},
        {"linearConfiguration": {"stepPercent": 0.0, "stepBakeTimeInMinutes": 1}},
        {"canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": -1}},
    ]
    for refused_config in refused_configs:
        with pytest.raises(ClientError) as refused:
            sim.ecs.update_service(cluster=CLUSTER, service=SERVICE, deploymentConfiguration=refused_config)
        assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert sim.service()["deploymentConfiguration"] == updated  # nothing changed
