"""`--dry-run` and `plan`: read AWS, show per target what a deploy would change.

`--dry-run` prints, per service, how ECS deploys it (its deployment controller and strategy:
`ECS controller, strategy BLUE_GREEN, bake 10m, 2 hooks`; a CODE_DEPLOY or EXTERNAL service is
refused, as preflight refuses it), then the image each target runs now and the one it would
get; `plan` adds the task-definition diff a deploy would register (only image lines should
appear) and, for images in this account's ECR, the digest the tag resolves to. Read-only by construction: only
describe_* calls are made, in batches (`orchestrator.ecs_reads`, as preflight reads): a
target of a cluster that does not exist costs no DescribeServices call, and 10,000 targets
cost about a thousand calls at most, not 10,000.

Output: plain lines (a line per service read, naming its controller and strategy, then a line
per target; with `plan`, a service's revision diff once, under a heading naming the service),
or with `--json` one object per line: `target` per container (account, region, cluster,
service, container, current_image, new_image, unchanged, fine, problem; `plan` adds
ecr_digest), `service` per service with `plan` (revision, deployment, diff, fine), then
`summary`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from botocore.exceptions import ClientError

from orchestrator.ecs_reads import MAX_PARALLEL_READS, EcsReads
from orchestrator.ecs_strategy import DeploymentSetup
from orchestrator.exits import ExitCode
from orchestrator.plan import PlannedJob
from orchestrator.wave_words import gate_words, wave_heading
from worker.access import CALLER, Access
from worker.aws import AwsAccess
from worker.credentials import Clients
from worker.ecs_calls import controller_problem
from worker.images import ECR_HOST, parse_image
from worker.target import Target
from worker.taskdef import build_registration, current_images, revision_diff

if TYPE_CHECKING:
    from types_aiobotocore_ecr import ECRClient

    from orchestrator.waves import PlannedWave, WavePlan

__all__ = ["ServiceView", "TargetView", "describe_plan", "dry_run", "ecr_digest"]


@dataclass
class TargetView:
    """One container of a service: the image it runs now and the one a deploy would give it."""

    container: str
    new_image: str
    current_image: str | None = None
    problem: str | None = None  # why a deploy would be refused
    ecr: str | None = None  # `plan`: the digest the tag resolves to in ECR ...
    ecr_problem: str | None = None  # ... or why it does not

    @property
    def fine(self) -> bool:
        return self.problem is None and self.ecr_problem is None

    @property
    def unchanged(self) -> bool:
        return self.current_image == self.new_image


@dataclass
class ServiceView:
    """What a deploy would do to one service (a job): its containers, and the revision diff."""

    target: Target
    targets: list[TargetView]
    revision: str | None = None  # the revision it runs, `family:N`
    deployment: DeploymentSetup | None = None  # how ECS deploys it, once the service was read
    diff: list[str] = field(default_factory=list)  # `plan`: what the new revision would change

    @property
    def fine(self) -> bool:
        return all(t.fine for t in self.targets)


async def ecr_digest(
    clients: Clients, image: str, access: Access = CALLER, into: Mapping[str, Access] | None = None
) -> tuple[str, bool] | None:
    """What ECR (in the registry's own account and region) says of `image`'s tag: (digest, True)
    or (problem, False); None for an image not hosted in ECR. Asked through `into`'s way into
    the registry's account when it has one, else through `access` (the target's)."""
    ref = parse_image(image)
    host = ECR_HOST.match(ref.registry or "")
    if host is None or ref.tag is None:
        return None
    ecr: ECRClient = await clients.get("ecr", host["region"], (into or {}).get(host["account"], access))
    try:
        described = await ecr.describe_images(
            registryId=host["account"], repositoryName=ref.repository, imageIds=[{"imageTag": ref.tag}]
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return f"{ref.repository}:{ref.tag} not found ({code})", False
    return described["imageDetails"][0].get("imageDigest", "?"), True


async def _ecr_digests(
    clients: Clients, images: Iterable[tuple[str, Access]], into: Mapping[str, Access]
) -> dict[tuple[str, Access], tuple[str, bool] | None]:
    """`ecr_digest` of each distinct (image, target's access), at most `MAX_PARALLEL_READS` at a time."""
    found: dict[tuple[str, Access], tuple[str, bool] | None] = {}
    limit = anyio.CapacityLimiter(MAX_PARALLEL_READS)

    async def one(image: str, access: Access) -> None:
        async with limit:
            found[image, access] = await ecr_digest(clients, image, access, into)

    async with anyio.create_task_group() as tg:
        for image, access in dict.fromkeys(images):
            tg.start_soon(one, image, access)
    return found


def _view(
    reads: EcsReads,
    planned: PlannedJob,
    digests: Mapping[tuple[str, Access], tuple[str, bool] | None],
    full: bool,
) -> ServiceView:
    """The service's containers now and after a deploy; with `full` (`plan`) the ECR digests
    and the revision diff too."""
    target = planned.job.target
    view = ServiceView(target, [TargetView(c.container, c.image) for c in planned.job.changes])
    service = reads.services[target]
    if isinstance(service, str):  # its cluster's problem (no DescribeServices was made), or its own
        return _refused(view, service)
    view.deployment = DeploymentSetup.of(service)
    if (controller := controller_problem(service)) is not None:
        return _refused(view, controller)
    arn = str(service["taskDefinition"])
    described = reads.task_definitions[arn]
    if isinstance(described, str):
        return _refused(view, described)
    view.revision = arn.rsplit("/", 1)[-1]
    images = current_images(described["taskDefinition"])
    for one in view.targets:
        one.current_image = images.get(one.container)
        if one.current_image is None:
            one.problem = f"no such container in {view.revision} (has: {', '.join(images)})"
        if full and (digest := digests.get((one.new_image, planned.job.access))) is not None:
            one.ecr, one.ecr_problem = (digest[0], None) if digest[1] else (None, digest[0])
    if full and view.fine:
        todo = {t.container: t.new_image for t in view.targets if not t.unchanged}
        if todo:
            view.diff = revision_diff(described, build_registration(described, todo))
    return view


def _refused(view: ServiceView, problem: str) -> ServiceView:
    for one in view.targets:
        one.problem = problem
    return view


async def describe_plan(
    planned: Sequence[PlannedJob], aws: AwsAccess, *, full: bool = False
) -> list[ServiceView]:
    """A view per service, in plan order; `full` adds diffs and ECR digests. ECS is read in
    batches per account and region (`orchestrator.ecs_reads`): clusters 100 a call, services
    10 a call, each task definition once."""
    by_scope: dict[str, list[PlannedJob]] = {}
    for job in planned:
        by_scope.setdefault(job.target.scope, []).append(job)
    reads: dict[str, EcsReads] = {}
    async with AsyncExitStack() as stack:
        clients = Clients(stack, aws, planned[0].job.run_id if planned else "dry-run")
        # the plan's way into each account, for images in another account's ECR
        into = {p.target.account: p.job.access for p in reversed(planned) if p.target.account}

        async def read(scope: str, jobs: list[PlannedJob]) -> None:
            ecs = await clients.get("ecs", jobs[0].target.region, jobs[0].job.access)
            reads[scope] = scope_reads = EcsReads(ecs)
            await scope_reads.read_services([p.target for p in jobs])
            await scope_reads.read_task_definitions(scope_reads.running_arns(), tags=full)

        async with anyio.create_task_group() as tg:
            for scope, jobs in by_scope.items():
                tg.start_soon(read, scope, jobs)
            digests = (
                await _ecr_digests(
                    clients, [(c.image, p.job.access) for p in planned for c in p.job.changes], into
                )
                if full
                else {}
            )
    return [_view(reads[p.target.scope], p, digests, full) for p in planned]


def plain_lines(view: ServiceView) -> list[str]:
    """How ECS deploys the service, a line per container (and its ECR digest), then the
    service's revision diff under a heading."""
    lines = [] if view.deployment is None else [f"{view.target.name}: {view.deployment.text}"]
    for one in view.targets:
        label = f"{view.target.name}/{one.container}"
        if one.problem is not None:
            lines.append(f"{label}: {one.problem}")
        elif one.unchanged:
            lines.append(f"{label}: {one.current_image} (unchanged, would skip)")
        else:
            lines.append(f"{label}: {one.current_image} -> {one.new_image}")
        if one.ecr is not None:
            ref = parse_image(one.new_image)
            lines.append(f"    ecr: {ref.repository}:{ref.tag} is {one.ecr}")
        elif one.ecr_problem is not None:
            lines.append(f"    ecr: {one.ecr_problem}")
    if view.diff:
        lines.append(f"  {view.target.name}: the new revision would differ from {view.revision} in:")
        lines += [f"    {line}" for line in view.diff]
    return lines


def json_objects(view: ServiceView, *, full: bool) -> list[dict[str, Any]]:
    """A `target` object per container; with `full` (`plan`) a `service` object with the diff."""
    where = {
        "account": view.target.account,
        "region": view.target.region,
        "cluster": view.target.cluster,
        "service": view.target.service,
    }
    objects: list[dict[str, Any]] = []
    for one in view.targets:
        target: dict[str, Any] = where | {
            "type": "target",
            "container": one.container,
            "current_image": one.current_image,
            "new_image": one.new_image,
            "unchanged": one.unchanged,
            "fine": one.fine,
            "problem": one.problem or one.ecr_problem,
        }
        if full:
            target["ecr_digest"] = one.ecr
        objects.append(target)
    if full:
        deployment = None if view.deployment is None else view.deployment.as_json()
        objects.append(
            where
            | {
                "type": "service",
                "revision": view.revision,
                "deployment": deployment,
                "diff": view.diff,
                "fine": view.fine,
            }
        )
    return objects


def summary(views: Sequence[ServiceView]) -> dict[str, Any]:
    targets = [t for view in views for t in view.targets]
    return {
        "type": "summary",
        "services": len(views),
        "targets": len(targets),
        "to_change": sum(t.fine and not t.unchanged for t in targets),
        "unchanged": sum(t.fine and t.unchanged for t in targets),
        "refused": sum(not t.fine for t in targets),
        "fine": all(t.fine for t in targets),
        "changed": False,  # a dry run changes nothing
    }


def dry_run(
    planned: Sequence[PlannedJob],
    *,
    aws: AwsAccess,
    full: bool = False,
    json_lines: bool = False,
    waves: WavePlan | None = None,
) -> int:
    """Print what a deploy would change (plain lines, or JSON objects with `json_lines`), wave by
    wave under each wave's heading when the spec has `waves`; exit code 0 when every target could
    be deployed, else 1."""
    views = anyio.run(lambda: describe_plan(planned, aws, full=full))
    for wave, chunk in _by_wave(planned, views, waves):
        if wave is not None:
            service_of = {p.job.job_id: p.target.name for p in planned}
            heading = wave_heading(wave, service_of)
            gate = gate_words(wave.gate, service_of)
            _say(json_lines, {"type": "wave", "name": wave.name, "gate": gate}, lines=[heading])
        for view in chunk:
            objects = [obj | {"wave": wave.name} if wave else obj for obj in json_objects(view, full=full)]
            _say(json_lines, *objects, lines=plain_lines(view))
    if json_lines:
        print(json.dumps(summary(views), separators=(",", ":")))
    print("dry run: nothing was changed", file=sys.stderr)
    return ExitCode.OK if all(view.fine for view in views) else ExitCode.FAILED


def _by_wave(
    planned: Sequence[PlannedJob], views: Sequence[ServiceView], waves: WavePlan | None
) -> list[tuple[PlannedWave | None, list[ServiceView]]]:
    """The views in the order a run deploys them: wave by wave (the spec's order within one)."""
    if waves is None:
        return [(None, list(views))]
    view_of = {p.job.job_id: view for p, view in zip(planned, views, strict=True)}
    return [(wave, [view_of[job_id] for job_id in wave.job_ids]) for wave in waves.waves]


def _say(json_lines: bool, *objects: dict[str, Any], lines: Sequence[str]) -> None:
    if json_lines:
        for obj in objects:
            print(json.dumps(obj, separators=(",", ":")))
    else:
        for line in lines:
            print(line)
