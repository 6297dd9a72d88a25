"""The deploy engine end to end against the moto server + rollout simulator and a real Redis."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import anyio
import boto3
import pytest
from redis.asyncio import Redis

from orchestrator.feed import read_stream
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from tests import fault_tally
from worker.aws import AwsAccess
from worker.budget import ApiBudget
from worker.contract import ContainerChange, DeployJob, JobOptions, Phase, WorkerEvent
from worker.engine import Deployer
from worker.ledger import JobLedger
from worker.publisher import EventPublisher
from worker.target import Target
from worker.taskdef import READ_ONLY_FIELDS

REGION = "us-east-1"
CLUSTER = "prod"
OLD_APP = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:1.0"
NEW_APP = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:2.0"
BAD_APP = "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:bad-1"
FAST = JobOptions(timeout_s=20, poll_min_s=0.1, poll_max_s=0.3, heartbeat_s=3)

RICH_TASK_DEFINITION: dict[str, Any] = {
    "family": "api",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "512",
    "memory": "1024",
    "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
    "taskRoleArn": "arn:aws:iam::123456789012:role/task",
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    "ephemeralStorage": {"sizeInGiB": 30},
    "volumes": [{"name": "scratch", "host": {}}],
    "proxyConfiguration": {
        "type": "APPMESH",
        "containerName": "envoy",
        "properties": [
            {"name": "IgnoredUID", "value": "1337"},
            {"name": "ProxyIngressPort", "value": "15000"},
        ],
    },
    "containerDefinitions": [
        {
            "name": "app",
            "image": OLD_APP,
            "essential": True,
            "environment": [{"name": "MODE", "value": "prod"}],
            "secrets": [
                {"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db"}
            ],
            "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/scratch"}],
            "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
            "healthCheck": {
                "command": ["CMD-SHELL", "curl -f localhost:8080/health"],
                "interval": 10,
                "retries": 3,
            },
            "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"}],
        },
        {
            "name": "envoy",
            "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29",
            "essential": True,
            "user": "1337",
        },
        {
            "name": "log-router",
            "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32",
            "essential": False,
        },
    ],
    "tags": [{"key": "team", "value": "payments"}, {"key": "cost-center", "value": "42"}],
}


def ecs(aws: AwsEmulator) -> Any:
    return boto3.client("ecs", region_name=REGION, endpoint_url=aws.endpoint_url)


def seed(
    aws: AwsEmulator,
    service: str = "api",
    *,
    circuit_breaker: dict[str, bool] | None = None,
    controller: str = "ECS",
    task_definition: dict[str, Any] | None = None,
) -> str:
    client = ecs(aws)
    client.create_cluster(clusterName=CLUSTER)
    definition = copy.deepcopy(task_definition or RICH_TASK_DEFINITION)
    definition["family"] = service
    arn: str = client.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    client.create_service(
        cluster=CLUSTER,
        serviceName=service,
        taskDefinition=arn,
        desiredCount=2,
        launchType="FARGATE",
        deploymentController={"type": controller},
        deploymentConfiguration={
            "deploymentCircuitBreaker": circuit_breaker or {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
        },
    )
    return arn


def job(service: str = "api", image: str = NEW_APP, container: str = "app", **options: Any) -> DeployJob:
    return DeployJob(
        run_id="run-engine",
        job_id=f"run-engine:{service}",
        target=Target(cluster=CLUSTER, service=service),
        changes=(ContainerChange(container=container, image=image),),
        options=FAST.model_copy(update=options),
    )


async def events_of(redis: Redis, deploy_job: DeployJob) -> list[WorkerEvent]:
    return [e for _, e in await read_stream(redis, deploy_job.run_id) if e.job_id == deploy_job.job_id]


def revisions(aws: AwsEmulator, family: str = "api") -> list[str]:
    return list(ecs(aws).list_task_definitions(familyPrefix=family)["taskDefinitionArns"])


def service_task_definition(aws: AwsEmulator, service: str = "api") -> str:
    return str(
        ecs(aws).describe_services(cluster=CLUSTER, services=[service])["services"][0]["taskDefinition"]
    )


def comparable(arn: str, aws: AwsEmulator) -> tuple[dict[str, Any], list[dict[str, str]]]:
    described = ecs(aws).describe_task_definition(taskDefinition=arn, include=["TAGS"])
    body = {k: v for k, v in described["taskDefinition"].items() if k not in READ_ONLY_FIELDS}
    return body, described.get("tags", [])


async def test_deploy_changes_only_the_named_image_and_keeps_tags(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    old_arn = seed(aws)
    deploy_job = job()
    assert await deployer.run(deploy_job) is Phase.SUCCEEDED

    new_arn = service_task_definition(aws)
    assert new_arn != old_arn and revisions(aws) == [old_arn, new_arn]
    old_body, old_tags = comparable(old_arn, aws)
    new_body, new_tags = comparable(new_arn, aws)
    assert new_tags == old_tags
    expected = copy.deepcopy(old_body)
    expected["containerDefinitions"][0]["image"] = NEW_APP
    assert new_body == expected

    events = await events_of(redis, deploy_job)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    phases = [e.phase for e in events]
    assert phases[:3] == [Phase.STARTED, Phase.REGISTERED, Phase.UPDATED]
    assert phases[-1] is Phase.SUCCEEDED and Phase.IN_PROGRESS in phases
    assert events[-1].details.task_definition_arn == new_arn


async def test_already_on_target_image_is_skipped(aws: AwsEmulator, deployer: Deployer, redis: Redis) -> None:
    old_arn = seed(aws)
    assert await deployer.run(job(image=OLD_APP)) is Phase.SKIPPED
    assert revisions(aws) == [old_arn]
    [*_, last] = await events_of(redis, job())
    assert last.details.task_definition_arn == old_arn


@pytest.mark.parametrize(
    ("breaker", "rollback", "expected", "ends_on_old"),
    [
        pytest.param(
            {"enable": True, "rollback": True}, True, Phase.ROLLED_BACK, True, id="circuit-breaker-rolls-back"
        ),
        pytest.param({"enable": True, "rollback": False}, True, Phase.ROLLED_BACK, True, id="we-roll-back"),
        pytest.param({"enable": True, "rollback": False}, False, Phase.FAILED, False, id="rollback-off"),
    ],
)
async def test_bad_image_fails_and_is_rolled_back(
    aws: AwsEmulator,
    deployer: Deployer,
    redis: Redis,
    breaker: dict[str, bool],
    rollback: bool,
    expected: Phase,
    ends_on_old: bool,
) -> None:
    old_arn = seed(aws, circuit_breaker=breaker)
    deploy_job = job(image=BAD_APP, rollback=rollback)
    assert await deployer.run(deploy_job) is expected
    assert (service_task_definition(aws) == old_arn) is ends_on_old
    [*_, last] = await events_of(redis, deploy_job)
    assert last.phase is expected and last.message


async def test_deadline_passed_is_timed_out_and_rolled_back(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    old_arn = seed(aws, circuit_breaker={"enable": False, "rollback": False})
    deploy_job = job(image=BAD_APP, timeout_s=1.5)
    assert await deployer.run(deploy_job) is Phase.TIMED_OUT
    assert service_task_definition(aws) == old_arn
    events = await events_of(redis, deploy_job)
    assert Phase.ROLLING_BACK in [e.phase for e in events]
    assert "rolled back to" in events[-1].message


@pytest.mark.parametrize(
    ("make_job", "words"),
    [
        pytest.param(lambda: job(container="wrk"), ["wrk", "app, envoy, log-router"], id="unknown-container"),
        pytest.param(lambda: job(service="nope"), ["nope", "not found"], id="missing-service"),
        pytest.param(
            lambda: job().model_copy(update={"target": Target(cluster="nowhere", service="api")}),
            ["nowhere", "not found"],
            id="missing-cluster",
        ),
    ],
)
async def test_refused_jobs_change_nothing(
    aws: AwsEmulator, deployer: Deployer, redis: Redis, make_job: Any, words: list[str]
) -> None:
    old_arn = seed(aws)
    deploy_job: DeployJob = make_job()
    assert await deployer.run(deploy_job) is Phase.FAILED
    assert revisions(aws) == [old_arn] and service_task_definition(aws) == old_arn
    [*_, last] = await events_of(redis, deploy_job)
    assert all(word in last.message for word in words), last.message
    assert "nothing changed" in last.message


async def test_code_deploy_controller_is_refused(aws: AwsEmulator, deployer: Deployer, redis: Redis) -> None:
    old_arn = seed(aws, controller="CODE_DEPLOY")
    assert await deployer.run(job()) is Phase.FAILED
    assert revisions(aws) == [old_arn]
    [*_, last] = await events_of(redis, job())
    assert "CODE_DEPLOY" in last.message


async def deploy_all(
    redis: Redis, services: Sequence[str], budget: ApiBudget | None = None
) -> dict[str, Phase | None]:
    """Every service's job at once, each through one shared deployer: how each ended."""
    async with AwsAccess().ecs(REGION) as client:
        deployer = Deployer(client, JobLedger(redis), EventPublisher(redis), budget=budget)
        outcomes: dict[str, Phase | None] = {}

        async def one(name: str) -> None:
            outcomes[name] = await deployer.run(job(name, timeout_s=60))

        async with anyio.create_task_group() as tg:
            for name in services:
                tg.start_soon(one, name)
    return outcomes


