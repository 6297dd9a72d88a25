"""Putting services back: `--all-or-nothing` and `rollback RUN_ID`, end to end through the CLI."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from pydantic import ValidationError

from orchestrator.sandbox import AwsEmulator
from tests import fault_tally
from tests.cli import run_cli
from tests.fleet import REGION, Fleet, Fleets
from worker.contract import DeployJob


def revisions_in_use(fleet: Fleet) -> dict[str, str]:
    ecs: Any = boto3.client("ecs", region_name=REGION)
    running = {}
    for cluster, names in fleet.services_by_cluster().items():
        for service in ecs.describe_services(cluster=cluster, services=names)["services"]:
            running[service["serviceName"]] = service["taskDefinition"].rsplit("/", 1)[-1]
    return running


def summaries(stdout: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, stdout.splitlines()) if line["type"] == "summary"]


def test_all_or_nothing_puts_all_ten_back_when_one_fails(fleet: Fleets, redis_url: str) -> None:
    ten = fleet(10, bad=3, heartbeat=None)

    result = run_cli(str(ten.path), "--json", "--all-or-nothing", redis_url=redis_url, timeout=180)

    assert result.returncode == 1, result.stderr
    assert "--all-or-nothing" in result.stderr
    first, revert = summaries(result.stdout)
    assert sorted(r["status"] for r in first["results"]) == ["rolled_back"] + ["succeeded"] * 9
    # Said per service: the nine that succeeded are put back; the rolled-back one already was
    # (`skipped`), or ECS's own rollback to it is still going and the revert follows it to its end.
    statuses = {r["service"]: r["status"] for r in revert["results"]}
    assert statuses.pop("s3") in {"skipped", "succeeded"}
    assert statuses == {f"s{i}": "succeeded" for i in range(10) if i != 3}
    assert revisions_in_use(ten) == {f"s{i}": f"s{i}:1" for i in range(10)}
    fault_tally.record(
        "--all-or-nothing, one bad image among 10",
        faults=1,
        jobs=len(first["results"]) + len(revert["results"]),
        duplicate_registrations=fault_tally.duplicate_registrations([f"s{i}" for i in range(10)], REGION),
    )


def test_rollback_of_a_past_run(fleet: Fleets, redis_url: str) -> None:
    three = fleet(3, heartbeat=None)
    deployed = run_cli(str(three.path), "--json", redis_url=redis_url, timeout=180)
    assert deployed.returncode == 0, deployed.stderr
    assert revisions_in_use(three) == {f"s{i}": f"s{i}:2" for i in range(3)}
    run_id = json.loads(deployed.stdout.splitlines()[0])["run_id"]

    rolled = run_cli("rollback", run_id, "--json", redis_url=redis_url, timeout=180)

    assert rolled.returncode == 0, rolled.stderr
    [summary] = summaries(rolled.stdout)
    # A revert's line names the revision it put back in a field of its own, not as an image.
    assert {(r["service"], r["status"], r["revision"], r["image"]) for r in summary["results"]} == {
        (f"s{i}", "succeeded", f"s{i}:1", None) for i in range(3)
    }
    assert revisions_in_use(three) == {f"s{i}": f"s{i}:1" for i in range(3)}


def test_rollback_of_an_unknown_run_is_refused(aws: AwsEmulator, redis_url: str) -> None:
    result = run_cli("rollback", "20200101T000000Z-000000", redis_url=redis_url, timeout=180)
    assert result.returncode == 2
    assert "unknown" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("fields", "valid"),
    [
        ({"changes": [{"container": "app", "image": "r/app:2"}]}, True),
        ({"revision": "arn:aws:ecs:us-east-1:123456789012:task-definition/s:1"}, True),
        ({}, False),
        ({"changes": [{"container": "app", "image": "r/app:2"}], "revision": "s:1"}, False),
    ],
)
def test_a_job_changes_containers_or_puts_back_a_revision(fields: dict[str, Any], valid: bool) -> None:
    data = {"run_id": "r", "job_id": "r:1", "target": {"cluster": "c", "service": "s"}, **fields}
    if valid:
        assert DeployJob.model_validate(data).model_dump(include=set(fields)) == fields | (
            {"changes": ({"container": "app", "image": "r/app:2"},)} if "changes" in fields else {}
        )
    else:
        with pytest.raises(ValidationError, match="exactly one of them"):
            DeployJob.model_validate(data)
