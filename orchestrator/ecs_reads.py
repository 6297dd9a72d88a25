"""Reading many ECS services at once, in as few calls as ECS allows.

Preflight, `--dry-run`/`plan` and `status` all ask ECS about every target of a plan, which may
hold thousands. One DescribeServices per target costs a call (and a token of ECS's bucket,
`docs/design.md, 'ECS API limits'`) each; asking for a service of a cluster that does not exist
fails the call as a whole. So, per account and region:

1. DescribeClusters, up to 100 clusters a call: a target of a missing or inactive cluster is
   answered from that alone, with no DescribeServices call;
2. DescribeServices, up to 10 services of one cluster a call, at most `MAX_PARALLEL_READS`
   calls at a time;
3. DescribeTaskDefinition once per distinct task definition, when the caller needs them.

Answers are kept per name: `clusters` (a problem, "" when ACTIVE), `services` (the service as
DescribeServices gives it, its `deploymentController` and `deploymentConfiguration` included, or
a problem), `task_definitions` (the answer, or a problem). An AWS refusal other than "not
found" (access denied, expired credentials) is raised: the caller decides what it means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
from botocore.exceptions import ClientError

from worker.aws_errors import error_message
from worker.target import Target

if TYPE_CHECKING:
    from types_aiobotocore_ecs import ECSClient

__all__ = ["CLUSTERS_PER_CALL", "MAX_PARALLEL_READS", "SERVICES_PER_CALL", "EcsReads"]

CLUSTERS_PER_CALL = 100  # DescribeClusters' limit
SERVICES_PER_CALL = 10  # DescribeServices' limit (services of one cluster)
MAX_PARALLEL_READS = 10


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class EcsReads:
    """What ECS says of the services of one account and region."""

    def __init__(self, ecs: ECSClient, limit: anyio.CapacityLimiter | None = None) -> None:
        self._ecs = ecs
        self._limit = limit or anyio.CapacityLimiter(MAX_PARALLEL_READS)
        self.clusters: dict[str, str] = {}  # cluster -> problem ("" when ACTIVE)
        self.services: dict[Target, dict[str, Any] | str] = {}  # the service, or a problem
        self.task_definitions: dict[str, dict[str, Any] | str] = {}  # ARN -> answer, or a problem

    async def read_clusters(self, names: Iterable[str]) -> None:
        """Whether each cluster exists and is ACTIVE (those not read yet), 100 a call."""
        todo = list(dict.fromkeys(n for n in names if n not in self.clusters))
        async with anyio.create_task_group() as tg:
            for chunk in _chunks(todo, CLUSTERS_PER_CALL):
                tg.start_soon(self._clusters, chunk)

    async def _clusters(self, chunk: Sequence[str]) -> None:
        async with self._limit:
            response = await self._ecs.describe_clusters(clusters=list(chunk))
        for cluster in response.get("clusters", []):
            status = cluster.get("status", "ACTIVE")
            problem = "" if status == "ACTIVE" else f"cluster {cluster.get('clusterName')!r} is {status}"
            for name in chunk:  # asked by name or ARN: the answer names both
                if name in (cluster.get("clusterName"), cluster.get("clusterArn")):
                    self.clusters[name] = problem
        for name in chunk:
            self.clusters.setdefault(name, f"cluster {name!r} not found")

    async def read_services(self, targets: Iterable[Target]) -> None:
        """Each target's service, or why there is none: clusters first, then 10 services of a
        cluster a call. Targets of a missing cluster get the cluster's problem."""
        by_cluster: dict[str, list[Target]] = {}
        for target in targets:
            if target not in self.services:
                by_cluster.setdefault(target.cluster, []).append(target)
        await self.read_clusters(by_cluster)
        async with anyio.create_task_group() as tg:
            for cluster, services in by_cluster.items():
                if self.clusters[cluster]:
                    for target in services:
                        self.services[target] = self.clusters[cluster]
                    continue
                unique = list(dict.fromkeys(services))
                for chunk in _chunks(unique, SERVICES_PER_CALL):
                    tg.start_soon(self._services, cluster, chunk)

    async def _services(self, cluster: str, targets: Sequence[Target]) -> None:
        async with self._limit:
            try:
                response = await self._ecs.describe_services(
                    cluster=cluster, services=[t.service for t in targets]
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ClusterNotFoundException":
                    raise
                for target in targets:  # deleted since we asked: as if it never was
                    self.services[target] = f"cluster {cluster!r} not found"
                return
        found: dict[str | None, Any] = {}
        for described in response.get("services", []):
            found[described.get("serviceName")] = found[described.get("serviceArn")] = described
        for target in targets:
            service: dict[str, Any] | None = found.get(target.service)
            if service is None or service.get("status") != "ACTIVE":
                status = "" if service is None else f" (it is {service.get('status')})"
                self.services[target] = f"service {target.service!r} not found in cluster {cluster!r}{status}"
            else:
                self.services[target] = dict(service)

    async def read_task_definitions(self, arns: Iterable[str], *, tags: bool = False) -> None:
        """DescribeTaskDefinition once per ARN not read yet (`tags`: with its tags)."""
        include: list[Literal["TAGS"]] = ["TAGS"] if tags else []
        async with anyio.create_task_group() as tg:
            for arn in dict.fromkeys(a for a in arns if a not in self.task_definitions):
                tg.start_soon(self._task_definition, arn, include)

    async def _task_definition(self, arn: str, include: list[Literal["TAGS"]]) -> None:
        async with self._limit:
            try:
                described = (
                    await self._ecs.describe_task_definition(taskDefinition=arn, include=include)
                    if include
                    else await self._ecs.describe_task_definition(taskDefinition=arn)
                )
            except ClientError as exc:
                self.task_definitions[arn] = f"task definition {arn} cannot be read: {error_message(exc)}"
                return
        self.task_definitions[arn] = dict(described)

    def running_arns(self) -> set[str]:
        """The task definitions the services found run (a service on the EXTERNAL deployment
        controller may name none: its task sets do)."""
        return {
            str(s["taskDefinition"])
            for s in self.services.values()
            if isinstance(s, dict) and s.get("taskDefinition")
        }
