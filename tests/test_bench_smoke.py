"""The benchmark harness end to end, small: N = 2, the local executor, T = 0.5 s, no peer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(
    r"^\| 2 \| local \| (?P<wall>\d+\.\d+) \| 0\.5 \| (?P<ratio>\d+\.\d+)x \| - \| - \| (?P<cpu>\d+\.\d+) "
    r"\| (?P<rss>\d+) \| (?P<p50>\d+\.\d+) / (?P<p99>\d+\.\d+) \(\d+\) \| 2/2 \| \S.* \|$",
    re.MULTILINE,
)


def test_bench_harness_prints_a_result_row(tmp_path: Path, redis_server: str) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "REDIS_URL": redis_server}
    started = time.monotonic()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--n", "2", "--tools", "local", "--rollout-s", "0.5"),
            *("--no-pack", "--no-startup", "--json-out", str(out)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert proc.returncode == 0, proc.stderr[-3000:]
    match = ROW.search(proc.stdout)
    assert match, proc.stdout
    wall, cpu, rss = float(match["wall"]), float(match["cpu"]), int(match["rss"])
    assert 0.5 < wall < 30 and 0 < cpu < wall and 10 < rss < 1000
    assert abs(float(match["ratio"]) - wall / 0.5) < 0.02
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert (row["n"], row["tool"], row["succeeded"], row["targets"], row["exit_code"]) == (
        2,
        "local",
        2,
        2,
        0,
    )
    assert row["events"] >= 8 and row["latency_p99_ms"] >= row["latency_p50_ms"] > 0
    assert elapsed < 30, f"the smoke run took {elapsed:.1f}s"
