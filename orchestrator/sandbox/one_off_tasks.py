"""One-off ECS tasks (RunTask) that run on a schedule, for the sandbox's smoke tests.

Why: moto 5.2.5's `run_task` answers HTTP 500 for FARGATE with awsvpc (it creates an ENI in a
subnet that does not exist) and cannot place EC2 tasks without container instances, while a
wave's smoke test runs exactly such a task and waits for its exit code. So the simulator takes
RunTask over (`moto_hooks`): it places the tasks itself (`ecs_tasks.new_task`, the same shape
as a service's) and walks each through PROVISIONING -> PENDING -> RUNNING -> STOPPED on a
schedule fixed when it starts (`RolloutScenario.task_s`), computed when DescribeTasks reads it.
At STOPPED each container has an exit code: 1 for a container whose command (the override's,
else its definition's) or image matches one of `RolloutScenario.failing_tasks` (fnmatch
patterns), 0 for the others; the task's stop reason is ECS's for an essential container that
exited. A task stopped with StopTask before its end keeps ECS's `UserInitiated` stop.
The schedule lives on moto's backend object, so a moto reset drops it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.sandbox.ecs_tasks import new_task, set_status

__all__ = ["OneOffTasks", "TaskPlan", "exit_codes"]

_ATTR = "_ecs_fanout_one_off"
_EXITED = "Essential container in task exited"
_KILLED = 137  # SIGKILL's exit code, after StopTask's grace period


@dataclass
class TaskPlan:
    """A one-off task's fate, fixed when it starts."""

    started_at: float
    run_s: float
    exit_codes: dict[str, int]  # container name -> exit code at the end
    done: bool = False


def _commands(task: Any, td: Any) -> dict[str, str]:
    """Each container's command as one string: the override's, else its definition's."""
    commands = {str(cd.get("name")): " ".join(cd.get("command") or []) for cd in td.container_definitions}
    for override in (task.overrides or {}).get("containerOverrides") or []:
        if override.get("command") is not None:
            commands[str(override.get("name"))] = " ".join(override["command"])
    return commands


def exit_codes(task: Any, td: Any, failing: tuple[str, ...]) -> dict[str, int]:
    """1 for a container whose command or image matches a failing pattern, else 0."""
    images = {str(cd.get("name")): str(cd.get("image", "")) for cd in td.container_definitions}
    codes = {}
    for name, command in _commands(task, td).items():
        bad = any(
            fnmatch.fnmatchcase(text, p) for p in failing for text in (command, images.get(name, "")) if text
        )
        codes[name] = 1 if bad else 0
    return codes


class OneOffTasks:
    """The simulator's side of RunTask and DescribeTasks (a mixin of `RolloutSimulator`)."""

    _clock: Any
    scenario: Any

    def on_run_task(self, backend: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        names = (
            "cluster_str",
            "task_definition_str",
            "count",
            "overrides",
            "started_by",
            "tags",
            "launch_type",
            "networking_configuration",
            "group",
            "platform_version",
        )
        given = dict(zip(names, args, strict=False)) | kwargs
        cluster = backend._get_cluster(given.get("cluster_str") or "default")
        td = backend.describe_task_definition(given["task_definition_str"])
        now = self._clock()
        plans: dict[str, TaskPlan] = backend.__dict__.setdefault(_ATTR, {})
        tasks = []
        for _ in range(int(given.get("count") or 1)):
            task = new_task(
                backend,
                cluster,
                td,
                now,
                group=given.get("group") or f"family:{td.family}",
                launch_type=given.get("launch_type") or "FARGATE",
                started_by=given.get("started_by") or "",
                platform_version=given.get("platform_version"),
                overrides=given.get("overrides"),
            )
            task.tags = given.get("tags") or []
            set_status(task, "PROVISIONING")
            for container in task.containers:
                container.exitCode = None
            plans[task.task_arn] = TaskPlan(
                now, self.scenario.task_s, exit_codes(task, td, self.scenario.failing_tasks)
            )
            tasks.append(task)
        return tasks

    def on_read_tasks(self, backend: Any) -> None:
        """Bring every one-off task up to now (its schedule, or the StopTask that ended it)."""
        plans: dict[str, TaskPlan] = backend.__dict__.get(_ATTR, {})
        now = self._clock()
        for tasks in backend.tasks.values():
            for arn, task in tasks.items():
                plan = plans.get(arn)
                if plan is not None and not plan.done:
                    _advance(task, plan, now)


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC).replace(tzinfo=None)  # moto serialises naive UTC


def _advance(task: Any, plan: TaskPlan, now: float) -> None:
    if task.desired_status == "STOPPED":  # StopTask came first
        plan.done = True
        task.stop_code = "UserInitiated"
        task.stopped_at = task.execution_stopped_at = _utc(now)
        for container in task.containers:
            container.exitCode = _KILLED
        set_status(task, "STOPPED")
        return
    elapsed = now - plan.started_at
    if elapsed >= plan.run_s:
        plan.done = True
        at = plan.started_at + plan.run_s
        task.desired_status = "STOPPED"
        task.stopped_reason = _EXITED
        task.stop_code = "EssentialContainerExited"
        task.stopping_at = task.stopped_at = task.execution_stopped_at = _utc(at)
        set_status(task, "STOPPED")
        for container in task.containers:
            container.exitCode = plan.exit_codes.get(container.name, 0)
        return
    status = (
        "RUNNING"
        if elapsed >= 0.4 * plan.run_s
        else "PENDING"
        if elapsed >= 0.2 * plan.run_s
        else "PROVISIONING"
    )
    if status == "RUNNING" and task.last_status != "RUNNING":
        task.started_at = _utc(plan.started_at + 0.4 * plan.run_s)
    set_status(task, status)
