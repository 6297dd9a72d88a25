"""ECS's EventBridge events, read from what reaches us (pure).

ECS publishes "ECS Deployment State Change" (and "ECS Service Action", "ECS Task State Change")
on the default bus of each account and region; our rule sends a deployment's end (COMPLETED,
FAILED) to an SQS queue, so each
arrives as an SQS message whose body is EventBridge's envelope (docs/design.md, 'ECS's events').
Envelopes are ECS's format, not ours: they are read leniently (ECS adds fields), and anything
that is not a deployment state change with a deployment id is ignored, never an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEPLOYMENT_STATE_CHANGE",
    "EVENT_PATTERN",
    "DeploymentChange",
    "is_envelope",
    "parse_deployment_change",
]

DEPLOYMENT_STATE_CHANGE = "ECS Deployment State Change"
ENDS = {"SERVICE_DEPLOYMENT_COMPLETED": "completed", "SERVICE_DEPLOYMENT_FAILED": "failed"}
# Only a deployment's end wakes a job: the rule lets nothing else through (an account's task
# state changes alone would be most of the messages, each read, judged and deleted for nothing).
EVENT_PATTERN: dict[str, Any] = {
    "source": ["aws.ecs"],
    "detail-type": [DEPLOYMENT_STATE_CHANGE],
    "detail": {"eventName": list(ENDS)},
}


@dataclass(frozen=True)
class DeploymentChange:
    """ECS's word on one deployment: `name` SERVICE_DEPLOYMENT_IN_PROGRESS / _COMPLETED / _FAILED."""

    event_id: str
    account: str
    region: str
    service_arn: str
    deployment_id: str
    name: str
    reason: str

    @property
    def end(self) -> str | None:
        """ "completed" or "failed" when ECS says the deployment ended, else None."""
        return ENDS.get(self.name)

    @property
    def said(self) -> str:
        """How a job's event quotes it."""
        words = self.name.removeprefix("SERVICE_DEPLOYMENT_").lower().replace("_", " ")
        return f"ECS's event: {words}" + (f" ({self.reason})" if self.reason else "")


def _envelope(body: object) -> dict[str, Any] | None:
    if isinstance(body, dict):
        return body
    if not isinstance(body, str | bytes):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def is_envelope(body: object) -> bool:
    """An EventBridge event from ECS (an SQS body, or decoded), whatever its detail type."""
    data = _envelope(body)
    return data is not None and data.get("source") == "aws.ecs" and "detail-type" in data


def parse_deployment_change(body: object) -> DeploymentChange | None:
    """The deployment state change an SQS body carries; None for anything else."""
    data = _envelope(body)
    if data is None or data.get("source") != "aws.ecs" or data.get("detail-type") != DEPLOYMENT_STATE_CHANGE:
        return None
    detail = data.get("detail")
    if not isinstance(detail, dict):
        return None
    deployment_id, name = detail.get("deploymentId"), detail.get("eventName")
    if not isinstance(deployment_id, str) or not deployment_id or not isinstance(name, str):
        return None
    resources = data.get("resources")
    service_arn = resources[0] if isinstance(resources, list) and resources else ""
    reason = detail.get("reason")
    return DeploymentChange(
        event_id=str(data.get("id") or ""),
        account=str(data.get("account") or ""),
        region=str(data.get("region") or ""),
        service_arn=str(service_arn),
        deployment_id=deployment_id,
        name=name,
        reason=reason if isinstance(reason, str) else "",
    )
