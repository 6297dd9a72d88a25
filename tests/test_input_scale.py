"""Input at scale: a 10,000-entry spec is answered in batches, not one AWS call per target.

Against the emulator, whose request counts are the figures: before batching, `--dry-run` of
10,000 targets on clusters that do not exist made 10,000 DescribeServices calls (108 s here,
minutes on a real account); now it asks DescribeClusters, 100 clusters a call, and nothing
else.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from orchestrator.exits import ExitCode
from orchestrator.sandbox import AwsEmulator
from tests.cli import run_cli
from tests.fleet import Fleets

ENTRIES = 10_000
CLUSTERS = 1_000


def missing_clusters_spec(path: Path) -> Path:
    lines = []
    for i in range(ENTRIES):
        lines += [
            "[[deploy]]",
            f'cluster = "gone-{i % CLUSTERS}"',
            f'service = "s{i}"',
            'container = "app"',
            'image = "registry.example.com/app"',
            'tag = "2.0.0"',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("command", [["--dry-run"], ["--dry-run", "--json"], ["plan"]])
def test_ten_thousand_targets_of_missing_clusters_cost_only_describe_clusters(
    aws: AwsEmulator, redis_url: str, tmp_path: Path, command: list[str]
) -> None:
    spec = missing_clusters_spec(tmp_path / "big.toml")
    before = aws.request_counts()
    argv = ["plan", str(spec), *command[1:]] if command[0] == "plan" else [str(spec), *command]

    result = run_cli(*argv, redis_url=redis_url, timeout=300)

    calls = {action: n - before.get(action, 0) for action, n in aws.request_counts().items()}
    calls = {action: n for action, n in calls.items() if n}
    # was 10,000 DescribeServices; the one GetCallerIdentity names the caller's account
    assert calls == {"DescribeClusters": math.ceil(CLUSTERS / 100), "GetCallerIdentity": 1}
    assert result.returncode == ExitCode.FAILED  # targets that cannot be deployed, as documented
    assert "Traceback" not in result.stderr
    if "--json" in command:
        objects = [json.loads(line) for line in result.stdout.splitlines()]
        assert objects[-1] | {"type": "summary", "targets": ENTRIES, "refused": ENTRIES} == objects[-1]
        assert objects[1]["problem"] == "cluster 'gone-1' not found"
    else:
        lines = result.stdout.splitlines()
        assert len(lines) == ENTRIES and lines[1] == "gone-1/s1/app: cluster 'gone-1' not found"


def test_services_are_described_ten_a_call_per_cluster(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    """25 services on two clusters (13 and 12): 1 DescribeClusters, 2 + 2 DescribeServices, and
    each task definition once."""
    spec = fleet(25)
    before = aws.request_counts()

    result = run_cli(str(spec.path), "--dry-run", redis_url=redis_url)

    calls = {action: n - before.get(action, 0) for action, n in aws.request_counts().items()}
    assert result.returncode == ExitCode.OK, result.stderr
    assert calls.get("DescribeClusters") == 1
    assert calls.get("DescribeServices") == 4
    assert calls.get("DescribeTaskDefinition") == 25  # one family per service
    assert "c0/s24/app: registry.example.com/s24:1.0.0 -> registry.example.com/s24:2.0.0" in result.stdout
