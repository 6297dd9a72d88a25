"""ECS's deployment strategies end to end: the worker follows the service deployment its
UpdateService started (ROLLING, BLUE_GREEN, LINEAR, CANARY) against the emulator and a real Redis."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import boto3
import pytest
from redis.asyncio import Redis

from orchestrator.sandbox import AwsEmulator, RolloutScenario
from tests.test_engine import BAD_APP, CLUSTER, REGION, ecs, events_of, job, service_task_definition
from worker.contract import DeployJob, DoneWhen, Phase, WorkerEvent
from worker.engine import Deployer
from worker.target import Target

STRATEGIES = ("ROLLING", "BLUE_GREEN", "LINEAR", "CANARY")
HOOK = "arn:aws:lambda:us-east-1:123456789012:function:smoke-check"
# A hook stage each strategy has.
HOOK_STAGE = {
    "ROLLING": "POST_SCALE_UP",
    "BLUE_GREEN": "POST_TEST_TRAFFIC_SHIFT",
    "LINEAR": "POST_TEST_TRAFFIC_SHIFT",
    "CANARY": "POST_TEST_TRAFFIC_SHIFT",
}


def configuration(strategy: str, bake_minutes: int = 1, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "strategy": strategy,
        "bakeTimeInMinutes": bake_minutes,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }
    if strategy == "LINEAR":
        config["linearConfiguration"] = {"stepPercent": 50.0, "stepBakeTimeInMinutes": 1}
    if strategy == "CANARY":
        config["canaryConfiguration"] = {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 1}
    return config | extra


def seed_service(aws: AwsEmulator, strategy: str, *, service: str = "api", **extra: Any) -> str:
    client = ecs(aws)
    client.create_cluster(clusterName=CLUSTER)
    arn: str = client.register_task_definition(
        family=service,
        containerDefinitions=[
            {"name": "app", "image": "registry.example/api:1.0", "essential": True, "memory": 256}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    client.create_service(
        cluster=CLUSTER,
        serviceName=service,
        taskDefinition=arn,
        desiredCount=2,
        launchType="FARGATE",
        deploymentConfiguration=configuration(strategy, **extra),
    )
    return arn


def new_job(service: str = "api", image: str = "registry.example/api:2.0", **options: Any) -> DeployJob:
    return job(service, image=image, **options)


def scenario(**changes: Any) -> RolloutScenario:
    """Rollouts of 0.4 s, a simulated minute of 0.4 s: a bake of 1 minute is over in 0.4 s."""
    return RolloutScenario(**({"rollout_s": 0.4, "minute_s": 0.4, "stage_s": 0.05} | changes))


def stages(events: list[WorkerEvent]) -> list[str]:
    seen: list[str] = []
    for event in events:
        stage = event.details.lifecycle_stage
        if stage and (not seen or seen[-1] != stage):
            seen.append(stage)
    return seen


def service_deployment_status(aws: AwsEmulator, arn: str) -> str:
    client = boto3.client("ecs", region_name=REGION, endpoint_url=aws.endpoint_url)
    return str(
        client.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0]["status"]
    )


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_success_waits_through_the_bake(
    aws: AwsEmulator, deployer: Deployer, redis: Redis, strategy: str
) -> None:
    aws.set_scenario(scenario())
    seed_service(aws, strategy, bake_minutes=3)
    deploy_job = new_job()
    assert await deployer.run(deploy_job) is Phase.SUCCEEDED
    events = await events_of(redis, deploy_job)
    last = events[-1]
    assert last.details.following == "service_deployment"
    assert last.details.strategy == strategy and last.details.service_deployment_status == "SUCCESSFUL"
    assert service_deployment_status(aws, str(last.details.service_deployment_arn)) == "SUCCESSFUL"
    # rolloutState said COMPLETED before the bake; the job went on following through it
    assert "BAKE_TIME" in stages(events)
    assert any(e.details.bake_left_s is not None for e in events)
    assert service_task_definition(aws).endswith(":2")


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_failure_rolled_back_by_ecs(
    aws: AwsEmulator, deployer: Deployer, redis: Redis, strategy: str
) -> None:
    aws.set_scenario(scenario(bad_images=("*:bad-*",)))
    old = seed_service(aws, strategy)
    deploy_job = new_job(image=BAD_APP)
    assert await deployer.run(deploy_job) is Phase.ROLLED_BACK
    last = (await events_of(redis, deploy_job))[-1]
    assert last.details.service_deployment_status == "ROLLBACK_SUCCESSFUL"
    assert "ECS rolled back" in last.message
    assert service_task_definition(aws) == old


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_failure_ecs_only_stopped_is_rolled_back_by_us(
    aws: AwsEmulator, deployer: Deployer, redis: Redis, strategy: str
) -> None:
    aws.set_scenario(scenario(bad_images=("*:bad-*",)))
    old = seed_service(aws, strategy, deploymentCircuitBreaker={"enable": True, "rollback": False})
    deploy_job = new_job(image=BAD_APP)
    assert await deployer.run(deploy_job) is Phase.ROLLED_BACK
    events = await events_of(redis, deploy_job)
    assert Phase.ROLLING_BACK in [e.phase for e in events]
    assert "ECS stopped the service deployment" in events[-1].message
    assert f"rolled back to {old}" in events[-1].message
    assert service_task_definition(aws) == old


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_our_rollback_by_update_service_is_back_only_once_its_own_bake_is_over(
    aws: AwsEmulator, deployer: Deployer, redis: Redis, strategy: str
) -> None:
    """Our UpdateService back is a deployment of its own, with the service's strategy and bake:
    "rolled back" once ECS's service deployment of it succeeded, not when its tasks run."""
    aws.set_scenario(scenario(bad_images=("*:bad-*",), minute_s=1.5))
    old = seed_service(aws, strategy, deploymentCircuitBreaker={"enable": True, "rollback": False})
    deploy_job = new_job(image=BAD_APP)
    assert await deployer.run(deploy_job) is Phase.ROLLED_BACK
    listed = ecs(aws).list_service_deployments(cluster=CLUSTER, service="api")["serviceDeployments"]
    newest = max(listed, key=lambda sd: sd["createdAt"])
    assert newest["status"] == "SUCCESSFUL", newest  # ours, back on the old revision, baked
    assert f"rolled back to {old}" in (await events_of(redis, deploy_job))[-1].message


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_timeout_during_the_bake_is_rolled_back_by_stopping_the_deployment(
    aws: AwsEmulator, deployer: Deployer, redis: Redis, strategy: str
) -> None:
    aws.set_scenario(scenario(minute_s=60.0))  # a bake of a real minute: the deadline comes first
    # no holds between traffic steps: the bake is what the deadline meets
    no_holds = {
        "linearConfiguration": {"stepPercent": 50.0, "stepBakeTimeInMinutes": 0},
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 0},
    }
    extra: dict[str, Any] = {k: v for k, v in no_holds.items() if k.startswith(strategy.lower())}
    old = seed_service(aws, strategy, bake_minutes=1, **extra)
    deploy_job = new_job(timeout_s=3.0)
    assert await deployer.run(deploy_job) is Phase.TIMED_OUT
    events = await events_of(redis, deploy_job)
    assert "BAKE_TIME" in stages(events)
    last = events[-1]
    assert "by ECS (StopServiceDeployment)" in last.message and f"rolled back to {old}" in last.message
    assert service_task_definition(aws) == old
    assert service_deployment_status(aws, str(last.details.service_deployment_arn)) == "ROLLBACK_SUCCESSFUL"


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_hook_holding_the_deployment_is_neither_silent_nor_lost(
    aws: AwsEmulator, deployer: Deployer, redis: Redis, strategy: str
) -> None:
    aws.set_scenario(scenario(hook_hold_s=None))
    hooks = [
        {
            "hookTargetArn": HOOK,
            "roleArn": "arn:aws:iam::123456789012:role/hooks",
            "lifecycleStages": [HOOK_STAGE[strategy]],
        }
    ]
    seed_service(aws, strategy, bake_minutes=0, lifecycleHooks=hooks)
    deploy_job = new_job(heartbeat_s=1.5)
    outcome: list[Phase | None] = []

    async def deploy() -> None:
        outcome.append(await deployer.run(deploy_job))

    async with anyio.create_task_group() as tg:
        tg.start_soon(deploy)
        held: list[WorkerEvent] = []
        with anyio.fail_after(15):
            while True:  # past one heartbeat of holding, with events all along
                held = [e for e in await events_of(redis, deploy_job) if e.details.hook == HOOK]
                if len(held) >= 3 and held[-1].ts - held[0].ts >= 1.5:
                    break
                await anyio.sleep(0.2)
        assert not outcome  # still following
        assert all(e.phase is Phase.IN_PROGRESS for e in held)
        assert "waiting for hook smoke-check for" in held[-1].message
        gaps = [b.ts - a.ts for a, b in itertools.pairwise(held)]
        assert max(gaps) <= 1.5  # a heartbeat at least every heartbeat/3, with slack
        aws.simulator.release_hooks(CLUSTER, "api")
    assert outcome == [Phase.SUCCEEDED]


