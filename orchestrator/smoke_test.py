"""A gate's smoke test: one one-off ECS task (RunTask) that must stop with exit code 0.

The task runs a task definition (the wave's new revision of a service, or one the spec names)
in a cluster, with the spec's launch type, awsvpc network configuration and, if given, a
command for its container. It is followed with DescribeTasks (PROVISIONING, PENDING, RUNNING,
..., STOPPED, each said as it comes) until it stops or the smoke test's timeout, after which
it is stopped (StopTask) and the gate stops the run. Its end says the container's exit code and
ECS's stop reason, and where its logs are when its task definition sends them to CloudWatch
Logs (awslogs: the group, and the stream `PREFIX/CONTAINER/TASK_ID`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from orchestrator.gate_events import GateDetails
from orchestrator.gates import log_location, smoke_verdict
from orchestrator.waves import SmokeTest
from worker.aws_errors import error_message

__all__ = ["SmokeResult", "run_smoke_test"]

POLL_MIN_S, POLL_MAX_S = 0.5, 2.0  # a smoke test is short: its end should be seen at once

Said = Callable[[str, GateDetails], Awaitable[None]]  # a new state of the task, as it comes


@dataclass(frozen=True)
class SmokeResult:
    passed: bool
    message: str
    details: GateDetails


def _network(smoke: SmokeTest) -> dict[str, Any]:
    if not smoke.subnets:
        return {}
    vpc: dict[str, Any] = {
        "subnets": list(smoke.subnets),
        "assignPublicIp": "ENABLED" if smoke.assign_public_ip else "DISABLED",
    }
    if smoke.security_groups:
        vpc["securityGroups"] = list(smoke.security_groups)
    return {"networkConfiguration": {"awsvpcConfiguration": vpc}}


def _overrides(smoke: SmokeTest) -> dict[str, Any]:
    if smoke.command is None or smoke.container is None:
        return {}
    return {"overrides": {"containerOverrides": [{"name": smoke.container, "command": list(smoke.command)}]}}


def _logs_said(details: GateDetails) -> str:
    if details.log_group is None:
        return "no CloudWatch logs (its task definition has no awslogs configuration)"
    stream = f", stream {details.log_stream}" if details.log_stream else ""
    return f"logs: CloudWatch Logs group {details.log_group}{stream} ({details.log_region})"


async def run_smoke_test(
    ecs: Any, smoke: SmokeTest, task_definition: str, started_by: str, said: Said
) -> SmokeResult:
    """Run the task and follow it to its end; never raises for what AWS answers."""
    try:
        return await _run(ecs, smoke, task_definition, started_by, said)
    except (ClientError, BotoCoreError) as exc:
        return SmokeResult(False, f"smoke test: AWS refused it: {error_message(exc)}", GateDetails())


async def _run(ecs: Any, smoke: SmokeTest, task_definition: str, started_by: str, said: Said) -> SmokeResult:
    described = (await ecs.describe_task_definition(taskDefinition=task_definition))["taskDefinition"]
    arn = described["taskDefinitionArn"]
    container = smoke.container or described["containerDefinitions"][0]["name"]
    answer = await ecs.run_task(
        cluster=smoke.cluster,
        taskDefinition=arn,
        count=1,
        launchType=smoke.launch_type,
        startedBy=started_by[:128],
        **_overrides(smoke),
        **_network(smoke),
    )
    if not answer.get("tasks"):
        failures = "; ".join(
            f"{f.get('arn', '')} {f.get('reason', '')}".strip() for f in answer.get("failures", [])
        )
        return SmokeResult(
            False, f"smoke test: ECS started no task ({failures or 'no reason given'})", GateDetails()
        )
    task_arn = answer["tasks"][0]["taskArn"]
    logs = log_location(described, container, task_arn, smoke.region)
    details = GateDetails(
        task_arn=task_arn,
        log_group=logs[0] if logs else None,
        log_stream=logs[1] if logs else None,
        log_region=logs[2] if logs else None,
    )
    name = arn.rsplit("/", 1)[-1]
    await said(f"task {task_arn.rsplit('/', 1)[-1]} of {name} started in {smoke.cluster}", details)
    return await _follow(ecs, smoke, container, task_arn, details, said)


async def _follow(
    ecs: Any, smoke: SmokeTest, container: str, task_arn: str, details: GateDetails, said: Said
) -> SmokeResult:
    deadline = time.monotonic() + smoke.timeout_s
    poll = min(POLL_MAX_S, max(POLL_MIN_S, smoke.timeout_s / 20))
    last = ""
    while time.monotonic() < deadline:
        await anyio.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        tasks = (await ecs.describe_tasks(cluster=smoke.cluster, tasks=[task_arn])).get("tasks") or []
        if not tasks:
            continue
        verdict = smoke_verdict(tasks[0], container)
        if verdict.done:
            ended = details.model_copy(
                update={"exit_code": verdict.exit_code, "stop_reason": verdict.stop_reason}
            )
            return SmokeResult(verdict.passed, f"{verdict.message}; {_logs_said(ended)}", ended)
        if verdict.message != last:
            last = verdict.message
            await said(verdict.message, details)
    reason = f"ecs-fanout: smoke test timed out after {smoke.timeout_s:g}s"
    await ecs.stop_task(cluster=smoke.cluster, task=task_arn, reason=reason)
    return SmokeResult(False, f"{reason}: task stopped; {_logs_said(details)}", details)
