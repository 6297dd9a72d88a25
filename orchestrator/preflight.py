"""Preflight: before anything changes, make sure every target of the plan can be deployed.

Read-only (describe_* calls only) and complete: every problem of every target is collected,
then the run is refused as a whole (`PreflightError`, exit 2) so that a typo in entry 37 does
not leave 36 services deployed and one not. Checked per target: the cluster and the service
exist and are ACTIVE, the service's deployment controller is ECS (any of its strategies:
ROLLING, BLUE_GREEN, LINEAR, CANARY; CODE_DEPLOY and EXTERNAL are refused, saying what deploys
them), its task definition has the container, the image's registry is allowed, and an image
in ECR exists there (its tag or digest, `describe_images`). With `pin_digests`, an ECR image
is deployed as `repository@digest`, the digest its tag resolved to now: a tag moved later
changes nothing. What each service's controller and strategy are is kept in the result
(`PreflightResult.deployments`).

The workers check all of it again (the world may change in between); preflight only makes
the common mistakes cheap. ECS is read in batches (`orchestrator.ecs_reads`, shared with
`--dry-run`, `plan` and `status`): clusters 100 a call, services 10 a call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from orchestrator.boundary import client_error_fix
from orchestrator.ecs_reads import MAX_PARALLEL_READS, EcsReads
from orchestrator.ecs_strategy import DeploymentSetup
from orchestrator.errors import ConfigError, SpecError
from orchestrator.plan import PlannedJob
from worker.access import Access
from worker.aws import AwsAccess
from worker.aws_errors import error_message
from worker.contract import ContainerChange
from worker.credentials import Clients
from worker.ecs_calls import controller_problem
from worker.images import ECR_HOST, ImageRef, parse_image
from worker.registries import refused_images, registry_of
from worker.target import Target
from worker.taskdef import current_images

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient
    from types_aiobotocore_ecs import ECSClient

__all__ = ["PreflightError", "PreflightResult", "Problem", "preflight", "raise_problems"]

ECR_NOT_FOUND = frozenset({"ImageNotFoundException", "RepositoryNotFoundException"})


class PreflightError(SpecError):
    """Targets that cannot be deployed; nothing was changed. One line per problem."""


class Problem(NamedTuple):
    """Why one container of one target cannot be deployed."""

    target: Target
    container: str
    message: str


@dataclass(repr=False)  # asyncio reprs a finished task's result: 10,000 jobs would cost a second
class PreflightResult:
    planned: list[PlannedJob]
    clusters: int = 0
    services: int = 0
    ecr_images: int = 0
    problems: list[Problem] = field(default_factory=list)
    deployments: dict[Target, DeploymentSetup] = field(default_factory=dict)  # of each service read
    # the revisions the services run, as read (with their tags): a local job registers from them
    task_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def strategies(self) -> str:
        """How the services read deploy, counted: `ROLLING 10, BLUE_GREEN 2, CODE_DEPLOY 1`."""
        counts: dict[str, int] = {}
        for setup in self.deployments.values():
            word = setup.strategy if setup.on_ecs else setup.controller
            counts[word] = counts.get(word, 0) + 1
        return ", ".join(f"{word} {count}" for word, count in counts.items())


class _Checker:
    """What ECS says of the targets of one account and region (and ECR of their images)."""

    def __init__(self, ecs: ECSClient, ecr: dict[tuple[Access, str], ECRClient]) -> None:
        self._ecr = ecr  # per way in and region: an image's registry's account and region
        self.reads = EcsReads(ecs, anyio.CapacityLimiter(MAX_PARALLEL_READS))
        # ECR is another service, with buckets of its own: its reads do not queue behind ECS's
        self._ecr_limit = anyio.CapacityLimiter(MAX_PARALLEL_READS)
        self.ecr: dict[str, str] = {}  # image -> digest, or "!problem"

    async def ecr_image(self, image: str, ref: ImageRef, account: str, region: str, access: Access) -> None:
        image_id: Any = {"imageDigest": ref.digest} if ref.digest else {"imageTag": ref.tag}
        async with self._ecr_limit:
            try:
                described = await self._ecr[access, region].describe_images(
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

    def problem(self, target: Target, change: ContainerChange, allowed: Sequence[str]) -> str | None:
        service = self.reads.services.get(target)
        if isinstance(service, str):
            return service  # its cluster's problem, or its own
        assert service is not None
        if (controller := controller_problem(service)) is not None:
            return controller
        arn = str(service["taskDefinition"])
        described = self.reads.task_definitions.get(arn, {})
        if isinstance(described, str):
            return described
        names = set(current_images(described.get("taskDefinition", {})))
        if change.container not in names:
            revision = arn.rsplit("/", 1)[-1]
            return f"no container {change.container!r} in {revision} (it has: {', '.join(sorted(names))})"
        if refused_images([change.image], allowed):
            return f"registry {registry_of(change.image)} is not in the allow-list ({', '.join(allowed)})"
        digest = self.ecr.get(change.image, "")
        return digest[1:] if digest.startswith("!") else None


EcrLocation = tuple[ImageRef, str, str, Access]  # reference, registry account and region, way in


def _ecr_location(image: str) -> tuple[ImageRef, str, str] | None:
    ref = parse_image(image)
    host = ECR_HOST.match(ref.registry or "")
    return None if host is None else (ref, host["account"], host["region"])


def ecr_locations(jobs: Sequence[PlannedJob]) -> dict[str, EcrLocation]:
    """Where each ECR image is checked: in its registry's own account and region, through the way
    in the plan has for that account (cross-account pulls are common), else its target's."""
    into = {p.target.account: p.job.access for p in reversed(jobs) if p.target.account}  # first wins
    found: dict[str, EcrLocation] = {}
    for p in jobs:
        for change in p.job.changes:
            location = _ecr_location(change.image)
            if location is not None and change.image not in found:
                found[change.image] = (*location, into.get(location[1], p.job.access))
    return found


