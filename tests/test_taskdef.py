"""Re-registration requests: only the named images change, everything else survives as is."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.taskdef import (
    READ_ONLY_FIELDS,
    UnknownContainerError,
    build_registration,
    current_images,
    pending_changes,
    revision_diff,
)

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
APP_IMAGE = f"{ECR}/api:1.4.0"
ENVOY_IMAGE = "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod"
LOG_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.2"
TAGS = [{"key": "team", "value": "payments"}, {"key": "cost-center", "value": "42"}]


def _task_definition() -> dict[str, Any]:
    """A realistic three-container definition, as describe_task_definition returns it."""
    return {
        "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:7",
        "family": "api",
        "taskRoleArn": "arn:aws:iam::123456789012:role/api-task",
        "executionRoleArn": "arn:aws:iam::123456789012:role/api-exec",
        "networkMode": "awsvpc",
        "revision": 7,
        "status": "ACTIVE",
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.ecr-auth"}],
        "compatibilities": ["EC2", "FARGATE"],
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "1024",
        "memory": "2048",
        "registeredAt": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "registeredBy": "arn:aws:sts::123456789012:assumed-role/deployer/ci",
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "ephemeralStorage": {"sizeInGiB": 30},
        "enableFaultInjection": False,
        "someNewAwsField": {"nested": [1, 2, {"deep": True}]},
        "volumes": [
            {"name": "scratch", "host": {}},
            {
                "name": "certs",
                "efsVolumeConfiguration": {"fileSystemId": "fs-1234", "transitEncryption": "ENABLED"},
            },
        ],
        "placementConstraints": [],
        "proxyConfiguration": {
            "type": "APPMESH",
            "containerName": "envoy",
            "properties": [
                {"name": "IgnoredUID", "value": "1337"},
                {"name": "ProxyIngressPort", "value": "15000"},
                {"name": "AppPorts", "value": "8080"},
            ],
        },
        "containerDefinitions": [
            {
                "name": "app",
                "image": APP_IMAGE,
                "essential": True,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp", "name": "http"}],
                "environment": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "PORT", "value": "8080"},
                ],
                "secrets": [
                    {"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:eu-west-1:1:secret:db"},
                ],
                "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp/scratch"}],
                "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"}],
                "healthCheck": {
                    "command": ["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"],
                    "interval": 10,
                    "timeout": 5,
                    "retries": 3,
                    "startPeriod": 30,
                },
                "logConfiguration": {"logDriver": "awsfirelens", "options": {"Name": "cloudwatch"}},
            },
            {
                "name": "envoy",
                "image": ENVOY_IMAGE,
                "essential": True,
                "user": "1337",
                "environment": [{"name": "APPMESH_RESOURCE_ARN", "value": "arn:aws:appmesh:mesh/api"}],
                "healthCheck": {
                    "command": ["CMD-SHELL", "curl -s http://localhost:9901/server_info | grep state"],
                    "interval": 5,
                    "timeout": 2,
                    "retries": 3,
                },
            },
            {
                "name": "log_router",
                "image": LOG_IMAGE,
                "essential": True,
                "firelensConfiguration": {
                    "type": "fluentbit",
                    "options": {"enable-ecs-log-metadata": "true"},
                },
                "memoryReservation": 50,
            },
        ],
    }


def _described(tags: Any = TAGS, *, with_tags_key: bool = True) -> dict[str, Any]:
    described: dict[str, Any] = {
        "taskDefinition": _task_definition(),
        "ResponseMetadata": {"RequestId": "abc", "HTTPStatusCode": 200},
    }
    if with_tags_key:
        described["tags"] = copy.deepcopy(tags)
    return described


def _without_read_only(task_definition: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in task_definition.items() if key not in READ_ONLY_FIELDS}


def test_read_only_fields_are_exactly_the_eight_register_refuses() -> None:
    assert (
        frozenset(
            {
                "taskDefinitionArn",
                "revision",
                "status",
                "requiresAttributes",
                "compatibilities",
                "registeredAt",
                "registeredBy",
                "deregisteredAt",
            }
        )
        == READ_ONLY_FIELDS
    )


def test_current_images_in_definition_order() -> None:
    images = current_images(_task_definition())
    assert images == {"app": APP_IMAGE, "envoy": ENVOY_IMAGE, "log_router": LOG_IMAGE}
    assert list(images) == ["app", "envoy", "log_router"]


def test_current_images_of_a_definition_without_containers() -> None:
    assert current_images({"family": "empty"}) == {}


@pytest.mark.parametrize(
    ("container", "image"),
    [
        ("app", f"{ECR}/api:1.5.0"),
        ("envoy", "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.30.0.0-prod"),
        ("log_router", LOG_IMAGE.replace("2.32.2", "2.32.3")),
        ("app", f"{ECR}/api@sha256:" + "ab" * 32),
    ],
)
def test_registration_changes_only_that_image(container: str, image: str) -> None:
    described = _described()
    request = build_registration(described, {container: image})

    expected = _without_read_only(_task_definition())
    for definition in expected["containerDefinitions"]:
        if definition["name"] == container:
            definition["image"] = image
    expected["tags"] = TAGS
    assert request == expected
    assert not READ_ONLY_FIELDS & request.keys()
    assert [c["name"] for c in request["containerDefinitions"]] == ["app", "envoy", "log_router"]
    assert "ResponseMetadata" not in request
    assert revision_diff(described, request) == [
        f"containerDefinitions[{container}].image: {current_images(_task_definition())[container]} -> {image}"
    ]


@pytest.mark.parametrize(
    "field",
    [
        "someNewAwsField",
        "enableFaultInjection",
        "runtimePlatform",
        "ephemeralStorage",
        "proxyConfiguration",
        "volumes",
        "placementConstraints",
        "requiresCompatibilities",
        "taskRoleArn",
        "executionRoleArn",
    ],
)
def test_fields_are_kept_as_is_not_allow_listed(field: str) -> None:
    request = build_registration(_described(), {"app": f"{ECR}/api:2"})
    assert request[field] == _task_definition()[field]


def test_registration_applies_several_changes_at_once() -> None:
    changes = {"envoy": "envoy:2", "app": "api:2"}
    request = build_registration(_described(), changes)
    assert current_images(request) == {"app": "api:2", "envoy": "envoy:2", "log_router": LOG_IMAGE}
    assert sorted(revision_diff(_described(), request)) == [
        f"containerDefinitions[app].image: {APP_IMAGE} -> api:2",
        f"containerDefinitions[envoy].image: {ENVOY_IMAGE} -> envoy:2",
    ]


def test_registration_with_no_changes_is_the_definition_itself() -> None:
    request = build_registration(_described(), {})
    assert request == {**_without_read_only(_task_definition()), "tags": TAGS}


def test_tags_are_re_sent_as_a_copy() -> None:
    described = _described()
    request = build_registration(described, {"app": "api:2"})
    assert request["tags"] == TAGS
    assert request["tags"] is not described["tags"]


@pytest.mark.parametrize(
    "described",
    [
        _described(tags=[]),
        _described(tags=None),
        _described(with_tags_key=False),
    ],
    ids=["empty", "none", "missing"],
)
def test_empty_or_missing_tags_are_omitted(described: dict[str, Any]) -> None:
    request = build_registration(described, {"app": "api:2"})
    assert "tags" not in request
    assert revision_diff(described, request) == [f"containerDefinitions[app].image: {APP_IMAGE} -> api:2"]


def test_input_is_not_mutated_and_output_shares_nothing() -> None:
    described = _described()
    before = copy.deepcopy(described)
    request = build_registration(described, {"app": "api:2", "envoy": "envoy:2"})
    assert described == before

    # Mutating the request (as boto3 callers might) must not reach back into the input.
    request["containerDefinitions"][2]["firelensConfiguration"]["options"]["x"] = "y"
    request["someNewAwsField"]["nested"][2]["deep"] = False
    request["volumes"].clear()
    request["tags"][0]["value"] = "changed"
    assert described == before


@pytest.mark.parametrize(
    ("changes", "unknown", "named"),
    [
        ({"wrk": "x:1"}, ("wrk",), "no container named 'wrk'"),
        ({"app": "api:2", "wrk": "x:1"}, ("wrk",), "no container named 'wrk'"),
        ({"a": "x:1", "b": "y:1"}, ("a", "b"), "no containers named 'a', 'b'"),
        ({"App": "x:1"}, ("App",), "no container named 'App'"),  # names are case-sensitive
    ],
)
def test_unknown_container_lists_the_available_ones(
    changes: dict[str, str], unknown: tuple[str, ...], named: str
) -> None:
    described = _described()
    before = copy.deepcopy(described)
    for call in (
        lambda: build_registration(described, changes),
        lambda: pending_changes(described["taskDefinition"], changes),
    ):
        with pytest.raises(UnknownContainerError) as caught:
            call()
        error = caught.value
        assert error.unknown == unknown
        assert error.available == ("app", "envoy", "log_router")
        assert error.family == "api"
        assert str(error) == (
            f"task definition family 'api' has {named}; its containers are: app, envoy, log_router"
        )
        assert isinstance(error, ValueError)
    assert described == before


def test_unknown_container_message_matches_the_documented_example() -> None:
    error = UnknownContainerError("api", ["wrk"], ["app", "envoy"])
    assert (
        str(error)
        == "task definition family 'api' has no container named 'wrk'; its containers are: app, envoy"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"app": APP_IMAGE}, {}),
        ({"app": APP_IMAGE, "envoy": ENVOY_IMAGE, "log_router": LOG_IMAGE}, {}),
        ({"app": "api:2"}, {"app": "api:2"}),
        ({"app": APP_IMAGE, "envoy": "envoy:2"}, {"envoy": "envoy:2"}),
        ({"app": f"{APP_IMAGE}@sha256:" + "0" * 64}, {"app": f"{APP_IMAGE}@sha256:" + "0" * 64}),
        ({}, {}),
    ],
)
def test_pending_changes_skips_containers_already_on_target(
    changes: dict[str, str], expected: dict[str, str]
) -> None:
    assert pending_changes(_task_definition(), changes) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, ["a: 1 -> 2"]),
        ({"a": "x"}, {"a": "y"}, ["a: x -> y"]),
        ({"a": 1}, {"a": "1"}, ["a: 1 -> 1"]),
        ({"a": 1}, {"a": True}, ["a: 1 -> true"]),
        ({"a": 1}, {}, ["a: 1 -> (absent)"]),
        ({}, {"b": {"c": [1]}}, ['b: (absent) -> {"c": [1]}']),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}}}, ["a.b.c: 1 -> 2"]),
        ({"l": [1, 2]}, {"l": [1, 3, 4]}, ["l[1]: 2 -> 3", "l[2]: (absent) -> 4"]),
        ({"l": [1, 2]}, {"l": [1]}, ["l[1]: 2 -> (absent)"]),
        ({"l": [1]}, {"l": {"x": 1}}, ['l: [1] -> {"x": 1}']),
        (
            {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"env": [{"name": "Z", "value": "0"}, {"name": "A", "value": "1"}, {"name": "B", "value": "3"}]},
            ["env[B].value: 2 -> 3", 'env[Z]: (absent) -> {"name": "Z", "value": "0"}'],
        ),
        (
            {"c": [{"name": "app", "image": "a:1", "cpu": 1}]},
            {"c": [{"name": "app", "image": "a:2", "cpu": 1}]},
            ["c[app].image: a:1 -> a:2"],
        ),
        (  # duplicate names: fall back to positions
            {"l": [{"name": "x", "v": 1}, {"name": "x", "v": 2}]},
            {"l": [{"name": "x", "v": 1}, {"name": "x", "v": 3}]},
            ["l[1].v: 2 -> 3"],
        ),
        ({"revision": 7, "status": "ACTIVE", "a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 1, "tags": [{"key": "k", "value": "v"}]}, []),  # bare definition: no tags known
    ],
)
def test_revision_diff(old: dict[str, Any], new: dict[str, Any], expected: list[str]) -> None:
    assert revision_diff(old, new) == expected


def test_revision_diff_reports_tag_changes_against_a_describe_response() -> None:
    described = _described()
    request = build_registration(described, {})
    request["tags"] = [{"key": "team", "value": "payments"}]
    assert revision_diff(described, request) == ['tags[1]: {"key": "cost-center", "value": "42"} -> (absent)']


def test_revision_diff_of_a_bare_definition_shows_only_the_image() -> None:
    request = build_registration(_described(), {"log_router": "fluent-bit:3"})
    assert revision_diff(_task_definition(), request) == [
        f"containerDefinitions[log_router].image: {LOG_IMAGE} -> fluent-bit:3"
    ]