async def test_twenty_services_at_once_ride_out_ecs_throttling(redis: Redis, aws: AwsEmulator) -> None:
    services = [f"svc{i:02d}" for i in range(20)]
    for name in services:
        seed(aws, name)
    # Buckets smaller than ECS's so that 20 services overflow them as 200 would overflow ECS's.
    aws.set_throttling(
        True,
        buckets={
            "RegisterTaskDefinition": (5, 4.0),
            "UpdateService": (5, 4.0),
            "DescribeServices": (10, 20.0),
        },
    )
    outcomes = await deploy_all(redis, services)
    assert outcomes == dict.fromkeys(services, Phase.SUCCEEDED)
    assert aws.throttled_counts(), "the emulated buckets never throttled: the test proves nothing"
    fault_tally.record(
        "ThrottlingException bursts, 20 workers",
        faults=sum(aws.throttled_counts().values()),
        jobs=len(services),
        duplicate_registrations=fault_tally.duplicate_registrations(services, REGION),
    )


async def test_duplicate_delivery_registers_one_revision(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    old_arn = seed(aws)
    deploy_job = job()
    outcomes: list[Phase | None] = []

    async def deliver() -> None:
        outcomes.append(await deployer.run(deploy_job))

    async with anyio.create_task_group() as tg:
        tg.start_soon(deliver)
        tg.start_soon(deliver)
    assert sorted(outcomes, key=str) == sorted([Phase.SUCCEEDED, None], key=str)
    assert len(revisions(aws)) == 2 and old_arn in revisions(aws)
    assert aws.request_counts().get("UpdateService") == 1
    # A third delivery after the end reports the duplicate and changes nothing.
    assert await deployer.run(deploy_job) is Phase.SUCCEEDED
    assert len(revisions(aws)) == 2 and aws.request_counts().get("UpdateService") == 1
    phases = [e.phase for e in await events_of(redis, deploy_job)]
    assert phases.count(Phase.DUPLICATE) == 2 and phases.count(Phase.SUCCEEDED) == 1
    fault_tally.record(
        "the same job delivered three times",
        faults=2,
        jobs=1,
        duplicate_registrations=fault_tally.duplicate_registrations(["api"], REGION),
    )


async def test_worker_killed_mid_rollout_is_resumed_without_a_second_revision(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=3.0))
    seed(aws)
    deploy_job = job(heartbeat_s=0.6)
    with anyio.move_on_after(1.0):  # the worker dies after update_service, mid-rollout
        await deployer.run(deploy_job)
    assert [e.phase for e in await events_of(redis, deploy_job)][-1] is Phase.IN_PROGRESS
    await anyio.sleep(1.3)  # its lease runs out; SQS redelivers
    assert await deployer.run(deploy_job) is Phase.SUCCEEDED
    assert len(revisions(aws)) == 2 and aws.request_counts().get("UpdateService") == 1
    resumed = [e for e in await events_of(redis, deploy_job) if e.message.startswith("resuming")]
    assert len(resumed) == 1
    fault_tally.record(
        "worker killed mid-rollout, redelivered",
        faults=1,
        jobs=1,
        duplicate_registrations=fault_tally.duplicate_registrations(["api"], REGION),
    )
