"""Keep moto's ECS task list in step with the simulated deployments.

Why: tools that decide "rolled out" by counting RUNNING tasks of the new revision (fabfuel's
`ecs deploy` does) look at list_tasks/describe_tasks, not at deployments. moto only creates
tasks through run_task, which fails for FARGATE+awsvpc, so the simulator places `Task` objects
in the backend itself: per deployment, as many RUNNING and PENDING tasks as its counts say,
each `startedBy` the deployment id and in group `service:NAME`, as ECS does. Callers hold the
simulator's lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from moto.ecs import models as ecs_models
from moto.ecs.exceptions import TaskDefinitionNotFoundException

__all__ = ["ServiceTasks", "new_task", "set_status"]

_KEEP_STOPPED = 50  # per service: ECS shows stopped tasks for a while, we must not grow for ever
_FAILED_TASKS_SHOWN = 10  # per deployment: failedTasks may grow for ever, its task records need not
# moto types these for real task definitions; we hand them duck-typed stand-ins (see _place)
_Task: Any = ecs_models.Task
_Container: Any = ecs_models.Container
_PULL_ERROR = "CannotPullContainerError: pull image manifest has been retried 5 time(s): {image} not found"


def _utc(at: float) -> datetime:
    # moto serialises naive datetimes as UTC
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None)


@dataclass
class ServiceTasks:
    """The tasks the simulator placed for one service, by deployment id."""

    live: dict[str, list[Any]] = field(default_factory=dict)  # desired status RUNNING
    failed_shown: dict[str, int] = field(default_factory=dict)
    stopped: deque[tuple[str, str]] = field(default_factory=deque)  # (cluster name, task arn)

    def sync(self, backend: Any, service: Any, now: float, bad_images: Mapping[str, str]) -> None:
        """Make the backend's tasks match `service.deployments` (counts already advanced).

        `bad_images` names, per deployment id, the image its failed tasks could not pull.
        """
        deployments: list[dict[str, Any]] = service.deployments
        primary_id = deployments[0]["id"] if deployments else "none"
        present = {d["id"] for d in deployments}
        for dep_id in [d for d in self.live if d not in present]:
            for task in self.live.pop(dep_id):
                self._stop(backend, task, now, f"Scaling activity initiated by (deployment {primary_id})")
            self.failed_shown.pop(dep_id, None)
        for dep in deployments:
            self._sync_deployment(backend, service, dep, now, bad_images.get(dep["id"], "image"))
        self._prune(backend)

    def stop_all(self, backend: Any, now: float, reason: str) -> None:
        for tasks in self.live.values():
            for task in tasks:
                self._stop(backend, task, now, reason)
        self.live.clear()
        self._prune(backend)

    def _sync_deployment(
        self, backend: Any, service: Any, dep: dict[str, Any], now: float, bad_image: str
    ) -> None:
        try:
            td = backend.describe_task_definition(dep["taskDefinition"])
        except TaskDefinitionNotFoundException:
            return  # deleted under a live deployment: nothing sensible to place
        # someone may have stopped one of ours (stop_task): forget it, ECS would replace it
        tasks = [t for t in self.live.get(dep["id"], []) if t.desired_status == "RUNNING"]
        running = [t for t in tasks if t.last_status == "RUNNING"]
        pending = [t for t in tasks if t.last_status != "RUNNING"]
        want_running, want_pending = int(dep["runningCount"]), int(dep["pendingCount"])
        while len(running) < want_running:
            task = pending.pop(0) if pending else self._place(backend, service, dep, td, now)
            set_status(task, "RUNNING")
            task.started_at = _utc(now)
            running.append(task)
        while len(pending) < want_pending:
            pending.append(self._place(backend, service, dep, td, now))
        scaled_in = f"Scaling activity initiated by (deployment {dep['id']})"
        while len(running) > want_running:
            self._stop(backend, running.pop(), now, scaled_in)
        while len(pending) > want_pending:
            self._stop(backend, pending.pop(), now, scaled_in)
        self.live[dep["id"]] = running + pending
        # a failed task of a bad image is a STOPPED task with the pull error, as in ECS
        shown = self.failed_shown.get(dep["id"], 0)
        target = min(int(dep.get("failedTasks", 0)), _FAILED_TASKS_SHOWN)
        for _ in range(shown, target):
            task = self._place(backend, service, dep, td, now)
            self._stop(backend, task, now, _PULL_ERROR.format(image=bad_image))
        self.failed_shown[dep["id"]] = max(shown, target)

    def _place(self, backend: Any, service: Any, dep: dict[str, Any], td: Any, now: float) -> Any:
        cluster = backend._get_cluster(service.cluster_name)
        return new_task(
            backend,
            cluster,
            td,
            now,
            group=f"service:{service.name}",
            launch_type=service.launch_type or "",
            started_by=dep["id"],
            platform_version=service.platform_version,
        )

    def _stop(self, backend: Any, task: Any, now: float, reason: str) -> None:
        set_status(task, "STOPPED")
        task.desired_status = "STOPPED"
        task.stopped_reason = reason
        task.stopped_at = _utc(now)
        self.stopped.append((task.cluster_name, task.task_arn))

    def _prune(self, backend: Any) -> None:
        while len(self.stopped) > _KEEP_STOPPED:
            cluster_name, arn = self.stopped.popleft()
            backend.tasks.get(cluster_name, {}).pop(arn, None)


def new_task(
    backend: Any,
    cluster: Any,
    td: Any,
    now: float,
    *,
    group: str,
    launch_type: str,
    started_by: str,
    platform_version: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A PENDING task of `td` in `cluster`, in the backend's task list, one container per definition."""
    # network_mode None: moto's Task would otherwise create an ENI per task in the EC2
    # backend (and demand a subnet); the ENI is not what anyone inspects here.
    shell = SimpleNamespace(arn=td.arn, network_mode=None, container_definitions=td.container_definitions)
    task = _Task(
        cluster,
        shell,
        None,
        None,
        backend=backend,
        group=group,
        launch_type=launch_type,
        overrides=overrides,
        started_by=started_by,
        platform_version=platform_version,
    )
    task._transitions = []  # moto walks a task towards STOPPED on every describe_tasks
    # one container per definition: moto's Task shows only the first
    task.containers = [
        _Container(SimpleNamespace(arn=td.arn, container_definitions=[cd])) for cd in td.container_definitions
    ]
    for container in task.containers:
        container.task_arn = task.task_arn  # moto names the task definition here
    task.cpu, task.memory = td.cpu, td.memory
    task.created_at = _utc(now)
    set_status(task, "PENDING")
    backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    return task


def set_status(task: Any, status: str) -> None:
    task.last_status = status
    for container in task.containers:
        container.last_status = status
