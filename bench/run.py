"""One whole benchmark run: which measurements, in what order, gathered into the report's data.

Why: `python -m bench` only parses its flags; this module turns them into a run (the side
measurements first, then every tool at every N, then the N = 1000 RSS runs) and returns the
report as data: the dict that `--json-out` writes, and the rows the Markdown tables show.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import fanout, probes
from bench.harness import Harness
from bench.machine import load, machine
from bench.peer import ensure_peer, peer_version
from bench.results import Row
from bench.targets import targets

__all__ = ["FULL_NS", "QUICK_NS", "accounts_rows", "run", "workdir"]

FULL_NS = (1, 10, 20, 50, 200)
QUICK_NS = (1, 10)


@contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    """A fresh temporary directory for specs and the emulator's log; removed unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix="ecs-fanout-bench-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")


def _size_limits(args: argparse.Namespace) -> dict[str, tuple[str, int]]:
    """tool: (flag, largest N it runs at)."""
    return {
        "ecs-deploy": ("--peer-max-n", args.peer_max_n),
        "ecs-deploy-all": ("--peer-max-n", args.peer_max_n),
        "serial": ("--serial-max-n", args.serial_max_n),
    }


def accounts_rows(harness: Harness, n: int) -> list[Row]:
    """Accounts scale: `n` services in one account, the same `n` split over two accounts, and
    `n / 2` in one account (what each of the two carries), all through assumed roles, all with
    the local executor under ECS's emulated throttling (a bucket per account and region)."""
    return [
        harness.scenario("local", n, label="local-1acct", accounts=1),
        harness.scenario("local", n, label="local-2acct", accounts=2),
        harness.scenario("local", n // 2, label="local-1acct", accounts=1),
    ]


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Row]]:
    """Run what `args` (of `bench.__main__.build_parser`) asks for: (the report, its rows)."""
    # `--accounts-n`, `--inflight`, `--lambda-billing` alone run only their rows; with `--n` or
    # `--quick`, the N-service scenarios too.
    alone = args.accounts_n or args.inflight or args.lambda_billing
    ns = args.n or (QUICK_NS if args.quick else () if alone else FULL_NS)
    tools: tuple[str, ...] = args.tools
    defaults: dict[str, Any] = {}
    if args.poll_interval:
        defaults["poll_interval"] = args.poll_interval
    report: dict[str, Any] = {
        "command": " ".join([os.path.basename(sys.executable), "-m", "bench", *sys.argv[1:]]),
        "machine": machine(),
        "rollout_s": args.rollout_s,
        "ns": list(ns),
        "tools": list(tools),
        "spec_defaults": defaults,
        "esm_concurrency": args.esm_concurrency or "the mapping's MaximumConcurrency (20)",
        "accounts_n": args.accounts_n,
        "inflight": args.inflight,
        "lambda_billing": [args.lambda_billing_n, args.lambda_billing_rollout_s]
        if args.lambda_billing
        else None,
        "started": _now(),
    }
    if "ecs-deploy" in tools or "ecs-deploy-all" in tools:
        ensure_peer()  # installed once, before anything is timed
        report["ecs_deploy_version"] = peer_version()
    fanout.as_installed()  # byte-compiled, as an installed copy is
    rows: list[Row] = []
    limits = _size_limits(args)
    with (
        workdir(args.keep) as wd,
        Harness(args.rollout_s, wd, defaults, esm_concurrency=args.esm_concurrency) as harness,
    ):
        report["workdir"] = str(wd)
        lambda_rows = bool(ns) and "lambda" in tools
        if lambda_rows and not args.no_pack:
            report["pack"] = probes.pack(harness, cold=not args.no_cold_pack)
        if lambda_rows or args.lambda_billing or (args.rss_1000 and "lambda" in args.rss_tools):
            # creates the function, queue and mapping: the timed lambda runs find them ready
            report["uploads"] = probes.lambda_uploads(harness)
        if not args.no_startup:
            report["startup"] = probes.startup(harness)
        for n in ns:
            for tool in tools:
                if tool in limits and n > limits[tool][1]:
                    flag, limit = limits[tool]
                    rows.append(Row.start(n, tool, args.rollout_s, note=f"not run: N > {flag} {limit}"))
                    continue
                rows.append(harness.scenario(tool, n))
        if args.accounts_n:
            rows += accounts_rows(harness, args.accounts_n)
        if args.inflight:
            for follow in args.inflight_follow:
                rows.append(harness.inflight(args.inflight, args.inflight_rollout_s, follow))
        if args.lambda_billing:
            rows.append(harness.lambda_billing(args.lambda_billing_n, args.lambda_billing_rollout_s))
        if args.rss_1000:
            for tool in args.rss_tools:
                rows.append(harness.scenario(tool, 1000, label=f"{tool}-rss", throttling=False))
        report["emulator_stats"] = harness.em.stats()
    report["rows"] = [r.to_dict() for r in rows]
    report["targets"] = [{"target": t, "measured": m, "verdict": v} for t, m, v in targets(report, rows)]
    report["finished"] = _now()
    report["machine"]["load_at_end_1_5_15"] = load()
    return report, rows
