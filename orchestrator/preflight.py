"""Preflight: before anything changes, make sure every target of the plan can be deployed.

Read-only (describe_* calls only) and complete: every problem of every target is collected,
then the run is refused as a whole (`PreflightError`, exit 2) so that a typo in entry 37 does
not leave 36 services deployed and one not. Checked per target: the cluster and the service
exist and are ACTIVE, the service's deployment controller is ECS, its task definition has
the container, the image's registry is allowed, and an image in ECR exists there (its tag
or digest, `describe_images`). With `pin_digests`, an ECR image is deployed as
`repository@digest`, the digest its tag resolved to now: a tag moved later changes nothing.

The workers check all of it again (the world may change in between); preflight only makes
the common mistakes cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from orchestrator.aws_clients import ecr_client
from orchestrator.dryrun import ECR_HOST
from orchestrator.errors import ConfigError, SpecError
from orchestrator.plan import PlannedJob, Target
from worker.aws import ecs_client
from worker.contract import ContainerChange
from worker.ecs_calls import controller_problem, error_message
from worker.images import ImageRef, parse_image
from worker.registries import refused_images, registry_of
from worker.taskdef import current_images

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient
    from types_aiobotocore_ecs import ECSClient

__all__ = ["PreflightError", "PreflightResult", "preflight"]

MAX_PARALLEL_READS = 10
SERVICES_PER_CALL = 10  # DescribeServices takes at most 10 services
CLUSTERS_PER_CALL = 100
ECR_NOT_FOUND = frozenset({"ImageNotFoundException", "RepositoryNotFoundException"})


class PreflightError(SpecError):
    """Targets that cannot be deployed; nothing was changed. One line per problem."""


@dataclass
class PreflightResult:
    planned: list[PlannedJob]
    clusters: int = 0
    services: int = 0
    ecr_images: int = 0
    problems: list[tuple[Target, str]] = field(default_factory=list)


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _Checker:
    def __init__(self, ecs: ECSClient, ecr: dict[str, ECRClient]) -> None:
        self._ecs = ecs
        self._ecr = ecr  # per region: an image's ECR client is the one of its registry's region
        self._limit = anyio.CapacityLimiter(MAX_PARALLEL_READS)
        self.clusters: dict[str, str] = {}  # cluster -> problem ("" when fine)
        self.services: dict[tuple[str, str], dict[str, Any] | str] = {}  # service or problem
        self.containers: dict[str, set[str] | str] = {}  # task definition -> names or problem
        self.ecr: dict[str, str] = {}  # image -> digest, or "!problem"

    async def clusters_exist(self, names: Sequence[str]) -> None:
        for chunk in _chunks(names, CLUSTERS_PER_CALL):
            response = await self._ecs.describe_clusters(clusters=list(chunk))
            for cluster in response.get("clusters", []):
                status = cluster.get("status", "ACTIVE")
                problem = "" if status == "ACTIVE" else f"cluster is {status}"
                for name in chunk:  # asked by name or ARN: the answer names both
                    if name in (cluster.get("clusterName"), cluster.get("clusterArn")):
                        self.clusters[name] = problem
            for name in chunk:
                self.clusters.setdefault(name, f"cluster {name!r} not found")

    async def services_exist(self, cluster: str, names: Sequence[str]) -> None:
        async with self._limit:
            response = await self._ecs.describe_services(cluster=cluster, services=list(names))
        found: dict[str | None, Any] = {}
        for described in response.get("services", []):
            found[described.get("serviceName")] = found[described.get("serviceArn")] = described
        for name in names:
            service: dict[str, Any] | None = found.get(name)
            if service is None or service.get("status") != "ACTIVE":
                status = "" if service is None else f" (it is {service.get('status')})"
                self.services[cluster, name] = f"service {name!r} not found in cluster {cluster!r}{status}"
                continue
            self.services[cluster, name] = controller_problem(service) or dict(service)

    async def task_definition(self, arn: str) -> None:
        async with self._limit:
            try:
                described = await self._ecs.describe_task_definition(taskDefinition=arn)
            except ClientError as exc:
                self.containers[arn] = f"task definition {arn} cannot be read: {error_message(exc)}"
                return
        self.containers[arn] = set(current_images(described["taskDefinition"]))

    async def ecr_image(self, image: str, ref: ImageRef, account: str, region: str) -> None:
        image_id: Any = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag}
        async with self._limit:
            try:
                described = await self._ecr[region].describe_images(
                    registryId=account, repositoryName=ref.repository, imageIds=[image_id]
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in ECR_NOT_FOUND:
                    raise  # e.g. AccessDenied: preflight cannot tell, the run is refused as such
                what = ref.digest or f"tag {ref.tag!r}"
                self.ecr[image] = (
                    f"!{what} not found in ECR repository {ref.repository!r}: {error_message(exc)}"
                )
                return
        self.ecr[image] = described["imageDetails"][0].get("imageDigest", "")


def _ecr_location(image: str) -> tuple[ImageRef, str, str] | None:
    ref = parse_image(image)
    host = ECR_HOST.match(ref.registry or "")
    return None if host is None else (ref, host["account"], host["region"])


def _problem(checker: _Checker, target: Target, allowed: Sequence[str]) -> str | None:
    cluster_problem = checker.clusters.get(target.cluster, "")
    if cluster_problem:
        return cluster_problem
    service = checker.services.get((target.cluster, target.service))
    if isinstance(service, str):
        return service
    assert service is not None
    names = checker.containers.get(str(service["taskDefinition"]), set())
    if isinstance(names, str):
        return names
    if target.container not in names:
        revision = str(service["taskDefinition"]).rsplit("/", 1)[-1]
        return f"no container {target.container!r} in {revision} (it has: {', '.join(sorted(names))})"
    if refused_images([target.image], allowed):
        return f"registry {registry_of(target.image)} is not in the allow-list ({', '.join(allowed)})"
    digest = checker.ecr.get(target.image, "")
    return digest[1:] if digest.startswith("!") else None


def _pinned(job: PlannedJob, digests: dict[str, str]) -> PlannedJob:
    def pin(image: str) -> str:
        digest = digests.get(image)
        return image if not digest else f"{parse_image(image).name}@{digest}"

    targets = tuple(t.model_copy(update={"image": pin(t.image)}) for t in job.targets)
    changes = tuple(ContainerChange(container=c.container, image=pin(c.image)) for c in job.job.changes)
    return job.model_copy(update={"targets": targets, "job": job.job.model_copy(update={"changes": changes})})


async def _check(
    checker: _Checker, by_cluster: dict[str, list[str]], in_ecr: dict[str, tuple[ImageRef, str, str]]
) -> _Checker:
    """Clusters first (a missing one fails DescribeServices as a whole), then services and ECR
    images side by side, then the task definitions the services run."""
    await checker.clusters_exist(list(by_cluster))
    async with anyio.create_task_group() as tg:
        for cluster, services in by_cluster.items():
            if not checker.clusters[cluster]:
                for chunk in _chunks(services, SERVICES_PER_CALL):
                    tg.start_soon(checker.services_exist, cluster, chunk)
        for image, location in in_ecr.items():
            tg.start_soon(checker.ecr_image, image, *location)
    async with anyio.create_task_group() as tg:
        for arn in {str(s["taskDefinition"]) for s in checker.services.values() if isinstance(s, dict)}:
            tg.start_soon(checker.task_definition, arn)
    return checker


async def preflight(
    planned: Sequence[PlannedJob],
    *,
    region: str | None,
    profile: str | None,
    allowed_registries: Sequence[str] = (),
    pin_digests: bool = False,
) -> PreflightResult:
    """Check every target; the plan (pinned when asked) and every problem found."""
    jobs = [p for p in planned if p.job.changes]  # a revert's revision existed when it was recorded
    by_cluster: dict[str, list[str]] = {}
    for p in jobs:
        by_cluster.setdefault(p.job.cluster, []).append(p.job.service)
    in_ecr = {
        image: location for p in jobs for t in p.targets if (location := _ecr_location(image := t.image))
    }
    try:
        async with AsyncExitStack() as stack:
            ecs = await stack.enter_async_context(ecs_client(region, profile))
            ecr = {
                ecr_region: await stack.enter_async_context(ecr_client(ecr_region, profile))
                for ecr_region in {location[2] for location in in_ecr.values()}
            }
            checker = await _check(_Checker(ecs, ecr), by_cluster, in_ecr)
    except* (ClientError, BotoCoreError) as failures:
        first = failures.exceptions[0]
        while isinstance(first, BaseExceptionGroup):  # nested task groups nest their groups
            first = first.exceptions[0]
        raise ConfigError(
            f"preflight could not read AWS: {error_message(first)}; nothing was changed "
            f"(--skip-preflight leaves the checks to the workers)"
        ) from failures

    result = PreflightResult(
        planned=list(planned),
        clusters=len(by_cluster),
        services=sum(isinstance(s, dict) for s in checker.services.values()),
        ecr_images=len(checker.ecr),
    )
    for p in jobs:
        for target in p.targets:
            if (problem := _problem(checker, target, allowed_registries)) is not None:
                result.problems.append((target, problem))
    if pin_digests:
        digests = {image: d for image, d in checker.ecr.items() if not d.startswith("!")}
        result.planned = [_pinned(p, digests) for p in planned]
    return result


def raise_problems(result: PreflightResult, spec_path: str, entry_of: Callable[[Target], str]) -> None:
    """Refuse the run, naming the spec entry of every problem (exit 2, nothing changed)."""
    if result.problems:
        raise PreflightError(
            spec_path,
            [f"{entry_of(target)}: {problem}" for target, problem in result.problems]
            + ["preflight refused the run: nothing was changed"],
        )