def _pinned(job: PlannedJob, digests: dict[str, str]) -> PlannedJob:
    def pin(image: str) -> str:
        digest = digests.get(image)
        return image if not digest else f"{parse_image(image).name}@{digest}"

    changes = tuple(ContainerChange(container=c.container, image=pin(c.image)) for c in job.job.changes)
    return job.model_copy(update={"job": job.job.model_copy(update={"changes": changes})})


async def _check(checker: _Checker, targets: Sequence[Target], in_ecr: dict[str, EcrLocation]) -> _Checker:
    """Clusters, then services (`EcsReads`: 100 and 10 a call) and ECR images side by side,
    then the task definitions the services run."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(checker.reads.read_services, targets)
        for image, location in in_ecr.items():
            tg.start_soon(checker.ecr_image, image, *location)
    await checker.reads.read_task_definitions(checker.reads.running_arns(), tags=True)
    return checker


async def _check_scopes(
    clients: Clients, jobs: Sequence[PlannedJob], in_ecr: dict[str, EcrLocation]
) -> dict[str, _Checker]:
    """One checker per account and region (with that account's way in), side by side, each
    making its own ECS client; ECR read once, in the first, its clients made side by side."""
    by_scope: dict[str, tuple[Access, list[Target]]] = {}
    for p in jobs:
        by_scope.setdefault(p.target.scope, (p.job.access, []))[1].append(p.target)
    checkers: dict[str, _Checker] = {}
    ecr: dict[tuple[Access, str], ECRClient] = {}

    async def ecr_client(access: Access, region: str) -> None:
        ecr[access, region] = await clients.get("ecr", region, access)

    async def check(index: int, scope: str, access: Access, targets: list[Target]) -> None:
        checkers[scope] = _Checker(await clients.get("ecs", targets[0].region, access), ecr)
        await _check(checkers[scope], targets, in_ecr if index == 0 else {})

    async with anyio.create_task_group() as tg:
        for access, region in {(location[3], location[2]) for location in in_ecr.values()}:
            tg.start_soon(ecr_client, access, region)
    async with anyio.create_task_group() as tg:
        for index, (scope, (access, targets)) in enumerate(by_scope.items()):
            tg.start_soon(check, index, scope, access, targets)
    return checkers


async def _checked_scopes(
    aws: AwsAccess, clients: Clients | None, jobs: Sequence[PlannedJob], in_ecr: dict[str, EcrLocation]
) -> dict[str, _Checker]:
    """`_check_scopes` with the run's clients, or with clients of its own (closed after)."""
    if clients is not None:
        return await _check_scopes(clients, jobs, in_ecr)
    async with AsyncExitStack() as stack:
        return await _check_scopes(
            Clients(stack, aws, jobs[0].job.run_id if jobs else "preflight"), jobs, in_ecr
        )


async def preflight(
    planned: Sequence[PlannedJob],
    *,
    aws: AwsAccess,
    allowed_registries: Sequence[str] = (),
    pin_digests: bool = False,
    clients: Clients | None = None,
) -> PreflightResult:
    """Check every target; the plan (pinned when asked) and every problem found. `clients`: the
    run's (one per service, region and way in, shared with the run), else preflight's own."""
    jobs = [p for p in planned if p.job.changes]  # a revert's revision existed when it was recorded
    in_ecr = ecr_locations(jobs)
    try:
        checkers = await _checked_scopes(aws, clients, jobs, in_ecr)
    except* (ClientError, BotoCoreError) as failures:
        first = failures.exceptions[0]
        while isinstance(first, BaseExceptionGroup):  # nested task groups nest their groups
            first = first.exceptions[0]
        if not isinstance(first, ClientError):
            raise first from None  # no credentials, no region, no endpoint: the CLI's boundary says how
        fix = client_error_fix(first)  # refused or expired credentials, a denied call: what to do
        raise ConfigError(
            f"preflight could not read AWS: {error_message(first)}; "
            f"{f'{fix}; ' if fix else ''}nothing was changed"
        ) from first

    digests = {image: d for c in checkers.values() for image, d in c.ecr.items()}
    result = PreflightResult(
        planned=list(planned),
        clusters=sum(len(c.reads.clusters) for c in checkers.values()),
        services=sum(isinstance(s, dict) for c in checkers.values() for s in c.reads.services.values()),
        ecr_images=len(digests),
    )
    for checker in checkers.values():
        read = checker.reads.task_definitions.items()
        result.task_definitions.update((arn, d) for arn, d in read if not isinstance(d, str))
    for p in jobs:
        checker = checkers[p.target.scope]
        checker.ecr = digests
        if isinstance(service := checker.reads.services.get(p.target), dict):
            result.deployments[p.target] = DeploymentSetup.of(service)
        for change in p.job.changes:
            if (problem := checker.problem(p.target, change, allowed_registries)) is not None:
                result.problems.append(Problem(p.target, change.container, problem))
    if pin_digests:
        pins = {image: d for image, d in digests.items() if not d.startswith("!")}
        result.planned = [_pinned(p, pins) for p in planned]
    return result


def raise_problems(result: PreflightResult, spec_path: str, entry_of: Callable[[Target, str], str]) -> None:
    """Refuse the run, naming the spec entry of every problem (exit 2, nothing changed)."""
    if result.problems:
        raise PreflightError(
            spec_path,
            [f"{entry_of(p.target, p.container)}: {p.message}" for p in result.problems]
            + ["preflight refused the run: nothing was changed"],
        )
