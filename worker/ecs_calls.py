"""The ECS calls of one job, each refusal turned into a `JobAborted` that says what happened.

Every call that ECS throttles per account draws a token from the shared budget first
(`worker.budget`); the worker's registry allow-list is enforced here, before any call. The
engine (`worker.engine`) sequences these calls and reports them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from worker.aws_errors import error_message
from worker.budget import ApiBudget
from worker.contract import ContainerChange, DeployJob, EventDetails, Phase
from worker.patience import Patience
from worker.registries import refused_images, registry_of
from worker.revisions import family_and_revision, revisions_to_deregister
from worker.strategy import matches_deployment
from worker.taskdef import UnknownContainerError, build_registration, current_images, pending_changes
from worker.throttle import until_not_throttled

if TYPE_CHECKING:
    from types_aiobotocore_ecs import ECSClient

    from worker.looker import Looker

__all__ = [
    "SUPPORTED_CONTROLLER",
    "JobAborted",
    "KnownRevisions",
    "Registration",
    "ServiceCalls",
    "Unavailable",
    "controller_problem",
    "error_message",
]

SUPPORTED_CONTROLLER = "ECS"
T = TypeVar("T")
# Task definitions already read (DescribeTaskDefinition with their tags), by revision ARN: a
# revision never changes, so a job registers from preflight's read instead of reading it again.
KnownRevisions = Mapping[str, Mapping[str, Any]]


async def _within(patience: Patience | None, what: str, call: Callable[[], Awaitable[T]]) -> T:
    """`call()` within the job's deadline (`worker.patience`); as it is without one."""
    return await call() if patience is None else await patience.call(what, call)


