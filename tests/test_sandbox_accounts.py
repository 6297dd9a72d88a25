"""The sandbox demo spans two accounts and two regions, a role per account: the sandbox seeds each
service where its entry points, and the run deploys each one there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from orchestrator.sandbox.session import SIDECAR, sandbox_places
from orchestrator.spec import load_spec
from tests.cli import ROOT
from worker.access import role_account

DEMO = ROOT / "specs" / "demo.toml"


def role(account: str) -> str:
    return f"arn:aws:iam::{account}:role/ecs-fanout-deployer"


def test_the_demo_is_seeded_per_role_and_region() -> None:
    places = sandbox_places(load_spec(DEMO), "us-east-1")
    where = {
        (role_account(arn) if arn else None, region): sorted(f"{c}/{s}" for c, s, _ in services)
        for (arn, region), services in places.items()
    }
    assert where == {
        ("111111111111", "us-east-1"): ["payments/api", "payments/fraud-scorer"],
        ("111111111111", "eu-west-1"): ["payments/ledger"],
        ("222222222222", "eu-west-1"): ["storefront/cart", "storefront/search", "storefront/web"],
        ("222222222222", "us-east-1"): ["internal/reports"],
    }
    assert {arn for arn, _ in places} == {role("111111111111"), role("222222222222")}
    # Each service runs the seeded tag of each named container, and the sidecar nobody names.
    for services in places.values():
        for _, _, containers in services:
            assert containers[SIDECAR[0]] == SIDECAR[1]
            assert all(image.endswith(":1.0.0") for name, image in containers.items() if name != SIDECAR[0])


def test_the_demo_deploys_each_service_in_its_own_account_and_region(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_FANOUT_"))}
    env["REDIS_URL"] = redis_url
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", str(DEMO), "--sandbox", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-4000:]  # the broken image, on purpose
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    results = lines[-1]["results"]
    places = {(r["account"], r["region"]) for r in results}
    assert places == {
        ("111111111111", "us-east-1"),
        ("111111111111", "eu-west-1"),
        ("222222222222", "eu-west-1"),
        ("222222222222", "us-east-1"),
    }
    for result in results:
        # The revision ECS answered with lives in the target's own account and region: the
        # sandbox seeded it there, and the worker reached it with that account's role.
        arn = result["task_definition_arn"]
        assert f":{result['region']}:{result['account']}:task-definition/" in arn, result
    status = {f"{r['cluster']}/{r['service']}": r["status"] for r in results}
    assert status["payments/fraud-scorer"] == "rolled_back"
    assert status["storefront/cart"] == "skipped"
    assert {s for s, st in status.items() if st == "succeeded"} == {
        "payments/api",
        "payments/ledger",
        "storefront/web",
        "storefront/search",
        "internal/reports",
    }
    events = [line for line in lines if line["type"] == "event"]
    assert all(e["account"] in {"111111111111", "222222222222"} and e["region"] for e in events)