async def test_stop_following_once_traffic_has_shifted(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    aws.set_scenario(scenario(minute_s=60.0))
    seed_service(aws, "BLUE_GREEN", bake_minutes=30)
    deploy_job = new_job(done_when=DoneWhen.TRAFFIC_SHIFTED)
    assert await deployer.run(deploy_job) is Phase.BAKING
    last = (await events_of(redis, deploy_job))[-1]
    assert "ECS still bakes for another" in last.message and "may yet roll back" in last.message
    # ECS goes on: the service deployment is still baking when the job ends
    assert service_deployment_status(aws, str(last.details.service_deployment_arn)) == "IN_PROGRESS"
    assert last.details.lifecycle_stage == "BAKE_TIME"


async def test_a_revert_of_a_baking_deployment_stops_it(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    aws.set_scenario(scenario(minute_s=60.0))
    old = seed_service(aws, "BLUE_GREEN", bake_minutes=30)
    assert await deployer.run(new_job(done_when=DoneWhen.TRAFFIC_SHIFTED)) is Phase.BAKING
    revert = DeployJob(
        run_id="run-engine-revert",
        job_id="run-engine-revert:api",
        target=Target(cluster=CLUSTER, service="api"),
        revision=old,
        options=new_job().options,
    )
    assert await deployer.run(revert) is Phase.SUCCEEDED
    last = (await events_of(redis, revert))[-1]
    assert "by ECS (StopServiceDeployment)" in last.message
    assert service_task_definition(aws) == old


async def test_a_default_timeout_holds_the_configured_bake(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    aws.set_scenario(scenario(minute_s=2.0))  # a 2-minute bake lasts 4 s here, the timeout is 2 s
    seed_service(aws, "BLUE_GREEN", bake_minutes=2)
    assert await deployer.run(new_job(timeout_s=2.0, extend_for_bake=True)) is Phase.SUCCEEDED


async def test_without_the_service_deployments_api_rollout_state_is_followed_and_said(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    aws.set_scenario(scenario(service_deployments_api=False))
    seed_service(aws, "ROLLING", bake_minutes=0)
    deploy_job = new_job()
    assert await deployer.run(deploy_job) is Phase.SUCCEEDED
    events = await events_of(redis, deploy_job)
    said = [e.message for e in events if "rolloutState" in e.message]
    assert said and "service-deployments API is not available" in said[0]
    assert events[-1].details.following == "rollout_state"


async def test_an_alarm_during_the_bake_makes_ecs_roll_back_and_is_named(
    aws: AwsEmulator, deployer: Deployer, redis: Redis
) -> None:
    aws.set_scenario(scenario(minute_s=60.0))
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=aws.endpoint_url)
    cloudwatch.put_metric_alarm(
        AlarmName="api-5xx",
        Namespace="shop",
        MetricName="5xx",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    alarms = {"alarmNames": ["api-5xx"], "enable": True, "rollback": True}
    old = seed_service(aws, "BLUE_GREEN", bake_minutes=30, alarms=alarms)
    deploy_job = new_job()
    outcome: list[Phase | None] = []

    async def deploy() -> None:
        outcome.append(await deployer.run(deploy_job))

    async with anyio.create_task_group() as tg:
        tg.start_soon(deploy)
        with anyio.fail_after(10):
            while True:
                if "BAKE_TIME" in stages(await events_of(redis, deploy_job)):
                    break
                await anyio.sleep(0.1)
        cloudwatch.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="5xx above 1")
    assert outcome == [Phase.ROLLED_BACK]
    last = (await events_of(redis, deploy_job))[-1]
    assert "ECS rolled back" in last.message and "api-5xx" in last.message
    assert service_task_definition(aws) == old
