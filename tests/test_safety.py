"""Worker-side safety: the registry allow-list, old-revision clean-up and the shared throttling budget.

Against the moto server + rollout simulator and a real Redis, like tests/test_engine.py.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from orchestrator.sandbox import AwsEmulator
from tests.test_engine import REGION, deploy_all, ecs, events_of, job, seed, service_task_definition
from worker.aws import AwsAccess
from worker.budget import ApiBudget, BucketSize
from worker.contract import Phase
from worker.engine import Deployer
from worker.ledger import JobLedger
from worker.publisher import EventPublisher
from worker.registries import refused_images
from worker.revisions import revisions_to_deregister

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@pytest.mark.parametrize(
    ("images", "allowed", "refused"),
    [
        ([f"{ECR}/api:2", "nginx:1.27"], [], []),  # no list: everything is allowed
        ([f"{ECR}/api:2", "nginx:1.27"], ["*.dkr.ecr.*.amazonaws.com"], ["nginx:1.27"]),
        (["nginx:1.27", "docker.io/library/nginx:1"], ["docker.io"], []),  # no registry = Docker Hub
        (["ghcr.io/acme/api:1", "GHCR.IO/acme/web:2"], ["ghcr.io"], []),  # hosts are case-insensitive
        ([f"{ECR}.evil.com/api:2"], ["*.dkr.ecr.*.amazonaws.com"], [f"{ECR}.evil.com/api:2"]),
        (["localhost:5000/api:1"], ["localhost:5000"], []),
    ],
)
def test_registry_allow_list(images: list[str], allowed: list[str], refused: list[str]) -> None:
    assert refused_images(images, allowed) == refused


def arn(family: str, revision: int) -> str:
    return f"arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:{revision}"


@pytest.mark.parametrize(
    ("revisions", "keep", "protected", "expected"),
    [
        ([1, 2, 3, 4, 5], 2, [5, 4], [1, 2, 3]),
        ([1, 2, 3, 4, 5], 2, [5, 1], [2, 3]),  # the rollback target stays, however old
        ([3, 5, 4], 3, [5, 4], []),
        ([7], 1, [7], []),
        ([1, 2, 10, 9], 1, [10, 9], [1, 2]),  # by revision number, not by text
    ],
)
def test_revisions_to_deregister(
    revisions: list[int], keep: int, protected: list[int], expected: list[int]
) -> None:
    other_family = [arn("api-admin", 1), arn("api-admin", 2)]  # familyPrefix "api" lists these too
    assert revisions_to_deregister(
        [arn("api", r) for r in revisions] + other_family, "api", keep, [arn("api", r) for r in protected]
    ) == [arn("api", r) for r in expected]


async def test_worker_refuses_an_image_from_a_registry_not_allowed(aws: AwsEmulator, redis: Redis) -> None:
    before = seed(aws)
    bad = job(image="docker.io/someone/api:2.0")
    async with AwsAccess().ecs(REGION) as client:
        deployer = Deployer(
            client, JobLedger(redis), EventPublisher(redis), allowed_registries=["*.dkr.ecr.*.amazonaws.com"]
        )
        assert await deployer.run(bad) is Phase.FAILED

    last = (await events_of(redis, bad))[-1]
    assert "docker.io/someone/api:2.0 (registry docker.io) not in this worker's registry allow-list" in (
        last.message
    )
    assert "nothing changed" in last.message
    assert aws.request_counts().get("RegisterTaskDefinition") == 1  # the seeding's only
    assert service_task_definition(aws) == before


def active_revisions(aws: AwsEmulator, family: str) -> list[int]:
    arns = ecs(aws).list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
    return sorted(int(a.rsplit(":", 1)[1]) for a in arns if a.rsplit("/", 1)[1].rsplit(":", 1)[0] == family)


async def test_success_deregisters_old_revisions_but_not_the_rollback_target(
    aws: AwsEmulator, redis: Redis
) -> None:
    first = seed(aws)  # api:1, the revision the service runs
    client = ecs(aws)
    containers = client.describe_task_definition(taskDefinition=first)["taskDefinition"][
        "containerDefinitions"
    ]
    for family in ("api", "api", "api", "api-admin"):  # api:2..4 never deployed, and another family
        client.register_task_definition(
            family=family,
            containerDefinitions=containers,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="512",
            memory="1024",
        )
    deploy = job(keep_revisions=2)
    async with AwsAccess().ecs(REGION) as ecs_api:
        assert await Deployer.on_redis(ecs_api, redis, scope=f"-/{REGION}").run(deploy) is Phase.SUCCEEDED

    # api:5 is live; the newest two are 5 and 4; api:1 is what a rollback would put back.
    assert active_revisions(aws, "api") == [1, 4, 5]
    assert active_revisions(aws, "api-admin") == [1]
    last = (await events_of(redis, deploy))[-1]
    assert last.message.endswith("deregistered 2 old revisions of api (2, 3)")


async def test_no_revision_is_deregistered_unless_asked(aws: AwsEmulator, redis: Redis) -> None:
    seed(aws)
    async with AwsAccess().ecs(REGION) as ecs_api:
        assert await Deployer.on_redis(ecs_api, redis, scope=f"-/{REGION}").run(job()) is Phase.SUCCEEDED
    assert active_revisions(aws, "api") == [1, 2]
    assert aws.request_counts().get("DeregisterTaskDefinition") is None


async def test_budget_reserves_turns_at_the_bucket_rate(redis: Redis) -> None:
    budget = ApiBudget(redis, "test-region", {"RegisterTaskDefinition": BucketSize(burst=5, per_second=10)})
    waits = [await budget.reserve("RegisterTaskDefinition") for _ in range(8)]

    assert waits[:5] == [0.0] * 5  # the burst
    # then one turn every 1/10 s, each counted from the previous reservation, first come first served
    assert [round(w, 1) for w in waits[5:]] == [0.1, 0.2, 0.3]
    other_region = ApiBudget(
        redis, "other-region", {"RegisterTaskDefinition": BucketSize(burst=1, per_second=1)}
    )
    assert await other_region.reserve("RegisterTaskDefinition") == 0.0  # a bucket per region
    assert await budget.reserve("DescribeClusters") == 0.0  # unmetered actions never wait


async def test_shared_budget_paces_parallel_workers_so_ecs_throttles_none(
    aws: AwsEmulator, redis: Redis
) -> None:
    services = [f"svc{i:02d}" for i in range(12)]
    for service in services:
        seed(aws, service)
    bucket = (3, 10.0)  # RegisterTaskDefinition: 3 at once, then 10 a second
    aws.set_throttling(True, {"RegisterTaskDefinition": bucket})

    assert set((await deploy_all(redis, services[:6])).values()) == {Phase.SUCCEEDED}
    unpaced = aws.throttled_counts().get("RegisterTaskDefinition", 0)
    aws.set_throttling(True, {"RegisterTaskDefinition": bucket})  # full buckets again
    sizes = {"RegisterTaskDefinition": BucketSize(burst=int(bucket[0]), per_second=bucket[1])}
    paced = await deploy_all(redis, services[6:], budget=ApiBudget(redis, REGION, sizes))
    assert set(paced.values()) == {Phase.SUCCEEDED}

    assert unpaced > 0  # without the budget, ECS refused some calls
    assert aws.throttled_counts().get("RegisterTaskDefinition", 0) == unpaced  # with it, none
