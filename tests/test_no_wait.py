"""`--no-wait`: a run whose service another run is deploying fails at once, changing nothing,
instead of waiting for the other run to finish it."""

from __future__ import annotations

import json
import signal

from orchestrator.exits import ExitCode
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from tests.cli import run_cli, spawn_cli
from tests.fleet import Fleets


def test_no_wait_fails_at_once_while_another_run_deploys_the_service(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=60.0))
    one = fleet(1)
    first = spawn_cli(str(one.path), "--plain", redis_url=redis_url)
    assert first.stdout is not None
    try:
        first_run_id = first.stdout.readline().split()[1].rstrip(":")  # `run ID: 1 services`
        for line in first.stdout:  # the first run is rolling s0 out
            if "in_progress" in line:
                break
        before = aws.request_counts()

        second = run_cli(str(one.path), "--json", "--no-wait", redis_url=redis_url, timeout=60)

        assert second.returncode == ExitCode.FAILED, second.stderr
        result = json.loads(second.stdout.splitlines()[-1])["results"][0]
        assert result["status"] == "failed"
        assert first_run_id in result["message"], result["message"]  # who holds the service
        after = aws.request_counts()
        for action in ("RegisterTaskDefinition", "UpdateService"):
            assert after.get(action, 0) == before.get(action, 0), f"--no-wait changed something: {action}"
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == ExitCode.TERMINATED
