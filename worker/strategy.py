"""ECS's service deployments: which one is ours, and what it says. Pure.

Since 2025 an UpdateService that changes the task definition starts a *service deployment*
whatever the strategy (ROLLING, BLUE_GREEN, LINEAR, CANARY), and ECS says of it what task counts
and `rolloutState` cannot: a blue/green deployment's PRIMARY is COMPLETED once production traffic
has shifted, while the service deployment still bakes (and may yet roll back), and a lifecycle
hook can hold a stage for days. So a job follows its service deployment where the API answers,
and `rolloutState` (`worker.rollout`) only where it does not.

Ours is the one whose target service revision carries the number of the deployment id that
UpdateService returned (`ecs-svc/N` <-> `.../service-revision/cluster/service/N`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from worker.contract import DoneWhen
from worker.rollout import Progress, Rollout, RolloutState

__all__ = [
    "HOOK_STAGES",
    "ROLLING",
    "STILL_GOING",
    "STOPPABLE",
    "bake_total_s",
    "evaluate_service_deployment",
    "matches_deployment",
    "revision_number",
]

ROLLING = "ROLLING"
# ECS accepts StopServiceDeployment only while a deployment is under way.
STOPPABLE = frozenset({"PENDING", "IN_PROGRESS"})
# The stages a lifecycle hook may hold (botocore's DeploymentLifecycleHookStage).
HOOK_STAGES = frozenset(
    {
        "RECONCILE_SERVICE",
        "PRE_SCALE_UP",
        "POST_SCALE_UP",
        "TEST_TRAFFIC_SHIFT",
        "POST_TEST_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
    }
)
# Production traffic is all on the new revision from these stages on.
_SHIFTED_STAGES = frozenset({"BAKE_TIME", "CLEAN_UP"})
# ECS has not said its last word on these.
STILL_GOING = STOPPABLE | {"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED"}


def revision_number(arn_or_id: str) -> str:
    """The number shared by a deployment id (`ecs-svc/N`) and its service revision ARN."""
    return arn_or_id.rsplit("/", 1)[-1]


def matches_deployment(target_revision_arn: str | None, deployment_id: str) -> bool:
    return bool(target_revision_arn) and revision_number(str(target_revision_arn)) == revision_number(
        deployment_id
    )


def bake_total_s(config: Mapping[str, Any]) -> float:
    """Every wait a deployment configuration adds on its own: the bake, and the holds between
    linear steps or after the canary. What `extend_for_bake` adds to a default deadline."""
    minutes = float(config.get("bakeTimeInMinutes") or 0)
    strategy = config.get("strategy") or ROLLING
    if strategy == "LINEAR":
        linear = config.get("linearConfiguration") or {}
        step = float(linear.get("stepPercent") or 0)
        steps = max(0, int(100 // step) - (1 if 100 % step == 0 else 0)) if step > 0 else 0
        minutes += steps * float(linear.get("stepBakeTimeInMinutes") or 0)
    elif strategy == "CANARY":
        minutes += float((config.get("canaryConfiguration") or {}).get("canaryBakeTimeInMinutes") or 0)
    return minutes * 60.0


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


def _hook_for(stage: str | None, hooks: Iterable[Mapping[str, Any]]) -> str | None:
    if stage not in HOOK_STAGES:
        return None
    return next(
        (str(h.get("hookTargetArn")) for h in hooks if stage in (h.get("lifecycleStages") or ())),
        None,
    )


def _progress(sd: Mapping[str, Any], now: float, stage_since: float | None) -> Progress:
    config: Mapping[str, Any] = sd.get("deploymentConfiguration") or {}
    target: Mapping[str, Any] = sd.get("targetServiceRevision") or {}
    stage = sd.get("lifecycleStage")
    since = stage_since if stage_since is not None else _epoch(sd.get("updatedAt"))
    bake_left = None
    if stage == "BAKE_TIME" and since is not None:
        bake_left = max(0.0, float(config.get("bakeTimeInMinutes") or 0) * 60.0 - (now - since))
    hook = _hook_for(stage, config.get("lifecycleHooks") or ())
    weight = target.get("requestedProductionTrafficWeight")
    return Progress(
        service_deployment_arn=str(sd.get("serviceDeploymentArn", "")),
        status=str(sd.get("status", "")),
        strategy=str(config.get("strategy") or ROLLING),
        stage=str(stage) if stage else None,
        traffic_percent=float(weight) if weight is not None else None,
        bake_left_s=bake_left,
        hook=hook,
        hook_since=since if hook else None,
    )


def _state(status: str, stage: str | None, done_when: DoneWhen) -> RolloutState:
    if status == "SUCCESSFUL":
        return RolloutState.COMPLETED
    if status == "ROLLBACK_SUCCESSFUL":
        return RolloutState.ROLLED_BACK
    if status in STILL_GOING:
        shifted = status == "IN_PROGRESS" and stage in _SHIFTED_STAGES
        if shifted and done_when is DoneWhen.TRAFFIC_SHIFTED:
            return RolloutState.TRAFFIC_SHIFTED
        return RolloutState.IN_PROGRESS
    return RolloutState.FAILED  # STOPPED, ROLLBACK_FAILED


def _reason(sd: Mapping[str, Any], status: str) -> str:
    said = str(sd.get("statusReason") or (sd.get("rollback") or {}).get("reason") or "")
    triggered: Sequence[str] = (sd.get("alarms") or {}).get("triggeredAlarmNames") or ()
    if triggered and "alarm" not in said.lower():
        said = f"{said}; alarms in ALARM: {', '.join(triggered)}".lstrip("; ")
    if status == "STOPPED":
        return f"ECS stopped the service deployment: {said or 'no reason given'}"
    if status == "ROLLBACK_FAILED":
        return f"ECS's rollback failed: {said or 'no reason given'}"
    return said


def evaluate_service_deployment(
    sd: Mapping[str, Any],
    previous: str | None,
    *,
    now: float,
    stage_since: float | None = None,
    done_when: DoneWhen = DoneWhen.BAKED,
) -> Rollout:
    """What ECS's service deployment `sd` (a DescribeServiceDeployments item) says of our rollout.

    `stage_since`: when the follower first saw the current stage (ECS's `updatedAt` otherwise);
    `previous`: the revision it replaces, which a rollback puts back.
    """
    status = str(sd.get("status", ""))
    progress = _progress(sd, now, stage_since)
    state = _state(status, progress.stage, done_when)
    target: Mapping[str, Any] = sd.get("targetServiceRevision") or {}
    breaker: Mapping[str, Any] = sd.get("deploymentCircuitBreaker") or {}
    return Rollout(
        state,
        running=int(target.get("runningTaskCount") or 0),
        desired=int(target.get("requestedTaskCount") or 0),
        pending=int(target.get("pendingTaskCount") or 0),
        failed_tasks=int(breaker.get("failureCount") or 0),
        reason=_reason(sd, status),
        primary_task_definition=previous if state is RolloutState.ROLLED_BACK else None,
        progress=progress,
    )