class JobAborted(Exception):
    """A step refused the job; its message is the terminal event's message."""

    def __init__(self, phase: Phase, message: str, details: EventDetails | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.details = details or EventDetails()


class Unavailable(Exception):
    """ECS's service-deployments API gave no usable answer for this service (a role without the
    permission, an endpoint that predates the API): the job follows `rolloutState` instead."""


# Errors that say nothing of the API's availability: botocore's retries are spent on them, and
# the job ends through the engine's AWS-error path like any other call's.
_TRANSIENT = frozenset({"ThrottlingException", "TooManyRequestsException", "ServerException"})
_LIST_PAGES = 3  # ours is among the newest: UpdateService just started it
PRUNE_S = 10.0  # deregistering old revisions after a success: never holds the job longer


class Registration(NamedTuple):
    """What `register` did: the new revision (None: nothing to change), the images it changed,
    and the named containers' images in the revision the service will run, as ECS returned it."""

    arn: str | None
    changed: dict[str, str]
    images: tuple[ContainerChange, ...]


def _named_images(
    task_definition: Mapping[str, Any], wanted: Mapping[str, str]
) -> tuple[ContainerChange, ...]:
    images = current_images(task_definition)
    return tuple(ContainerChange(container=name, image=images[name]) for name in wanted if name in images)


def controller_problem(service: Mapping[str, Any]) -> str | None:
    """Why ecs-fanout cannot deploy a service with this deployment controller; None if it can."""
    controller = service.get("deploymentController", {}).get("type", SUPPORTED_CONTROLLER)
    if controller == SUPPORTED_CONTROLLER:
        return None
    how = "deploy it with CodeDeploy" if controller == "CODE_DEPLOY" else "deploy it with its own controller"
    return (
        f"service uses the {controller} deployment controller: {how} (ecs-fanout deploys services on "
        "the ECS controller, with any strategy: ROLLING, BLUE_GREEN, LINEAR, CANARY)"
    )


class ServiceCalls:
    """One ECS client, the shared budget and the allow-list: the calls a job makes."""

    def __init__(
        self,
        ecs: ECSClient,
        *,
        budget: ApiBudget | None = None,
        allowed_registries: Sequence[str] = (),
        known: KnownRevisions | None = None,
    ) -> None:
        self._ecs = ecs
        self._budget = budget
        self._allowed_registries = tuple(allowed_registries)
        self._known: KnownRevisions = {} if known is None else known  # preflight fills it later

    def budget_for(self, job: DeployJob) -> ApiBudget | None:
        return self._budget if job.options.api_budget else None

    async def take(self, job: DeployJob, action: str) -> None:
        """Wait for a token of `action` from the shared budget (when the job uses it)."""
        if (budget := self.budget_for(job)) is not None:
            await budget.take(action)

    async def poll(self, job: DeployJob, patience: Patience | None = None) -> dict[str, Any] | None:
        """The service as it is now (following a deployment); None when it is gone."""
        await self.take(job, "DescribeServices")
        response = await _within(
            patience,
            "DescribeServices",
            lambda: self._ecs.describe_services(cluster=job.target.cluster, services=[job.target.service]),
        )
        services = response.get("services", [])
        return dict(services[0]) if services else None

    async def describe_many(self, cluster: str, services: Sequence[str], *, metered: bool) -> dict[str, Any]:
        """Up to 10 services of `cluster` in one DescribeServices (one token when `metered`):
        each service as ECS returns it, under its name and its ARN; a missing one is absent."""
        if metered and self._budget is not None:
            await self._budget.take("DescribeServices")
        response = await self._ecs.describe_services(cluster=cluster, services=list(services))
        found: dict[str, Any] = {}
        for service in response.get("services", []):
            name = str(service.get("serviceName"))
            if service.get("status") == "ACTIVE" or name not in found:  # a re-created one: its ACTIVE self
                found[name] = found[str(service.get("serviceArn"))] = dict(service)
        return found

    async def describe_deployments_many(self, arns: Sequence[str], *, metered: bool) -> dict[str, Any]:
        """Up to 20 service deployments in one DescribeServiceDeployments (one token when
        `metered`), by ARN; one ECS no longer knows is absent."""
        if metered and self._budget is not None:
            await self._budget.take("DescribeServiceDeployments")
        response = await self._ecs.describe_service_deployments(serviceDeploymentArns=list(arns))
        return {str(sd["serviceDeploymentArn"]): dict(sd) for sd in response.get("serviceDeployments", [])}

    def check_registries(self, job: DeployJob) -> None:
        refused = refused_images((change.image for change in job.changes), self._allowed_registries)
        if refused:
            listed = ", ".join(f"{image} (registry {registry_of(image)})" for image in refused)
            raise JobAborted(
                Phase.FAILED,
                f"refused: {listed} not in this worker's registry allow-list "
                f"({', '.join(self._allowed_registries)}); nothing changed",
            )

    async def describe_service(
        self, job: DeployJob, patience: Patience | None = None, looker: Looker | None = None
    ) -> dict[str, Any]:
        """The job's service before any change; `JobAborted` when it cannot be deployed. With
        `looker`: read with the other jobs' services of its cluster, 10 a call (the token is
        still the job's own, taken first: a job waiting for the budget is "starting", not a job
        that ECS does not answer)."""
        await self.take(job, "DescribeServices")
        try:
            service = await _within(patience, "DescribeServices", lambda: self._service(job, looker))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ClusterNotFoundException":
                raise JobAborted(
                    Phase.FAILED, f"cluster {job.target.cluster!r} not found; nothing changed"
                ) from exc
            raise JobAborted(Phase.FAILED, f"describe_services failed: {error_message(exc)}") from exc
        if service is None or service.get("status") != "ACTIVE":
            raise JobAborted(
                Phase.FAILED,
                f"service {job.target.service!r} not found in cluster {job.target.cluster!r}; "
                "nothing changed",
            )
        if (problem := controller_problem(service)) is not None:
            raise JobAborted(Phase.FAILED, f"{problem}; nothing changed")
        return service

    async def _service(self, job: DeployJob, looker: Looker | None) -> dict[str, Any] | None:
        target = job.target
        if looker is not None:
            return await looker.ask(("DescribeServices", target.cluster), target.service, metered=False)
        found = await self.describe_many(target.cluster, [target.service], metered=False)
        return found.get(target.service)

    async def _task_definition(self, arn: str, patience: Patience | None) -> Mapping[str, Any]:
        """The revision `arn` with its tags: as preflight read it, else read now."""
        known = self._known.get(arn)
        if known is not None:
            return known
        return await _within(
            patience,
            "DescribeTaskDefinition",
            lambda: self._ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]),
        )

    async def register(
        self,
        job: DeployJob,
        current_arn: str,
        deadline: float,
        heartbeat: Callable[[], Awaitable[None]],
        patience: Patience | None = None,
    ) -> Registration:
        """Register the edited revision (none when every named container runs its image)."""
        described = await self._task_definition(current_arn, patience)
        wanted = {change.container: change.image for change in job.changes}
        try:
            todo = pending_changes(described["taskDefinition"], wanted)
        except UnknownContainerError as exc:
            raise JobAborted(Phase.FAILED, f"{exc}; nothing changed") from exc
        if not todo:
            return Registration(None, todo, _named_images(described["taskDefinition"], wanted))
        request = build_registration(described, todo)
        try:
            registered = await until_not_throttled(
                lambda: _within(
                    patience, "RegisterTaskDefinition", lambda: self._ecs.register_task_definition(**request)
                ),
                action="RegisterTaskDefinition",
                deadline=deadline,
                budget=self.budget_for(job),
                heartbeat=heartbeat,
                heartbeat_every_s=job.options.heartbeat_s / 3,
            )
        except ClientError as exc:
            raise JobAborted(Phase.FAILED, f"register_task_definition failed: {error_message(exc)}") from exc
        revision = registered["taskDefinition"]
        return Registration(revision["taskDefinitionArn"], todo, _named_images(revision, wanted))

    async def update(self, job: DeployJob, task_definition_arn: str, patience: Patience | None = None) -> str:
        await self.take(job, "UpdateService")
        try:
            response = await _within(
                patience,
                "UpdateService",
                lambda: self._ecs.update_service(
                    cluster=job.target.cluster, service=job.target.service, taskDefinition=task_definition_arn
                ),
            )
        except ClientError as exc:
            raise JobAborted(
                Phase.FAILED,
                f"update_service failed: {error_message(exc)}; the service still runs its previous revision",
                EventDetails(task_definition_arn=task_definition_arn),
            ) from exc
        deployments = response["service"].get("deployments", [])
        ours = next(
            (
                d
                for d in deployments
                if d.get("status") == "PRIMARY" and d.get("taskDefinition") == task_definition_arn
            ),
            None,
        )
        if ours is None:
            raise JobAborted(Phase.FAILED, "update_service returned no deployment of the new revision")
        return str(ours["id"])

    async def find_service_deployment(
        self, job: DeployJob, deployment_id: str, patience: Patience | None = None
    ) -> str | None:
        """The ARN of the service deployment that started `deployment_id`; None when ECS does not
        list it (yet). Raises `Unavailable` when the API does not answer for this service."""
        token: str | None = None
        for _ in range(_LIST_PAGES):
            await self.take(job, "ListServiceDeployments")
            paging = {"nextToken": token} if token else {}
            try:
                page = await _within(
                    patience,
                    "ListServiceDeployments",
                    lambda paging=paging: self._ecs.list_service_deployments(  # type: ignore[misc]
                        cluster=job.target.cluster, service=job.target.service, **paging
                    ),
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _TRANSIENT:
                    raise
                raise Unavailable(error_message(exc)) from exc
            for brief in page.get("serviceDeployments", []):
                if matches_deployment(brief.get("targetServiceRevisionArn"), deployment_id):
                    return str(brief["serviceDeploymentArn"])
            token = page.get("nextToken")
            if not token:
                return None
        return None

    async def describe_service_deployment(
        self, job: DeployJob, arn: str, patience: Patience | None = None
    ) -> dict[str, Any] | None:
        """ECS's service deployment `arn` now; None when ECS no longer knows it."""
        await self.take(job, "DescribeServiceDeployments")
        response = await _within(
            patience,
            "DescribeServiceDeployments",
            lambda: self._ecs.describe_service_deployments(serviceDeploymentArns=[arn]),
        )
        found = response.get("serviceDeployments", [])
        return dict(found[0]) if found else None

    async def stop_service_deployment(
        self, job: DeployJob, arn: str, patience: Patience | None = None
    ) -> str | None:
        """Ask ECS to roll service deployment `arn` back; None when it took the request, else
        ECS's refusal (the deployment already ended, the API is not available...)."""
        await self.take(job, "StopServiceDeployment")
        try:
            await _within(
                patience,
                "StopServiceDeployment",
                lambda: self._ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK"),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _TRANSIENT:
                raise
            return error_message(exc)
        return None

    async def prune(self, job: DeployJob, live: str, previous: str | None) -> str:
        """Deregister revisions beyond `keep_revisions` (never `live` or `previous`): a sentence.

        The rollout has succeeded by now: a refusal here is reported, it does not fail the job.
        """
        assert job.options.keep_revisions is not None
        family = family_and_revision(live)[0]
        doomed: list[str] = []
        with anyio.move_on_after(PRUNE_S) as waited:
            try:
                protected = [live] + ([previous] if previous else [])
                doomed = await self._deregister_old(job, family, job.options.keep_revisions, protected)
            except (ClientError, BotoCoreError) as exc:
                return f"deregistering old revisions of {family} stopped: {exc}"
        if waited.cancelled_caught:
            return "deregistering old revisions stopped: no answer from ECS in time"
        if not doomed:
            return f"no old revisions of {family} to deregister"
        revisions = ", ".join(str(family_and_revision(arn)[1]) for arn in doomed)
        return f"deregistered {len(doomed)} old revisions of {family} ({revisions})"

    async def _deregister_old(
        self, job: DeployJob, family: str, keep: int, protected: list[str]
    ) -> list[str]:
        """The revisions of `family` beyond the newest `keep` (never `protected`), deregistered."""
        active: list[str] = []
        async for page in self._ecs.get_paginator("list_task_definitions").paginate(
            familyPrefix=family, status="ACTIVE"
        ):
            active += page.get("taskDefinitionArns", [])
        doomed = revisions_to_deregister(active, family, keep, protected)
        for arn in doomed:
            await self.take(job, "DeregisterTaskDefinition")
            await self._ecs.deregister_task_definition(taskDefinition=arn)
        return doomed
