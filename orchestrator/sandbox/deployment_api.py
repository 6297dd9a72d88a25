"""ECS's ListServiceDeployments, DescribeServiceDeployments and StopServiceDeployment.

Why here: moto 5.2.5 implements none of them. `moto_hooks` routes the three actions to the
simulator that drives the backend, which brings the services up to now and hands its records
(`service_deployments`) to these functions: they check the request as ECS does, filter, page,
and answer in ECS's shapes, or with ECS's errors.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from moto.core.exceptions import JsonRESTError
from moto.ecs.exceptions import ECSException

from orchestrator.sandbox.service_deployments import STOPPABLE, Revision, ServiceDeployment

__all__ = ["ACTIONS", "ServiceDeploymentRecords", "brief", "describe", "serve", "unknown_operation"]

ACTIONS = ("ListServiceDeployments", "DescribeServiceDeployments", "StopServiceDeployment")
_DESCRIBE_MAX = 20
_LIST_DEFAULT, _LIST_MAX = 20, 100
_ROLLED_BACK = frozenset({"ROLLBACK_IN_PROGRESS", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"})
Found = tuple[Any, ServiceDeployment]  # (moto's Service, its service deployment)


class ServiceDeploymentRecords(Protocol):
    """What the actions read and change (the simulator); each brings the service up to now."""

    def service_deployments_of(self, backend: Any, cluster: str, service: str) -> list[ServiceDeployment]:
        """Oldest first; raises moto's ClusterNotFound/ServiceNotFound exceptions."""
        ...

    def find_service_deployment(self, backend: Any, arn: str) -> Found | None: ...

    def stop_service_deployment(
        self, backend: Any, service: Any, record: ServiceDeployment, stop_type: str
    ) -> None: ...


def unknown_operation(action: str) -> JsonRESTError:
    """What an ECS endpoint that predates an action answers (HTTP 400; not an error of ECS's
    model, so not an ECSException, which moto would warn about)."""
    return JsonRESTError("UnknownOperationException", f"Unknown operation {action}")


def _invalid(message: str) -> ECSException:
    return ECSException("InvalidParameterException", message)


def serve(records: ServiceDeploymentRecords, backend: Any, action: str, params: Mapping[str, Any]) -> Any:
    """The answer to one of `ACTIONS`."""
    if action == "ListServiceDeployments":
        return _list(records, backend, params)
    if action == "DescribeServiceDeployments":
        return _describe(records, backend, params)
    if action == "StopServiceDeployment":
        return _stop(records, backend, params)
    raise unknown_operation(action)


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def _page_start(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error):
        raise _invalid("Invalid nextToken.") from None


def _list(records: ServiceDeploymentRecords, backend: Any, params: Mapping[str, Any]) -> Any:
    max_results = int(params.get("maxResults") or _LIST_DEFAULT)
    if not 1 <= max_results <= _LIST_MAX:
        raise _invalid(f"maxResults must be between 1 and {_LIST_MAX}.")
    found = records.service_deployments_of(backend, params.get("cluster") or "default", params["service"])
    statuses = set(params.get("status") or ())
    created = params.get("createdAt") or {}
    after = _epoch(created["after"]) if created.get("after") is not None else None
    before = _epoch(created["before"]) if created.get("before") is not None else None
    matching = [
        record
        for record in reversed(found)  # newest first
        if (not statuses or record.status in statuses)
        and (after is None or record.created_at >= after)
        and (before is None or record.created_at <= before)
    ]
    start = _page_start(params.get("nextToken"))
    page = matching[start : start + max_results]
    answer: dict[str, Any] = {"serviceDeployments": [brief(record) for record in page]}
    if start + max_results < len(matching):
        answer["nextToken"] = base64.urlsafe_b64encode(str(start + max_results).encode()).decode()
    return answer


def _describe(records: ServiceDeploymentRecords, backend: Any, params: Mapping[str, Any]) -> Any:
    arns = list(params.get("serviceDeploymentArns") or ())
    if not arns or len(arns) > _DESCRIBE_MAX:
        raise _invalid(f"serviceDeploymentArns must hold 1 to {_DESCRIBE_MAX} ARNs.")
    described: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for arn in dict.fromkeys(arns):
        found = records.find_service_deployment(backend, arn)
        if found is None:
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            described.append(describe(found[1]))
    return {"serviceDeployments": described, "failures": failures}


