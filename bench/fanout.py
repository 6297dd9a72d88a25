"""ecs-fanout as the benchmarks run it: its command line, and the figures read from its output.

Why: the tools `local`, `local-poll`, `lambda` and `serial` are all `python -m orchestrator
SPEC --json` with other flags; what a run achieved (targets that succeeded, event latencies) is read from
the JSON lines it prints, as any script of a user's would read them.
"""

from __future__ import annotations

import compileall
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.measure import Proc
from bench.results import Row, percentile

__all__ = ["as_installed", "cli_command", "follow_of", "json_objects", "read_run"]

PACKAGES = ("orchestrator", "worker", "tui")
ROOT = Path(__file__).resolve().parent.parent


def as_installed() -> None:
    """Byte-compile ecs-fanout's packages, as `pip install` does (and did for `ecs deploy`).

    Why: this checkout is an editable install, which pip does not compile, and where
    PYTHONDONTWRITEBYTECODE is set (it is on the benchmarks' machine) Python never writes the
    bytecode either: every run would compile ~100 modules from source, ~0.3 s of start-up
    that no installed copy pays. A module changed later is compiled again as usual."""
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)


def follow_of(tool: str) -> str:
    """How `tool` follows rollouts: `local-poll` polls (`--follow poll`), the others take the
    product's default (ECS's events)."""
    return "poll" if tool == "local-poll" else "events"


def cli_command(spec_path: Path, tool: str, *python_flags: str) -> list[str]:
    """The command line of ecs-fanout as `tool` (local, local-poll, lambda or serial)."""
    cmd = [sys.executable, *python_flags, "-m", "orchestrator", str(spec_path), "--json"]
    cmd += ["--executor", "lambda" if tool == "lambda" else "local"]
    if tool == "serial":
        cmd += ["--max-parallel", "1"]
    if follow_of(tool) == "poll":
        cmd += ["--follow", "poll"]
    return cmd


def json_objects(lines: Iterable[tuple[float, str]]) -> Iterator[dict[str, Any]]:
    """The JSON objects among a run's (time, line) stdout lines; other lines are passed over."""
    for _, line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj


def read_run(row: Row, proc: Proc, timeout_s: float) -> None:
    """Fill `row` with a run's figures: times, RSS, event latencies, the summary's outcome."""
    row.wall_s, row.cpu_s, row.peak_rss_mb = proc.wall_s, proc.cpu_s, proc.maxrss_mb
    row.exit_code = proc.returncode
    row.first_line_s = proc.lines[0][0] if proc.lines else None
    row.stderr_tail = proc.stderr[-4000:]
    latencies: list[float] = []
    summary: dict[str, Any] | None = None
    for obj in json_objects(proc.lines):
        # a duplicate's report changes no state, so its line carries an older receipt time
        if (
            obj.get("type") == "event"
            and obj.get("phase") != "duplicate"
            and obj.get("seq") is not None
            and obj.get("received_at") is not None
        ):
            latencies.append((float(obj["received_at"]) - float(obj["ts"])) * 1000)
        elif obj.get("type") == "summary":
            summary = obj
    row.events = len(latencies)
    row.latency_p50_ms = percentile(latencies, 50)
    row.latency_p99_ms = percentile(latencies, 99)
    results = summary["results"] if summary else []
    row.targets = len(results)
    row.succeeded = sum(1 for r in results if r.get("status") == "succeeded")
    if proc.timed_out:
        row.note = f"killed after {timeout_s:g}s"
    elif summary is None:
        row.note = f"no summary line (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    elif row.succeeded != row.targets:
        bad = [
            f"{r['service']}: {r['status']} {r['message'][:120]}"
            for r in results
            if r["status"] != "succeeded"
        ]
        row.note = f"{len(bad)} not succeeded, e.g. {bad[0]}"
