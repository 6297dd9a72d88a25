"""The emulator's one-off tasks (RunTask, DescribeTasks, StopTask: `orchestrator.sandbox.one_off_tasks`)
and CloudWatch alarms, over HTTP as the product calls them; what they answer has the shapes
botocore's ECS model gives those answers."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.model import Shape

from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.sandbox.seed import seed_alarms

REGION = "us-east-1"
NETWORK = {
    "awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}
}


def shape_problems(value: Any, shape: Shape, path: str = "") -> list[str]:
    """Where `value` (a decoded JSON answer) does not fit `shape`: unknown members, wrong types,
    missing required members."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: a structure expected, got {value!r}"]
        members = shape.members  # type: ignore[attr-defined]
        found = [f"{path}.{key}: not in {shape.name}" for key in value if key not in members]
        found += [f"{path}.{key}: required, missing" for key in shape.required_members if key not in value]
        for key, item in value.items():
            if key in members:
                found += shape_problems(item, members[key], f"{path}.{key}")
        return found
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: a list expected, got {value!r}"]
        return [p for i, item in enumerate(value) for p in shape_problems(item, shape.member, f"{path}[{i}]")]  # type: ignore[attr-defined]
    expected: dict[str, tuple[type, ...]] = {
        "string": (str,),
        "integer": (int,),
        "long": (int,),
        "boolean": (bool,),
        "timestamp": (int, float, str),
        "double": (int, float),
        "float": (int, float),
        "map": (dict,),
        "blob": (str,),
    }
    ok = isinstance(value, expected[kind]) and not (kind in ("integer", "long") and isinstance(value, bool))
    enum = getattr(shape, "enum", None)  # a StringShape's
    if ok and kind == "string" and enum and value not in enum:
        return [f"{path}: {value!r} not one of {enum}"]
    return [] if ok else [f"{path}: {kind} expected, got {value!r}"]


class Raw:
    """A client's answers as they came over the wire, per operation."""

    def __init__(self, client: Any) -> None:
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        client.meta.events.register("after-call", self._keep)

    def _keep(self, http_response: Any, model: Any, **_: Any) -> None:
        self.bodies.setdefault(model.name, []).append(json.loads(http_response.text or "{}"))


@pytest.fixture
def ecs(aws: AwsEmulator) -> Any:
    aws.set_scenario(RolloutScenario(rollout_s=0.2, task_s=0.6, failing_tasks=("*fail*",)))
    seed_services(aws.endpoint_url, REGION, [("c", "api", {"app": "r/api:1", "log-router": "r/fluent:2"})])
    return boto3.client("ecs", region_name=REGION)


def run(ecs: Any, *command: str) -> str:
    overrides = {"containerOverrides": [{"name": "app", "command": list(command)}]} if command else {}
    answer = ecs.run_task(
        cluster="c",
        taskDefinition="api",
        launchType="FARGATE",
        startedBy="ecs-fanout/test",
        networkConfiguration=NETWORK,
        overrides=overrides,
    )
    return str(answer["tasks"][0]["taskArn"])


def described(ecs: Any, arn: str) -> dict[str, Any]:
    return dict(ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0])


def test_a_one_off_fargate_task_runs_and_stops_with_its_exit_codes(ecs: Any) -> None:
    arn = run(ecs, "./smoke", "--quick")
    seen = [described(ecs, arn)["lastStatus"]]
    while seen[-1] != "STOPPED":
        time.sleep(0.05)
        seen.append(described(ecs, arn)["lastStatus"])
    ended = described(ecs, arn)

    assert list(dict.fromkeys(seen)) == ["PROVISIONING", "PENDING", "RUNNING", "STOPPED"]
    assert {c["name"]: c["exitCode"] for c in ended["containers"]} == {"app": 0, "log-router": 0}
    assert ended["stopCode"] == "EssentialContainerExited"
    assert ended["stoppedReason"] == "Essential container in task exited"
    assert ended["startedBy"] == "ecs-fanout/test" and ended["taskDefinitionArn"].endswith(
        "task-definition/api:1"
    )
    assert ended["overrides"]["containerOverrides"] == [{"name": "app", "command": ["./smoke", "--quick"]}]


def test_a_command_that_matches_the_failing_pattern_exits_1(ecs: Any) -> None:
    arn = run(ecs, "./smoke", "--fail")
    time.sleep(0.7)
    ended = described(ecs, arn)
    assert {c["name"]: c["exitCode"] for c in ended["containers"]} == {"app": 1, "log-router": 0}


def test_a_stopped_task_keeps_its_stop(ecs: Any) -> None:
    arn = run(ecs)
    ecs.stop_task(cluster="c", task=arn, reason="ecs-fanout: smoke test timed out after 1s")
    time.sleep(0.7)  # past its schedule: the stop stays
    ended = described(ecs, arn)
    assert (ended["lastStatus"], ended["stopCode"]) == ("STOPPED", "UserInitiated")
    assert ended["stoppedReason"] == "ecs-fanout: smoke test timed out after 1s"


def test_what_the_emulator_answers_has_botocores_shapes(ecs: Any, aws: AwsEmulator) -> None:
    raw = Raw(ecs)
    arn = run(ecs, "./smoke")
    described(ecs, arn)
    time.sleep(0.7)
    described(ecs, arn)
    ecs.stop_task(cluster="c", task=run(ecs), reason="stop")
    seed_alarms(aws.endpoint_url, REGION, ["api-5xx"])
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    alarms = cloudwatch.describe_alarms(AlarmNames=["api-5xx"], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    assert alarms["MetricAlarms"][0]["StateValue"] == "OK"

    model = ecs.meta.service_model
    for operation in ("RunTask", "DescribeTasks", "StopTask"):
        output = model.operation_model(operation).output_shape
        assert raw.bodies[operation], operation
        for body in raw.bodies[operation]:
            assert shape_problems(body, output, operation) == []
