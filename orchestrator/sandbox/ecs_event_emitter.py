"""ECS's EventBridge events, emitted by the emulator when the simulated deployments change.

Why: moto's ECS sends no events, and AWS refuses custom `put_events` with an `aws.*` source, so
a test bed of ECS's events must emit them from inside. The rollout simulator computes a
deployment's state lazily, when it is read; a ticker (a thread, every `TICK_S`) brings every
simulated service up to now, as a read would, and puts an "ECS Deployment State Change" event
on the default bus of the service's account and region (moto's events backend, called directly:
its rules deliver to SQS targets whose pattern matches) for each change of a deployment's state.

A deployment's state, as ECS's events name it: SERVICE_DEPLOYMENT_IN_PROGRESS while it rolls out
(and while its service deployment still bakes), SERVICE_DEPLOYMENT_COMPLETED once done,
SERVICE_DEPLOYMENT_FAILED once its rollout failed or its service deployment was rolled back
or stopped. Each (deployment, state) is emitted once (docs/design.md, 'ECS's events').
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from moto.events.models import events_backends

from orchestrator.sandbox import moto_hooks
from orchestrator.sandbox.moto_hooks import LOCK

__all__ = ["DETAIL_TYPE", "TICK_S", "EcsEventEmitter", "deployment_event"]

log = logging.getLogger(__name__)

TICK_S = 0.03
DETAIL_TYPE = "ECS Deployment State Change"
_STATE_ATTR = "_ecs_fanout_rollout"  # the simulator's state on a moto Service
_FAILED_STATUSES = ("ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED", "STOPPED", "ROLLBACK_IN_PROGRESS")

Change = tuple[str, str, str, str, str, float]  # account, region, service ARN, deployment id, name, at


def deployment_event(
    service_arn: str, deployment_id: str, name: str, at: float, reason: str
) -> dict[str, Any]:
    """One `PutEvents` entry shaped like ECS's "ECS Deployment State Change" (pure)."""
    detail = {
        "eventType": "ERROR" if name.endswith("FAILED") else "INFO",
        "eventName": name,
        "deploymentId": deployment_id,
        "updatedAt": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "reason": reason,
    }
    return {
        "Source": "aws.ecs",
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail),
        "Resources": [service_arn],
        "Time": at,
    }


def _reason(deployment_id: str, name: str, rollout_reason: str | None) -> str:
    if name == "SERVICE_DEPLOYMENT_COMPLETED":
        return f"ECS deployment {deployment_id} completed."
    if name == "SERVICE_DEPLOYMENT_FAILED":
        return rollout_reason or f"ECS deployment {deployment_id} failed."
    return f"ECS deployment {deployment_id} in progress."


def _state_name(deployment: dict[str, Any], record_status: str | None) -> str:
    rollout = deployment.get("rolloutState")
    if rollout == "FAILED" or record_status in _FAILED_STATUSES:
        return "SERVICE_DEPLOYMENT_FAILED"
    if rollout == "COMPLETED" and record_status in (None, "SUCCESSFUL"):
        return "SERVICE_DEPLOYMENT_COMPLETED"
    return "SERVICE_DEPLOYMENT_IN_PROGRESS"


class EcsEventEmitter:
    """The ticker: `start()`/`stop()` or a context manager. `emitted` counts the events put."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self._tick_s = tick_s
        self._seen: dict[tuple[str, str, str], str] = {}  # (account, region, deployment id) -> name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.emitted = 0

    def start(self) -> EcsEventEmitter:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="ecs-event-emitter", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> EcsEventEmitter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stopping.wait(self._tick_s):
            try:
                self.tick()
            except Exception:  # a test bed's ticker must outlive one bad tick (e.g. a reset under it)
                log.debug("ECS event emitter: tick failed", exc_info=True)

    def tick(self) -> int:
        """Advance every simulated service to now and emit its deployments' changes; how many.

        Nothing while no EventBridge rule exists anywhere: nobody could receive the events, and a
        tick holds the simulator's lock over every service (a test bed of thousands of them)."""
        if not _any_rule():
            return 0
        changes: list[tuple[str, str, dict[str, Any]]] = []
        with LOCK:
            alive: set[tuple[str, str, str]] = set()
            for backend in moto_hooks.ecs_backends():
                driver = moto_hooks.driver_for(backend)
                if driver is None:
                    continue
                for service in list(backend.services.values()):
                    if getattr(service, _STATE_ATTR, None) is None or service.status != "ACTIVE":
                        continue
                    if _in_flight(service):  # a settled service has nothing to advance
                        driver.on_read(backend, service)
                    # what a client's read may have changed since the last tick is said too
                    changes += self._changes(backend, service, alive)
            for gone in set(self._seen) - alive:  # a reset, or a deployment ECS dropped
                del self._seen[gone]
        for account, region, entry in changes:
            try:
                events_backends[account][region].put_events([entry])
                self.emitted += 1
            except Exception:
                log.debug("ECS event emitter: put_events failed", exc_info=True)
        return len(changes)

    def _changes(
        self, backend: Any, service: Any, alive: set[tuple[str, str, str]]
    ) -> list[tuple[str, str, dict[str, Any]]]:
        account, region = backend.account_id, backend.region_name
        state = getattr(service, _STATE_ATTR)
        by_deployment = {record.target.deployment["id"]: record for record in state.records.values()}
        found: list[tuple[str, str, dict[str, Any]]] = []
        for deployment in list(service.deployments):
            deployment_id = str(deployment["id"])
            key = (account, region, deployment_id)
            alive.add(key)
            record = by_deployment.get(deployment_id)
            name = _state_name(deployment, record.status if record is not None else None)
            if self._seen.get(key) == name:
                continue
            self._seen[key] = name
            failed_rollout = deployment.get("rolloutState") == "FAILED"
            reason = deployment.get("rolloutStateReason") if failed_rollout else None
            reason = reason or (record.status_reason if record is not None else None)
            at = time.time()
            entry = deployment_event(
                service.arn, deployment_id, name, at, _reason(deployment_id, name, reason)
            )
            found.append((account, region, entry))
        # A deployment that left service.deployments (its rollback done) may have ended meanwhile.
        for deployment_id, record in by_deployment.items():
            key = (account, region, deployment_id)
            if key in alive:
                continue
            alive.add(key)
            name = (
                "SERVICE_DEPLOYMENT_COMPLETED"
                if record.status == "SUCCESSFUL"
                else "SERVICE_DEPLOYMENT_FAILED"
            )
            if not record.terminal or self._seen.get(key) == name:
                continue
            self._seen[key] = name
            reason = _reason(deployment_id, name, record.status_reason)
            found.append(
                (account, region, deployment_event(service.arn, deployment_id, name, time.time(), reason))
            )
        return found


def _in_flight(service: Any) -> bool:
    """Whether the simulator may still move one of the service's deployments (advancing a settled
    service costs the same: a test bed of 1,000 of them would hold the lock for every tick)."""
    state = getattr(service, _STATE_ATTR)
    return any(not record.terminal for record in state.records.values()) or any(
        deployment.get("rolloutState") == "IN_PROGRESS" for deployment in service.deployments
    )


def _any_rule() -> bool:
    """Whether any account and region has an EventBridge rule (BackendDict's accessors would
    create missing backends: read the dicts as they are)."""
    for per_account in list(dict.values(events_backends)):
        for backend in list(dict.values(per_account)):
            if any(bus.rules for bus in list(backend.event_buses.values())):
                return True
    return False
