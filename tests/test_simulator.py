"""The AWS emulator behaves like ECS: rollouts, circuit breaker, tasks, throttling, faults.

Every call goes over real HTTP with botocore, configured only through the environment the `aws`
fixture sets (AWS_ENDPOINT_URL and fake credentials), as the product itself is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.session import get_session

from orchestrator.sandbox import DEFAULT_ECS_BUCKETS, AwsEmulator, RolloutScenario, seed_services

CLUSTER = "prod"
SERVICE = "api"
SESSION = get_session()  # one session: loading the service model again per client is slow
NO_RETRIES = Config(retries={"total_max_attempts": 1})
CONTAINER = [{"name": "a", "image": "a:1", "memory": 128}]


def ecs_client(config: Config | None = None) -> Any:
    return SESSION.create_client("ecs", config=config)


def seed(aws: AwsEmulator, circuit_breaker: bool = True) -> str:
    """The api service (app + sidecar) at revision 1; returns that revision's ARN."""
    containers = {"app": "registry.example.com/api:1.0", "envoy": "envoyproxy/envoy:v1.30"}
    seed_services(
        aws.endpoint_url, "us-east-1", [(CLUSTER, SERVICE, containers)], circuit_breaker, session=SESSION
    )
    return str(describe(ecs_client())["taskDefinition"])


def new_revision(ecs: Any, image: str, family: str = SERVICE) -> str:
    """Register a revision whose app container runs `image`."""
    td = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    containers = [{**c, "image": image} if c["name"] == "app" else c for c in td["containerDefinitions"]]
    arn = ecs.register_task_definition(
        family=family,
        containerDefinitions=containers,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
    )["taskDefinition"]["taskDefinitionArn"]
    return str(arn)


def describe(ecs: Any) -> dict[str, Any]:
    service: dict[str, Any] = ecs.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]
    return service


def wait_for(ecs: Any, done: Callable[[dict[str, Any]], bool], timeout_s: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        service = describe(ecs)
        if done(service):
            return service
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {service['deployments']}")
        time.sleep(0.03)


def running_task_definitions(ecs: Any) -> list[str]:
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=SERVICE)["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
    return sorted(t["taskDefinitionArn"] for t in tasks if t["lastStatus"] == "RUNNING")


def test_a_new_service_is_settled_with_running_tasks(aws: AwsEmulator) -> None:
    rev1 = seed(aws)
    ecs = ecs_client()
    service = describe(ecs)
    [deployment] = service["deployments"]
    assert (deployment["status"], deployment["rolloutState"]) == ("PRIMARY", "COMPLETED")
    assert deployment["runningCount"] == service["runningCount"] == 2
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {
        "enable": True,
        "rollback": True,
    }
    assert running_task_definitions(ecs) == [rev1, rev1]


def test_a_healthy_update_is_in_progress_then_completes(aws: AwsEmulator) -> None:
    rev1 = seed(aws)
    ecs = ecs_client()
    old_id = describe(ecs)["deployments"][0]["id"]
    rev2 = new_revision(ecs, "registry.example.com/api:2.0")

    started = time.monotonic()
    updated = ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=rev2)["service"]
    new, old = updated["deployments"]
    assert re.fullmatch(r"ecs-svc/\d{19}", new["id"])
    assert (new["status"], new["rolloutState"], new["taskDefinition"]) == ("PRIMARY", "IN_PROGRESS", rev2)
    assert (new["runningCount"], new["failedTasks"]) == (0, 0)
    assert new["rolloutStateReason"] == f"ECS deployment {new['id']} in progress."
    assert (old["id"], old["status"], old["taskDefinition"]) == (old_id, "ACTIVE", rev1)

    service = wait_for(ecs, lambda s: s["deployments"][0]["rolloutState"] != "IN_PROGRESS")
    assert time.monotonic() - started >= 0.6 - 0.05
    [done] = service["deployments"]
    assert (done["id"], done["rolloutState"]) == (new["id"], "COMPLETED")
    assert done["rolloutStateReason"] == f"ECS deployment {new['id']} completed."
    assert done["runningCount"] == service["runningCount"] == 2
    assert service["events"][0]["message"] == f"(service {SERVICE}) has reached a steady state."
    assert running_task_definitions(ecs) == [rev2, rev2]


def test_a_bad_image_with_circuit_breaker_rolls_back(aws: AwsEmulator) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.5, failure_s=0.3, bad_images=("*:bad*",)))
    rev1 = seed(aws)
    ecs = ecs_client()
    rev2 = new_revision(ecs, "registry.example.com/api:bad-1")
    bad_id = ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=rev2)["service"][
        "deployments"
    ][0]["id"]

    def bad(service: dict[str, Any]) -> dict[str, Any] | None:
        return next((d for d in service["deployments"] if d["id"] == bad_id), None)

    service = wait_for(ecs, lambda s: (bad(s) or {}).get("rolloutState") == "FAILED")
    failed = bad(service)
    assert failed is not None
    assert failed["status"] == "ACTIVE"
    assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert failed["failedTasks"] >= 3
    rollback = service["deployments"][0]
    assert (rollback["status"], rollback["taskDefinition"]) == ("PRIMARY", rev1)
    assert service["taskDefinition"] == rev1

    service = wait_for(ecs, lambda s: bad(s) is None)
    [settled] = service["deployments"]
    assert (settled["id"], settled["rolloutState"], settled["taskDefinition"]) == (
        rollback["id"],
        "COMPLETED",
        rev1,
    )
    messages = [e["message"] for e in service["events"]]
    assert any("deployment failed: tasks failed to start" in m for m in messages)
    assert any("rolling back" in m for m in messages)
    assert running_task_definitions(ecs) == [rev1, rev1]


