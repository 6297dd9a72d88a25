"""What ECS itself says of a fleet's service, read with boto3: what `status` must agree with."""

from __future__ import annotations

from typing import Any

import boto3

from tests.fleet import CLUSTERS, REGION


def ecs_verdict(service: str, wanted_image: str, container: str = "app") -> str:
    """`matches`, `rolling_out` or `differs` for service `sN` of a fleet (on cluster c{N % 2}),
    from its PRIMARY deployment: its task definition's image and its rolloutState."""
    ecs: Any = boto3.client("ecs", region_name=REGION)
    cluster = CLUSTERS[int(service[1:]) % len(CLUSTERS)]
    described = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    primary = next(d for d in described["deployments"] if d["status"] == "PRIMARY")
    definition = ecs.describe_task_definition(taskDefinition=primary["taskDefinition"])["taskDefinition"]
    image = {c["name"]: c["image"] for c in definition["containerDefinitions"]}[container]
    if image != wanted_image:
        return "differs"
    return "matches" if primary.get("rolloutState") == "COMPLETED" else "rolling_out"
