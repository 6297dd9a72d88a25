"""`ecs-fanout status RUN_ID`: what ECS runs now for every target of a run, and whether it is
what the run wanted.

A run's report says what its workers saw; ECS says what is true now, whatever happened since
(an orchestrator killed mid-run, a rollout finished after everyone stopped watching, a later
deploy by someone else). This command asks ECS, from the run's records only: its saved plan
(the targets, each with its region) and each job's ledger record (`worker.ledger`: the revision
the job registered). It needs no orchestrator, and works as long as Redis keeps the records
(7 days). Read-only: DescribeClusters and DescribeServices in batches (`orchestrator.ecs_reads`:
100 clusters, 10 services of a cluster a call), and DescribeTaskDefinition only where a
target's wish is known by its images alone.

Per target, what the run wanted is the revision its job registered (or, for a revert, the
revision it puts back); a job that registered nothing (never started, skipped) wanted its
images. The verdict, from the PRIMARY deployment:

- `matches`: it runs what the run wanted, and that rollout is over (COMPLETED, or without a
  rolloutState all its tasks run);
- `rolling_out`: it runs what the run wanted, not everywhere yet (IN_PROGRESS), or the service
  deployment the job followed is still under way (a bake, a hook: DescribeServiceDeployments,
  20 a call);
- `differs`: it runs something else (the previous revision after a rollback, a job that never
  started, a later deploy);
- `missing`: the service or its cluster is gone.

Exit 0 when every target matches, 1 otherwise, 2 for an unknown run (or no Redis). The
command line is `orchestrator.status_command`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
from botocore.exceptions import ClientError
from redis.exceptions import RedisError

from orchestrator.ecs_reads import EcsReads
from orchestrator.errors import RedisUnavailable
from orchestrator.exits import ExitCode
from orchestrator.plan import PlannedJob
from orchestrator.run import load_plan
from worker.aws import AwsAccess
from worker.ledger import JobLedger
from worker.publisher import connect_redis, redact_url
from worker.strategy import STILL_GOING
from worker.target import Target
from worker.taskdef import current_images

if TYPE_CHECKING:
    from types_aiobotocore_ecs import ECSClient

__all__ = ["TargetStatus", "Wanted", "compare", "load_wanted", "report"]

Verdict = Literal["matches", "rolling_out", "differs", "missing"]
SERVICE_DEPLOYMENTS_PER_CALL = 20  # DescribeServiceDeployments' limit


@dataclass(frozen=True)
class Wanted:
    """What the run wanted of one target, from its plan and its job's ledger record."""

    target: Target
    images: dict[str, str]  # container -> image the spec asked for (empty for a revert)
    task_definition_arn: str | None  # the revision the job registered, or a revert's
    recorded: str | None  # the job's terminal phase in the ledger, if a worker recorded one
    service_deployment_arn: str | None = None  # ECS's service deployment the job followed


@dataclass
class TargetStatus:
    wanted: Wanted
    verdict: Verdict = "missing"
    task_definition_arn: str | None = None
    rollout_state: str | None = None
    running: int | None = None
    desired: int | None = None
    images: dict[str, str] = field(default_factory=dict)  # when read (the wish was images)
    message: str = ""
    service_deployment: dict[str, Any] | None = None  # ECS's word on it now, when there is one

    @property
    def matches(self) -> bool:
        return self.verdict == "matches"


def _revision(arn: str | None) -> str:
    return "-" if arn is None else arn.rsplit("/", 1)[-1]


def _primary(service: dict[str, Any]) -> dict[str, Any]:
    deployments = service.get("deployments") or []
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    return dict(primary) if primary is not None else {"taskDefinition": service.get("taskDefinition")}


def _judge(status: TargetStatus, service: dict[str, Any] | str, reads: EcsReads) -> TargetStatus:
    if isinstance(service, str):
        status.message = service
        return status
    primary = _primary(service)
    status.task_definition_arn = str(primary.get("taskDefinition") or service.get("taskDefinition"))
    status.rollout_state = primary.get("rolloutState")
    status.running = primary.get("runningCount", service.get("runningCount"))
    status.desired = primary.get("desiredCount", service.get("desiredCount"))
    wanted = status.wanted
    if wanted.task_definition_arn is not None:
        same = _revision(status.task_definition_arn) == _revision(wanted.task_definition_arn)
    else:
        described = reads.task_definitions.get(status.task_definition_arn, "not read")
        if isinstance(described, str):
            status.verdict, status.message = "differs", described
            return status
        status.images = current_images(described.get("taskDefinition", {}))
        same = all(status.images.get(c) == image for c, image in wanted.images.items())
    under_way = (status.service_deployment or {}).get("status") in STILL_GOING
    if not same:
        status.verdict = "differs"
    elif under_way:  # a blue/green PRIMARY is COMPLETED while its service deployment bakes
        status.verdict = "rolling_out"
        sd = status.service_deployment or {}
        status.message = f"ECS's service deployment is {sd.get('status')} ({sd.get('lifecycleStage')})"
    elif status.rollout_state == "COMPLETED" or (
        status.rollout_state is None and (status.running or 0) >= (status.desired or 0)
    ):
        status.verdict = "matches"
    else:
        status.verdict = "rolling_out"
    if status.rollout_state == "FAILED":
        status.message = "ECS's rollout of it FAILED"
    return status


