"""What the emulator's side says of a run: when ECS ended each rollout, how soon the tool knew,
how often it looked, when its first change arrived.

Why: a tool's own output cannot tell how late it noticed an end. The simulator fixes each
service deployment's `finishedAt` when the deployment starts (the scheduled instant its state
changes), so the detection lag of a job is the `received_at` of its terminal `--json` event
minus that instant. The request log (`bench.request_log`) gives the first UpdateService (how
long start-up took) and every look at each deployment (the longest gap between two).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError
from botocore.session import Session

from bench.fanout import json_objects
from bench.request_log import looked_at
from bench.scenario import REGION

__all__ = ["detection_lags", "finished_at", "first_update_s", "longest_look_gap_s"]

TERMINAL = frozenset({"succeeded", "baking", "failed", "rolled_back", "timed_out", "skipped"})
Entry = tuple[float, str, list[str]]


def finished_at(endpoint_url: str, session: Session, services: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Each service's newest service deployment's `finishedAt` (epoch seconds), where it has one.
    Call with the emulator's throttling off: this is the harness reading, not the tool."""
    ecs: Any = session.create_client(
        "ecs",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arns: dict[str, str] = {}
    for cluster, service in services:
        try:
            listed = ecs.list_service_deployments(cluster=cluster, service=service)["serviceDeployments"]
        except ClientError:  # a service of another account (the accounts rows): no lag measured
            continue
        if listed:
            arns[str(listed[0]["serviceDeploymentArn"])] = service
    found: dict[str, float] = {}
    ordered = list(arns)
    for start in range(0, len(ordered), 20):
        answer = ecs.describe_service_deployments(serviceDeploymentArns=ordered[start : start + 20])
        for sd in answer.get("serviceDeployments", []):
            if sd.get("finishedAt") is not None:
                found[arns[str(sd["serviceDeploymentArn"])]] = sd["finishedAt"].timestamp()
    return found


def detection_lags(lines: Iterable[tuple[float, str]], finished: Mapping[str, float]) -> list[float]:
    """Seconds from ECS's end of each rollout to the tool's receipt of the job's terminal event."""
    lags: dict[str, float] = {}
    for obj in json_objects(lines):
        service, received = obj.get("service"), obj.get("received_at")
        if obj.get("type") != "event" or obj.get("phase") not in TERMINAL or received is None:
            continue
        if service in finished and service not in lags:
            lags[str(service)] = float(received) - finished[str(service)]
    return list(lags.values())


def first_update_s(entries: Sequence[Entry], started_at: float) -> float | None:
    """Seconds from the tool's start to the first UpdateService the emulator accepted."""
    updates = [at for at, action, _ in entries if action == "UpdateService"]
    return min(updates) - started_at if updates else None


def longest_look_gap_s(entries: Sequence[Entry]) -> float | None:
    """The longest time any one service deployment went between two looks at it; by services
    (DescribeServices) only when no service deployment was looked at (a run following
    `rolloutState`): preflight's and each job's first DescribeServices are not looks at a
    deployment, and a job that waits for its turn (`max_parallel`) would count as a gap."""
    by_arn = looked_at(entries, "DescribeServiceDeployments")
    looks = by_arn or looked_at(entries, "DescribeServices")
    gaps = [later - earlier for times in looks.values() for earlier, later in itertools.pairwise(times)]
    return max(gaps, default=None)
