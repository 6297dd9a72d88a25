"""`--sandbox` reaches the product through `Endpoints` only, never through the environment.

A developer's shell often points at a real AWS (keys, a region, an endpoint). A sandbox run must
not care: every AWS call it makes goes to its emulator with its own throw-away keys, and its
emulated Lambda gets its settings where a real one does, from the function's configuration (the
`REDIS_URL` the orchestrator set on it), not from the orchestrator's process. Here the CLI runs
with AWS_* pointing at an endpoint that refuses every connection, and without `REDIS_URL` (so
the run's private Redis is known to the workers only through the function's configuration).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli import run_cli

UNREACHABLE = {
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # discard: nothing listens, connections are refused
    "AWS_ACCESS_KEY_ID": "AKIANOTTHESANDBOXKEY",
    "AWS_SECRET_ACCESS_KEY": "not-the-sandbox-secret",
    "AWS_REGION": "eu-west-3",
}


def test_a_lambda_run_in_the_sandbox_ignores_the_shells_aws_and_redis(tmp_path: Path) -> None:
    spec = tmp_path / "two.toml"
    spec.write_text(
        'poll_interval = "200ms"\ntimeout = "60s"\n'
        + "".join(
            f'[[deploy]]\ncluster = "c"\nservice = "s{i}"\ncontainer = "app"\n'
            f'image = "registry.example.com/s{i}"\ntag = "2.0.0"\n'
            for i in range(2)
        )
    )
    result = run_cli(
        str(spec),
        "--sandbox",
        "--executor",
        "lambda",
        "--json",
        redis_url="",
        env=UNREACHABLE,
        drop=("AWS_", "ECS_FANOUT_"),
        timeout=300,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    setup = {
        (line["step"], line["status"]): line.get("message", "") for line in lines if line["type"] == "setup"
    }
    assert setup[("mapping", "done")].endswith("enabled"), setup
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert {(r["service"], r["status"]) for r in summary["results"]} == {
        ("s0", "succeeded"),
        ("s1", "succeeded"),
    }
    # the shell's region is the run's (it names where to deploy), and the emulator served it
    assert {r["region"] for r in summary["results"]} == {"eu-west-3"}
    assert all(r["task_definition_arn"].startswith("arn:aws:ecs:eu-west-3:") for r in summary["results"])
    assert "events in a private Redis" in result.stderr