async def compare(wanted: Sequence[Wanted], aws: AwsAccess) -> list[TargetStatus]:
    """What ECS runs for each target, against what the run wanted; in plan order."""
    by_scope: dict[str, list[Wanted]] = {}
    for one in wanted:
        by_scope.setdefault(one.target.scope, []).append(one)
    reads: dict[str, EcsReads] = {}
    deployments: dict[str, dict[str, Any]] = {}
    async with AsyncExitStack() as stack:

        async def read(scope: str, group: list[Wanted]) -> None:
            ecs = await stack.enter_async_context(aws.ecs(group[0].target.region))
            reads[scope] = scope_reads = EcsReads(ecs)
            await scope_reads.read_services([w.target for w in group])
            by_images = [w for w in group if w.task_definition_arn is None]
            arns = [
                _primary(s).get("taskDefinition")
                for w in by_images
                if isinstance(s := scope_reads.services[w.target], dict)
            ]
            await scope_reads.read_task_definitions(str(a) for a in arns if a)
            await _read_service_deployments(ecs, group, deployments)

        async with anyio.create_task_group() as tg:
            for scope, group in by_scope.items():
                tg.start_soon(read, scope, group)
    return [
        _judge(
            TargetStatus(w, service_deployment=deployments.get(w.service_deployment_arn or "")),
            reads[w.target.scope].services[w.target],
            reads[w.target.scope],
        )
        for w in wanted
    ]


async def _read_service_deployments(
    ecs: ECSClient, group: Sequence[Wanted], into: dict[str, dict[str, Any]]
) -> None:
    """ECS's word on the service deployments the jobs followed, 20 a call; none where the API
    does not answer (then `rolloutState` is all there is)."""
    arns = [w.service_deployment_arn for w in group if w.service_deployment_arn]
    for start in range(0, len(arns), SERVICE_DEPLOYMENTS_PER_CALL):
        try:
            answer = await ecs.describe_service_deployments(
                serviceDeploymentArns=arns[start : start + SERVICE_DEPLOYMENTS_PER_CALL]
            )
        except ClientError:
            return
        for sd in answer.get("serviceDeployments", []):
            into[str(sd["serviceDeploymentArn"])] = dict(sd)


async def load_wanted(redis_url: str, run_id: str, region: str | None) -> list[Wanted] | None:
    """What run `run_id` wanted of each target (None: no such run in this Redis); `region` for
    targets the run recorded without one."""
    redis = connect_redis(redis_url, max_connections=4)
    try:
        planned = await load_plan(redis, run_id)
        if planned is None:
            return None
        ledger = JobLedger(redis)
        return [await _wanted(ledger, p, region) for p in planned]
    except (RedisError, OSError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {redact_url(redis_url)} ({exc}): is REDIS_URL the run's, and is it up?"
        ) from exc
    finally:
        await redis.aclose()


async def _wanted(ledger: JobLedger, planned: PlannedJob, region: str | None) -> Wanted:
    job = planned.job
    target = job.target
    if target.region is None and region is not None:
        target = target.model_copy(update={"region": region})
    record = await ledger.read(job)
    return Wanted(
        target=target,
        images={c.container: c.image for c in job.changes},
        task_definition_arn=job.revision or record.task_definition_arn,
        recorded=None if record.terminal is None else record.terminal.value,
        service_deployment_arn=record.service_deployment_arn,
    )


def _wish(wanted: Wanted) -> str:
    if wanted.task_definition_arn is not None:
        return _revision(wanted.task_definition_arn)
    return ", ".join(f"{c}={image}" for c, image in wanted.images.items()) or "-"


def plain_line(status: TargetStatus) -> str:
    """`c0/s0  matches  runs s0:2 (COMPLETED, 2/2 tasks); wanted s0:2; its worker said: succeeded`"""
    runs = "-"
    if status.task_definition_arn is not None:
        rollout = status.rollout_state or "no rolloutState"
        tasks = f"{status.running}/{status.desired} tasks"
        runs = f"runs {_revision(status.task_definition_arn)} ({rollout}, {tasks})"
    said = status.wanted.recorded or "no verdict recorded"
    line = f"{status.wanted.target.name:<40} {status.verdict:<12} {runs}; wanted {_wish(status.wanted)}"
    return f"{line}; its worker said: {said}" + (f"; {status.message}" if status.message else "")


def json_object(run_id: str, status: TargetStatus) -> dict[str, Any]:
    return {
        "type": "target",
        "run_id": run_id,
        **status.wanted.target.model_dump(),
        "status": status.verdict,
        "matches": status.matches,
        "task_definition_arn": status.task_definition_arn,
        "rollout_state": status.rollout_state,
        "service_deployment_status": (status.service_deployment or {}).get("status"),
        "lifecycle_stage": (status.service_deployment or {}).get("lifecycleStage"),
        "running": status.running,
        "desired": status.desired,
        "wanted_task_definition_arn": status.wanted.task_definition_arn,
        "wanted_images": status.wanted.images,
        "images": status.images or None,
        "recorded": status.wanted.recorded,
        "message": status.message,
    }


def _counts(statuses: Sequence[TargetStatus]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status.verdict] = counts.get(status.verdict, 0) + 1
    return counts


def report(run_id: str, statuses: Sequence[TargetStatus], *, json_lines: bool) -> int:
    """Print a line (or JSON object) per target and a summary; 0 when every target matches."""
    matching = sum(s.matches for s in statuses)
    if json_lines:
        for status in statuses:
            print(json.dumps(json_object(run_id, status), separators=(",", ":")))
        summary = {"type": "summary", "run_id": run_id, "targets": len(statuses), "matching": matching}
        print(json.dumps(summary | {"by_status": _counts(statuses)}, separators=(",", ":")))
    else:
        for status in statuses:
            print(plain_line(status))
        counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(_counts(statuses).items()))
        print(f"run {run_id}: {matching} of {len(statuses)} targets run what the run wanted ({counts})")
    return ExitCode.OK if matching == len(statuses) else ExitCode.FAILED