def test_a_bad_image_with_breaker_but_no_rollback_fails_and_stays(aws: AwsEmulator) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.3, failure_s=0.2, bad_images=("*:bad*",)))
    rev1 = seed(aws)
    ecs = ecs_client()
    breaker_only = {"deploymentCircuitBreaker": {"enable": True, "rollback": False}}
    ecs.update_service(cluster=CLUSTER, service=SERVICE, deploymentConfiguration=breaker_only)
    rev2 = new_revision(ecs, "registry.example.com/api:bad")
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=rev2)

    wait_for(ecs, lambda s: s["deployments"][0]["rolloutState"] == "FAILED")
    time.sleep(0.4)  # longer than a rollback would take: nothing else may happen
    service = describe(ecs)
    primary, old = service["deployments"]
    assert (primary["status"], primary["rolloutState"], primary["taskDefinition"]) == (
        "PRIMARY",
        "FAILED",
        rev2,
    )
    assert (old["status"], old["taskDefinition"], old["runningCount"]) == ("ACTIVE", rev1, 2)
    assert service["taskDefinition"] == rev2


def test_a_bad_image_without_circuit_breaker_keeps_trying(aws: AwsEmulator) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.3, failure_s=0.2, bad_images=("*:bad*",)))
    seed(aws, circuit_breaker=False)
    ecs = ecs_client()
    rev2 = new_revision(ecs, "registry.example.com/api:bad")
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=rev2)

    time.sleep(0.3)
    first = describe(ecs)["deployments"][0]
    time.sleep(0.2)
    later = describe(ecs)["deployments"][0]
    assert (later["rolloutState"], later["runningCount"]) == ("IN_PROGRESS", 0)
    assert 0 < first["failedTasks"] < later["failedTasks"]


def test_an_update_back_to_an_older_revision_is_a_normal_deployment(aws: AwsEmulator) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=0.2))
    rev1 = seed(aws)
    ecs = ecs_client()
    rev2 = new_revision(ecs, "registry.example.com/api:2.0")
    ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=rev2)
    wait_for(ecs, lambda s: len(s["deployments"]) == 1)

    back = ecs.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=rev1)["service"]
    assert [d["taskDefinition"] for d in back["deployments"]] == [rev1, rev2]
    service = wait_for(ecs, lambda s: len(s["deployments"]) == 1)
    assert (service["deployments"][0]["rolloutState"], service["taskDefinition"]) == ("COMPLETED", rev1)


def test_force_new_deployment_starts_a_deployment_of_the_same_revision(aws: AwsEmulator) -> None:
    rev1 = seed(aws)
    ecs = ecs_client()
    updated = ecs.update_service(cluster=CLUSTER, service=SERVICE, forceNewDeployment=True)["service"]
    assert [(d["status"], d["taskDefinition"]) for d in updated["deployments"]] == [
        ("PRIMARY", rev1),
        ("ACTIVE", rev1),
    ]


def test_list_tasks_filters_by_service(aws: AwsEmulator) -> None:
    seed_services(
        aws.endpoint_url,
        "us-east-1",
        [(CLUSTER, "api", {"app": "api:1"}), (CLUSTER, "web", {"app": "web:1"})],
        session=SESSION,
    )
    ecs = ecs_client()
    assert len(ecs.list_tasks(cluster=CLUSTER)["taskArns"]) == 4
    assert len(ecs.list_tasks(cluster=CLUSTER, serviceName="web")["taskArns"]) == 2


def test_throttling_follows_ecs_buckets_and_botocore_retries_through_it(aws: AwsEmulator) -> None:
    # ECS's burst of 20; a refill of one token per 100 s, so a slow machine's 25 calls still
    # meet an empty bucket (at ECS's 1/s, calls taking over a second would earn another "ok").
    aws.set_throttling(True, {**DEFAULT_ECS_BUCKETS, "RegisterTaskDefinition": (20, 0.01)})
    ecs = ecs_client(NO_RETRIES)
    outcomes: list[str] = []
    for i in range(25):
        try:
            ecs.register_task_definition(family=f"burst-{i}", containerDefinitions=CONTAINER)
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    assert outcomes == ["ok"] * 20 + ["ThrottlingException"] * 5
    assert aws.throttled_counts() == {"RegisterTaskDefinition": 5}

    # a faster refill than ECS's 1/s keeps the test short; the retries are what is tested
    aws.set_throttling(True, {**DEFAULT_ECS_BUCKETS, "RegisterTaskDefinition": (20, 5.0)})
    before = aws.request_counts()["RegisterTaskDefinition"]
    ecs = ecs_client(Config(retries={"mode": "standard", "max_attempts": 10}))
    for i in range(25):
        ecs.register_task_definition(family=f"retried-{i}", containerDefinitions=CONTAINER)
    assert aws.request_counts()["RegisterTaskDefinition"] - before > 25  # some were throttled


def test_an_injected_fault_fails_the_next_call_only(aws: AwsEmulator) -> None:
    ecs = ecs_client(NO_RETRIES)
    aws.inject_fault("ListClusters", status=500)
    with pytest.raises(ClientError) as caught:
        ecs.list_clusters()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert caught.value.response["Error"]["Code"] == "InternalFailure"
    assert ecs.list_clusters()["clusterArns"] == []
    assert aws.request_counts()["ListClusters"] == 2


def test_reset_forgets_resources_counts_and_faults(aws: AwsEmulator) -> None:
    seed(aws)
    aws.inject_fault("ListClusters", count=3)
    aws.reset()
    assert aws.request_counts() == {}
    assert ecs_client(NO_RETRIES).list_clusters()["clusterArns"] == []
