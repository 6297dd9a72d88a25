"""`ecs-fanout status RUN_ID`: what ECS runs for each target of a past run, against what the run
wanted, checked against ECS itself (read here with boto3); a killed run is in
tests/test_run_lifecycle.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.exits import ExitCode
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from tests.cli import run_cli
from tests.ecs_verdicts import ecs_verdict
from tests.fleet import Fleets
from tests.test_boundary import OWN_SETTINGS, one_line
from tests.test_cli_e2e import REGION


def deployed(fleet_path: str, redis_url: str) -> str:
    """Deploy a spec to its end; its run id."""
    result = run_cli(fleet_path, "--json", redis_url=redis_url)
    assert result.returncode in (ExitCode.OK, ExitCode.FAILED), result.stderr
    return str(json.loads(result.stdout.splitlines()[0])["run_id"])


def status(run_id: str, redis_url: str, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = run_cli("status", run_id, "--json", *args, redis_url=redis_url)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def test_status_of_a_finished_run_agrees_with_ecs(aws: AwsEmulator, fleet: Fleets, redis_url: str) -> None:
    spec = fleet(3, bad=2)  # s2's image never starts: ECS's circuit breaker rolls it back
    run_id = deployed(str(spec.path), redis_url)
    before = aws.request_counts()

    code, objects = status(run_id, redis_url)

    counts = aws.request_counts()
    calls = {action: n - before.get(action, 0) for action, n in counts.items() if n > before.get(action, 0)}
    targets = {o["service"]: o for o in objects if o["type"] == "target"}
    assert code == ExitCode.FAILED
    assert {name: t["status"] for name, t in targets.items()} == {
        name: ecs_verdict(name, image)
        for name, image in [
            ("s0", "registry.example.com/s0:2.0.0"),
            ("s1", "registry.example.com/s1:2.0.0"),
            ("s2", "registry.example.com/s2:bad-1"),
        ]
    }
    assert [targets[s]["status"] for s in ("s0", "s1", "s2")] == ["matches", "matches", "differs"]
    assert [targets[s]["recorded"] for s in ("s0", "s1", "s2")] == ["succeeded", "succeeded", "rolled_back"]
    assert targets["s0"]["task_definition_arn"] == targets["s0"]["wanted_task_definition_arn"]
    assert targets["s0"] | {"rollout_state": "COMPLETED", "running": 2, "desired": 2} == targets["s0"]
    assert targets["s2"]["task_definition_arn"].endswith("/s2:1")  # back on the seeded revision
    assert targets["s2"]["wanted_task_definition_arn"].endswith("/s2:2")
    assert objects[-1] == {
        "type": "summary",
        "run_id": run_id,
        "targets": 3,
        "matching": 2,
        "by_status": {"matches": 2, "differs": 1},
    }
    # Read in batches: one DescribeClusters, one DescribeServices per cluster, one
    # DescribeServiceDeployments for the jobs' service deployments (20 a call); the wanted
    # revisions come from the ledger, so no task definition is read.
    assert calls == {"DescribeClusters": 1, "DescribeServices": 2, "DescribeServiceDeployments": 1}

    plain = run_cli("status", run_id, redis_url=redis_url)
    lines = plain.stdout.splitlines()
    assert plain.returncode == ExitCode.FAILED
    assert (
        lines[0].startswith("c0/s0")
        and " matches " in lines[0]
        and "runs s0:2 (COMPLETED, 2/2 tasks)" in lines[0]
    )
    assert " differs " in lines[2] and "runs s2:1" in lines[2] and "wanted s2:2" in lines[2]
    assert lines[-1] == f"run {run_id}: 2 of 3 targets run what the run wanted (1 differs, 2 matches)"


def test_a_run_that_changed_nothing_matches_by_its_images(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    """A second deploy of the same images is skipped (it registers nothing): what it wanted
    are its images, and ECS runs them."""
    spec = fleet(2)
    deployed(str(spec.path), redis_url)
    again = deployed(str(spec.path), redis_url)

    code, objects = status(again, redis_url)

    assert code == ExitCode.OK
    targets = [o for o in objects if o["type"] == "target"]
    assert [(t["status"], t["recorded"], t["wanted_task_definition_arn"]) for t in targets] == [
        ("matches", "skipped", None),
        ("matches", "skipped", None),
    ]
    assert targets[0]["images"]["app"] == "registry.example.com/s0:2.0.0"


def test_status_of_an_unknown_run_is_one_line(redis_url: str) -> None:
    result = run_cli("status", "20261129T000000Z-abcdef", redis_url=redis_url, drop=OWN_SETTINGS)
    one_line(result, ExitCode.CONFIG, "no run '20261129T000000Z-abcdef'", "REDIS_URL")
    assert result.stdout == ""


def test_status_of_a_baking_service_asks_its_service_deployment(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    """A blue/green PRIMARY is COMPLETED while its service deployment still bakes: `status`
    says `rolling_out` for as long as ECS does, not `matches`."""
    aws.set_scenario(RolloutScenario(rollout_s=0.5, minute_s=60.0))
    seed_services(
        aws.endpoint_url,
        REGION,
        [("prod", "api", {"app": "registry.example.com/api:1"})],
        deployments={("prod", "api"): {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 30}},
    )
    spec = tmp_path / "baking.toml"
    spec.write_text(
        'poll_interval = "200ms"\ndone_when = "traffic_shifted"\n[[deploy]]\ncluster = "prod"\n'
        'service = "api"\ncontainer = "app"\nimage = "registry.example.com/api:2"\n'
    )
    run_id = deployed(str(spec), redis_url)

    code, objects = status(run_id, redis_url)

    (target,) = [o for o in objects if o["type"] == "target"]
    assert code == ExitCode.FAILED
    assert target["rollout_state"] == "COMPLETED"  # what a tool reading rolloutState alone sees
    assert target["status"] == "rolling_out" and target["recorded"] == "baking"
    assert (target["service_deployment_status"], target["lifecycle_stage"]) == ("IN_PROGRESS", "BAKE_TIME")
    assert "IN_PROGRESS (BAKE_TIME)" in target["message"]
