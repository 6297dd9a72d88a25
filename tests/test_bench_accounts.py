"""`python -m bench --accounts-n N`: N services in one account vs split over two, small and fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.results import lower_bound_s
from bench.scenario import ACCOUNTS, role_arn, write_spec
from orchestrator.spec import load_spec
from orchestrator.spec_access import access_of

ROOT = Path(__file__).resolve().parent.parent


def test_two_accounts_have_two_buckets_in_the_lower_bound() -> None:
    # 60 registrations: one bucket needs 40 s past its burst of 20, two buckets 10 s each.
    assert lower_bound_s(60, 3.0) == 43.0
    assert lower_bound_s(60, 3.0, accounts=2) == 13.0
    assert lower_bound_s(61, 3.0, accounts=2) == 14.0  # the fuller account counts


def test_a_spec_over_two_accounts_alternates_accounts_roles_and_registries(tmp_path: Path) -> None:
    services = [("c", f"s{i}") for i in range(4)]
    spec = load_spec(write_spec(tmp_path / "spec.json", services, accounts=2))
    roles = [access_of(entry, spec).role_arn for entry in spec.deploy]
    assert roles == [role_arn(ACCOUNTS[0]), role_arn(ACCOUNTS[1])] * 2
    assert [entry.image.split(".")[0] for entry in spec.deploy] == [ACCOUNTS[0], ACCOUNTS[1]] * 2


def test_the_accounts_rows_run_and_are_judged(tmp_path: Path, redis_server: str) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--accounts-n", "4", "--tools", "local"),
            *("--rollout-s", "0.5", "--no-pack", "--no-startup", "--json-out", str(out)),
        ],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_server},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = [(r["n"], r["tool"], r["accounts"], r["succeeded"], r["exit_code"]) for r in report["rows"]]
    # Only the three accounts rows: `--accounts-n` alone runs nothing else.
    assert rows == [(4, "local-1acct", 1, 4, 0), (4, "local-2acct", 2, 4, 0), (2, "local-1acct", 1, 2, 0)]
    (judged,) = [t for t in report["targets"] if "two accounts" in t["target"]]
    assert judged["verdict"] in {"PASS", "FAIL"} and judged["measured"] != "not run"
    assert "| 4 | local-2acct |" in proc.stdout  # the row in the printed table