def _stop(records: ServiceDeploymentRecords, backend: Any, params: Mapping[str, Any]) -> Any:
    arn = str(params["serviceDeploymentArn"])
    stop_type = str(params.get("stopType") or "ROLLBACK")
    if stop_type not in ("ROLLBACK", "ABORT"):
        raise _invalid("stopType must be ROLLBACK or ABORT.")
    found = records.find_service_deployment(backend, arn)
    if found is None:
        raise ECSException("ServiceDeploymentNotFoundException", f"Service deployment {arn} not found.")
    service, record = found
    if record.status not in STOPPABLE:
        raise ECSException(
            "ConflictException",
            f"Service deployment {arn} is {record.status}: only a PENDING or IN_PROGRESS one can be stopped.",
        )
    records.stop_service_deployment(backend, service, record, stop_type)
    return {"serviceDeploymentArn": arn}


# --- what ECS answers of a service deployment ------------------------------------------------


def _utc(at: float | None) -> datetime | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).replace(tzinfo=None)  # moto: naive UTC


def _present(found: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in found.items() if value is not None}


def brief(record: ServiceDeployment) -> dict[str, Any]:
    """A ServiceDeploymentBrief (ListServiceDeployments)."""
    return _present(
        {
            "serviceDeploymentArn": record.arn,
            "serviceArn": record.service_arn,
            "clusterArn": record.cluster_arn,
            "createdAt": _utc(record.created_at),
            "startedAt": _utc(record.started_at),
            "finishedAt": _utc(record.finished_at),
            "targetServiceRevisionArn": record.target.arn,
            "status": record.status,
            "statusReason": record.status_reason,
        }
    )


def describe(record: ServiceDeployment) -> dict[str, Any]:
    """A ServiceDeployment (DescribeServiceDeployments). The source revisions share what
    traffic the target does not get (the first, newest, of them holds it)."""
    traffic, test_traffic = _traffic(record)
    sources = [
        _summary(source, 100.0 - traffic, 100.0 - test_traffic) if i == 0 else _summary(source, 0.0, 0.0)
        for i, source in enumerate(record.sources)
    ]
    rollback = record.rollback
    return _present(
        {
            **brief(record),
            "updatedAt": _utc(record.updated_at),
            "stoppedAt": _utc(record.stopped_at),
            "lifecycleStage": record.stage_name,
            "deploymentConfiguration": record.config,
            "targetServiceRevision": _summary(record.target, traffic, test_traffic),
            "sourceServiceRevisions": sources,
            "deploymentCircuitBreaker": _breaker_status(record),
            "alarms": _alarm_status(record),
            "rollback": {**rollback, "startedAt": _utc(rollback["startedAt"])} if rollback else None,
        }
    )


def _traffic(record: ServiceDeployment) -> tuple[float, float]:
    """(production, test) traffic % the target revision is asked to get now."""
    if record.status in _ROLLED_BACK or record.stage < 0:
        return 0.0, 0.0
    stage = record.schedule.stages[record.stage]
    return stage.traffic, stage.test_traffic


def _summary(revision: Revision, traffic: float, test_traffic: float) -> dict[str, Any]:
    deployment = revision.deployment
    return {
        "arn": revision.arn,
        "requestedTaskCount": int(deployment.get("desiredCount", 0)),
        "runningTaskCount": int(deployment.get("runningCount", 0)),
        "pendingTaskCount": int(deployment.get("pendingCount", 0)),
        "requestedProductionTrafficWeight": float(traffic),
        "requestedTestTrafficWeight": float(test_traffic),
    }


def _watch_status(record: ServiceDeployment, enabled: bool, triggered: bool, watching: bool) -> str:
    if not enabled:
        return "DISABLED"
    if triggered:
        return "TRIGGERED"
    return "MONITORING" if watching and record.status in STOPPABLE else "MONITORING_COMPLETE"


def _breaker_status(record: ServiceDeployment) -> dict[str, Any]:
    """The circuit breaker watches SCALE_UP: it trips at half the desired count (3..200)."""
    target = record.target.deployment
    enabled = bool((record.config.get("deploymentCircuitBreaker") or {}).get("enable"))
    return {
        "status": _watch_status(record, enabled, record.breaker_tripped, not record.rolled_out),
        "failureCount": int(target.get("failedTasks", 0)),
        "threshold": max(3, min(200, math.ceil(int(target.get("desiredCount", 0)) / 2))),
    }


def _alarm_status(record: ServiceDeployment) -> dict[str, Any] | None:
    """Alarms watch from SCALE_UP to the end of BAKE_TIME; absent when none are configured."""
    config = record.config.get("alarms")
    if not config:
        return None
    watching = record.stage < record.schedule.index("CLEAN_UP")
    return {
        "status": _watch_status(record, bool(config.get("enable")), bool(record.triggered_alarms), watching),
        "alarmNames": list(config.get("alarmNames") or ()),
        "triggeredAlarmNames": list(record.triggered_alarms),
    }
