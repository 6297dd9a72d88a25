"""`--dry-run`: read AWS, print per target the image it runs now and the one it would get.

Read-only by construction: only describe_* calls are made.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from botocore.exceptions import ClientError

from orchestrator.plan import PlannedJob
from worker.aws import ecs_client
from worker.taskdef import current_images

if TYPE_CHECKING:
    from types_aiobotocore_ecs import ECSClient

__all__ = ["describe_plan", "dry_run"]

MAX_PARALLEL_READS = 10


async def _describe_job(ecs: ECSClient, planned: PlannedJob) -> list[tuple[str, bool]]:
    """(line, fine) per target: `fine` is False when the deploy would be refused."""
    job = planned.job
    try:
        response = await ecs.describe_services(cluster=job.cluster, services=[job.service])
        services = [s for s in response.get("services", []) if s.get("status") == "ACTIVE"]
        if not services:
            return [(f"{job.cluster}/{job.service}: service not found", False)]
        arn = services[0]["taskDefinition"]
        described = await ecs.describe_task_definition(taskDefinition=arn)
    except ClientError as exc:
        return [(f"{job.cluster}/{job.service}: {exc.response.get('Error', {}).get('Message', exc)}", False)]
    images = current_images(described["taskDefinition"])
    lines: list[tuple[str, bool]] = []
    for target in planned.targets:
        now = images.get(target.container)
        label = f"{job.cluster}/{job.service}/{target.container}"
        if now is None:
            lines.append(
                (f"{label}: no such container in {arn.rsplit('/', 1)[-1]} (has: {', '.join(images)})", False)
            )
        elif now == target.image:
            lines.append((f"{label}: {now} (unchanged, would skip)", True))
        else:
            lines.append((f"{label}: {now} -> {target.image}", True))
    return lines


async def describe_plan(
    planned: Sequence[PlannedJob], region: str | None, profile: str | None
) -> list[tuple[str, bool]]:
    """One (line, fine) per target, in plan order."""
    results: dict[int, list[tuple[str, bool]]] = {}
    limit = anyio.CapacityLimiter(MAX_PARALLEL_READS)
    async with ecs_client(region, profile) as ecs:

        async def one(index: int, job: PlannedJob) -> None:
            async with limit:
                results[index] = await _describe_job(ecs, job)

        async with anyio.create_task_group() as tg:
            for index, job in enumerate(planned):
                tg.start_soon(one, index, job)
    return [line for index in sorted(results) for line in results[index]]


def dry_run(planned: Sequence[PlannedJob], *, region: str | None, profile: str | None) -> int:
    lines = anyio.run(describe_plan, planned, region, profile)
    for line, _ in lines:
        print(line)
    print("dry run: nothing was changed", file=sys.stderr)
    return 0 if all(fine for _, fine in lines) else 1
