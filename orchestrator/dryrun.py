"""`--dry-run` and `plan`: read AWS, show per target what a deploy would change.

`--dry-run` prints the image each target runs now and the one it would get; `plan` adds the
task-definition diff a deploy would register (only image lines should appear) and, for images
in this account's ECR, the digest the tag resolves to. Read-only by construction: only
describe_* calls are made.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
from botocore.exceptions import ClientError

from orchestrator.plan import PlannedJob
from worker.aws import AwsAccess
from worker.images import parse_image
from worker.taskdef import build_registration, current_images, revision_diff

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient
    from types_aiobotocore_ecs import ECSClient

__all__ = ["describe_plan", "dry_run", "ecr_digest"]

MAX_PARALLEL_READS = 10


ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")


class _Clients:
    """ECS and ECR clients per region, made when first needed and closed with `stack`."""

    def __init__(self, stack: AsyncExitStack, aws: AwsAccess) -> None:
        self._stack = stack
        self._aws = aws
        self._made: dict[tuple[str, str | None], Any] = {}
        self._lock = anyio.Lock()

    async def _get(self, service: str, region: str | None) -> Any:
        async with self._lock:
            if (service, region) not in self._made:
                client = await self._stack.enter_async_context(self._aws.client(service, region))
                self._made[service, region] = client
            return self._made[service, region]

    async def ecs(self, region: str | None) -> ECSClient:
        client: ECSClient = await self._get("ecs", region)
        return client

    async def ecr(self, region: str) -> ECRClient:
        client: ECRClient = await self._get("ecr", region)
        return client


async def ecr_digest(clients: _Clients, image: str) -> tuple[str, bool] | None:
    """What ECR (in the registry's own region) says of `image`'s tag: (line, fine); None for
    an image not hosted in ECR."""
    ref = parse_image(image)
    host = ECR_HOST.match(ref.registry or "")
    if host is None or ref.tag is None:
        return None
    ecr = await clients.ecr(host["region"])
    try:
        described = await ecr.describe_images(
            registryId=host["account"], repositoryName=ref.repository, imageIds=[{"imageTag": ref.tag}]
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return f"ecr: {ref.repository}:{ref.tag} not found ({code})", False
    digest = described["imageDetails"][0].get("imageDigest", "?")
    return f"ecr: {ref.repository}:{ref.tag} is {digest}", True


def _diff_lines(described: Mapping[str, Any], todo: Mapping[str, str]) -> list[tuple[str, bool]]:
    request = build_registration(described, todo)
    return [(f"    {line}", True) for line in revision_diff(described, request)]


async def _describe_job(clients: _Clients, planned: PlannedJob, full: bool) -> list[tuple[str, bool]]:
    """(line, fine) per target, plus the diff and digests when `full` (`plan`): `fine` is
    False when the deploy would be refused."""
    target = planned.job.target
    ecs = await clients.ecs(target.region)
    try:
        response = await ecs.describe_services(cluster=target.cluster, services=[target.service])
        services = [s for s in response.get("services", []) if s.get("status") == "ACTIVE"]
        if not services:
            return [(f"{target}: service not found", False)]
        arn = services[0]["taskDefinition"]
        described = await ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    except ClientError as exc:
        return [(f"{target}: {exc.response.get('Error', {}).get('Message', exc)}", False)]
    images = current_images(described["taskDefinition"])
    lines: list[tuple[str, bool]] = []
    for change in planned.job.changes:
        now = images.get(change.container)
        label = f"{target.name}/{change.container}"
        if now is None:
            lines.append(
                (f"{label}: no such container in {arn.rsplit('/', 1)[-1]} (has: {', '.join(images)})", False)
            )
        elif now == change.image:
            lines.append((f"{label}: {now} (unchanged, would skip)", True))
        else:
            lines.append((f"{label}: {now} -> {change.image}", True))
        if full and (digest := await ecr_digest(clients, change.image)) is not None:
            lines.append((f"    {digest[0]}", digest[1]))
    if full and all(fine for _, fine in lines):
        todo = {c.container: c.image for c in planned.job.changes if images.get(c.container) != c.image}
        if todo:
            lines += _diff_lines(described, todo)
    return lines


async def describe_plan(
    planned: Sequence[PlannedJob], aws: AwsAccess, *, full: bool = False
) -> list[tuple[str, bool]]:
    """(line, fine) per target, in plan order; `full` adds diffs and ECR digests."""
    results: dict[int, list[tuple[str, bool]]] = {}
    limit = anyio.CapacityLimiter(MAX_PARALLEL_READS)
    async with AsyncExitStack() as stack:
        clients = _Clients(stack, aws)

        async def one(index: int, job: PlannedJob) -> None:
            async with limit:
                results[index] = await _describe_job(clients, job, full)

        async with anyio.create_task_group() as tg:
            for index, job in enumerate(planned):
                tg.start_soon(one, index, job)
    return [line for index in sorted(results) for line in results[index]]


def dry_run(planned: Sequence[PlannedJob], *, aws: AwsAccess, full: bool = False) -> int:
    lines = anyio.run(lambda: describe_plan(planned, aws, full=full))
    for line, _ in lines:
        print(line)
    print("dry run: nothing was changed", file=sys.stderr)
    return 0 if all(fine for _, fine in lines) else 1
