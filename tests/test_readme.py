"""The README's quick start works as written.

The commands come from the README itself (the fenced blocks under "Try it" and "Run the tests"),
so a README edit that breaks them breaks this test. `scripts/setup` and `scripts/test` are not run
here (the test suite is what `scripts/test` runs); the sandbox demo is, with `--json` appended.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def fenced_block(heading: str) -> str:
    """The first fenced code block of the README section whose `## ` heading starts with `heading`."""
    text = README.read_text()
    section = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, f"README has no '## {heading}' section"
    block = re.search(r"^```[\w-]*\n(.*?)^```", section[1], re.M | re.S)
    assert block, f"README's '{heading}' section has no fenced block"
    return block[1]


def commands(block: str) -> list[list[str]]:
    """The shell commands of a block: one per line, `&&` chains split, comments dropped."""
    found = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            found.append(words[:cut])
            words = words[cut + 1 :]
    return [c for c in found if c]


def executable(relative: str) -> bool:
    path = ROOT / relative
    return path.is_file() and os.access(path, os.X_OK)


def test_try_it_names_setup_then_the_sandbox() -> None:
    setup, demo = commands(fenced_block("Try it"))
    assert setup == ["scripts/setup"]
    assert executable("scripts/setup")
    assert demo[0] in (".venv/bin/python", "python", "python3")
    assert demo[1:] == ["-m", "orchestrator", "specs/demo.toml", "--sandbox"]
    assert (ROOT / demo[3]).is_file()


def test_run_the_tests_is_what_ci_runs() -> None:
    (test,) = commands(fenced_block("Run the tests"))
    assert test == ["scripts/test"]
    assert executable("scripts/test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*(exec\s+)?scripts/test\b", ci, re.M), ".ci/run must run scripts/test"


def expected_status(entry: dict[str, Any]) -> str:
    """What specs/demo.toml promises: `broken…` images roll back, tag 1.0.0 (what the sandbox seeds) is
    already running, the rest succeed."""
    if str(entry.get("tag", "")).startswith("broken"):
        return "rolled_back"
    if entry.get("tag") == "1.0.0":
        return "skipped"
    return "succeeded"


def test_the_sandbox_demo_runs_as_written(redis_url: str) -> None:
    _, demo = commands(fenced_block("Try it"))
    # The README's `.venv/bin/python` is this venv's python when the suite runs from scripts/test.
    argv = [sys.executable, *demo[1:], "--json"]
    # A developer's own AWS and ECS_FANOUT_* settings must not change what the demo does.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_FANOUT_"))}
    env["REDIS_URL"] = redis_url
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines and all("type" in line for line in lines), proc.stdout[:2000]
    assert lines[0]["type"] == "run"
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert sum(line["type"] == "summary" for line in lines) == 1

    spec = tomllib.loads((ROOT / demo[3]).read_text())
    expected = {(e["cluster"], e["service"], e["container"]): expected_status(e) for e in spec["deploy"]}
    got = {(r["cluster"], r["service"], r["container"]): r["status"] for r in summary["results"]}
    assert got == expected
    statuses = sorted(got.values())
    assert statuses.count("rolled_back") == 1 and statuses.count("skipped") == 1
    assert set(statuses) == {"rolled_back", "skipped", "succeeded"}
    (rolled_back,) = [r for r in summary["results"] if r["status"] == "rolled_back"]
    assert "broken" in rolled_back["image"]

    # The demo mixes ECS's four strategies, each service followed through its service deployment
    # (a hook holding a stage and a bake are tested with controlled timing in test_strategies.py:
    # here the looks' schedule may step over a 3 s hook or a 2 s bake on a busy machine).
    details = [line["details"] for line in lines if line["type"] == "event"]
    assert {d.get("strategy") for d in details} >= {"ROLLING", "BLUE_GREEN", "LINEAR", "CANARY"}
    assert {d.get("following") for d in details if d.get("following")} == {"service_deployment"}


def test_the_waves_demo_runs_as_written(redis_url: str) -> None:
    (demo,) = commands(fenced_block("Waves"))
    assert demo[1:] == ["-m", "orchestrator", "specs/waves.toml", "--sandbox"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_FANOUT_"))}
    env["REDIS_URL"] = redis_url
    argv = [sys.executable, *demo[1:], "--json"]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    lines = [json.loads(line) for line in proc.stdout.splitlines()]

    spec = tomllib.loads((ROOT / demo[3]).read_text())
    waves = [wave["name"] for wave in spec["wave"]]
    started = [line["wave"] for line in lines if line["type"] == "gate" and line["state"] == "started"]
    assert started == waves  # one after the other, each once
    steps = {line["gate"] for line in lines if line["type"] == "gate" and line["wave"] == "canary"}
    assert {"smoke_test", "soak", "alarms"} <= steps
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert {(r["service"], r["wave"], r["status"]) for r in summary["results"]} == {
        (e["service"], e["wave"], "succeeded") for e in spec["deploy"]
    }
