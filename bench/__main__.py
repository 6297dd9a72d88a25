"""`python -m bench`: ecs-fanout's benchmarks against the emulated ECS; a Markdown report on stdout.

Scenarios: N services (default 1, 10, 20, 50, 200; `--quick`: 1, 10) deployed by
- `local`: `python -m orchestrator SPEC --json --executor local` (workers in its process),
- `lambda`: the same with `--executor lambda` (SQS FIFO queue + Lambda, played by the emulator),
- `serial`: the local executor with `--max-parallel 1`,
- `ecs-deploy`: fabfuel's `ecs deploy CLUSTER SERVICE --image app IMAGE` looped over the services,
  up to N = `--peer-max-n` (default 20); bigger N print "not run", nothing is extrapolated.
Plus `pack.py` cold and warm, the bytes the lambda executor uploads, start-up times, and with
`--rss-1000` the orchestrator's peak RSS at N = 1000. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import TOOLS, Harness, Row, lower_bound_s, peer_version, workdir

FULL_NS = (1, 10, 20, 50, 200)
QUICK_NS = (1, 10)
TARGET_RATIO_N200 = 1.15
TARGET_SPEEDUP_N20 = 20.0
TARGET_LATENCY_P99_MS = 5.0
TARGET_WARM_PACK_S = 1.0
TARGET_HELP_S = 0.3
TARGET_RSS_1000_MB = 150.0


def _ns(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"a comma-separated list of integers, not {text!r}") from exc
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("every N must be at least 1")
    return values


def _tools(text: str) -> tuple[str, ...]:
    tools = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOLS)}"
        )
    return tools


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N in {1, 10}")
    parser.add_argument("--n", type=_ns, metavar="N,N,...", help=f"service counts (default {FULL_NS})")
    parser.add_argument("--tools", type=_tools, default=TOOLS, help=f"default: {','.join(TOOLS)}")
    parser.add_argument("--rollout-s", type=float, default=3.0, help="simulated rollout time T (default: 3)")
    parser.add_argument(
        "--peer-max-n", type=int, default=20, help="largest N for the ecs deploy loop (default 20)"
    )
    parser.add_argument(
        "--serial-max-n", type=int, default=50, help="largest N for --max-parallel 1 (default 50)"
    )
    parser.add_argument(
        "--poll-interval", help="spec poll_interval for ecs-fanout (default: the product's default, 2s)"
    )
    parser.add_argument("--rss-1000", action="store_true", help="also N = 1000 for peak RSS (throttling off)")
    parser.add_argument(
        "--rss-tools",
        type=_tools,
        default=("local", "lambda"),
        help="executors of --rss-1000 (default: both)",
    )
    parser.add_argument(
        "--esm-concurrency",
        type=int,
        help="pollers of the emulated event-source mapping (default: the mapping's MaximumConcurrency, 20)",
    )
    parser.add_argument("--no-pack", action="store_true", help="skip pack.py and code-upload measurements")
    parser.add_argument("--no-cold-pack", action="store_true", help="skip the cold pack (it runs pip)")
    parser.add_argument("--no-startup", action="store_true", help="skip --help / first-line / import checks")
    parser.add_argument("--json-out", type=Path, help="also write every figure as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (specs, emulator log)")
    return parser


# --- formatting ---------------------------------------------------------------------------


def _f(value: float | None, fmt: str = ".2f", unit: str = "") -> str:
    return "not run" if value is None else f"{value:{fmt}}{unit}"


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def speedup(row: Row, rows: Sequence[Row]) -> float | None:
    peer = next((r for r in rows if r.n == row.n and r.tool == "ecs-deploy" and r.wall_s is not None), None)
    if peer is None or row.wall_s is None or row.tool == "ecs-deploy" or peer.wall_s is None:
        return None
    return peer.wall_s / row.wall_s


def scenario_table(rows: Sequence[Row]) -> list[str]:
    out = [
        "| N | tool | wall s | lower bound s | ratio | speed-up vs ecs deploy | CPU s | peak RSS MB "
        "| event latency p50 / p99 ms | succeeded | throttled | load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        if r.wall_s is None:
            cells = [
                str(r.n),
                r.tool,
                "not run",
                f"{r.lower_bound_s:.1f}",
                "",
                "",
                "",
                "",
                "",
                "",
                r.note,
                "",
            ]
        else:
            up = speedup(r, rows)
            lat = (
                "n/a"
                if r.tool == "ecs-deploy"
                else f"{_f(r.latency_p50_ms)} / {_f(r.latency_p99_ms)} ({r.events})"
            )
            throttled = ", ".join(f"{k} {v}" for k, v in sorted(r.throttled.items())) or "0"
            if not r.throttling:
                throttled = "throttling off"
            cells = [
                str(r.n),
                r.tool,
                f"{r.wall_s:.2f}",
                f"{r.lower_bound_s:.1f}",
                f"{r.ratio:.2f}x" if r.ratio is not None else "",
                "-" if up is None else f"{up:.1f}x",
                _f(r.cpu_s),
                _f(r.peak_rss_mb, ".0f"),
                lat,
                f"{r.succeeded}/{r.targets}" + (f" ({r.note})" if r.note else ""),
                throttled,
                _f(r.load_before),
            ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def verdict(ok: bool | None) -> str:
    return "not run" if ok is None else ("PASS" if ok else "FAIL")


def targets(report: dict[str, Any], rows: Sequence[Row]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) lines."""
    found: list[tuple[str, str, str]] = []
    for tool in ("local", "lambda"):
        row = next((r for r in rows if r.n == 200 and r.tool == tool and r.wall_s is not None), None)
        ok = None if row is None or row.ratio is None else row.ratio <= TARGET_RATIO_N200 and row.note == ""
        measured = (
            "not run" if row is None else f"{row.ratio:.3f}x ({row.wall_s:.1f}s / {row.lower_bound_s:.0f}s)"
        )
        found.append((f"N=200 within {TARGET_RATIO_N200}x the lower bound ({tool})", measured, verdict(ok)))
    for tool in ("local", "lambda"):
        row = next((r for r in rows if r.n == 20 and r.tool == tool and r.wall_s is not None), None)
        up = None if row is None else speedup(row, rows)
        ok = None if up is None else up >= TARGET_SPEEDUP_N20
        found.append(
            (
                f">= {TARGET_SPEEDUP_N20:g}x faster than the ecs deploy loop at N=20 ({tool})",
                _f(up, ".1f", "x"),
                verdict(ok),
            )
        )
    for tool in ("local", "lambda", "serial"):
        measured_rows = [r for r in rows if r.tool == tool and r.latency_p99_ms is not None]
        worst = max(measured_rows, key=lambda r: r.latency_p99_ms or 0.0, default=None)
        ok = None if worst is None else (worst.latency_p99_ms or 0.0) <= TARGET_LATENCY_P99_MS
        measured = "not run" if worst is None else f"worst p99 {worst.latency_p99_ms:.2f} ms (N={worst.n})"
        found.append((f"event latency p99 <= {TARGET_LATENCY_P99_MS:g} ms ({tool})", measured, verdict(ok)))
    pack = report.get("pack") or {}
    uploads = report.get("uploads") or {}
    warm = (pack.get("warm") or {}).get("wall_s")
    unchanged = (uploads.get("unchanged") or {}).get("uploaded_bytes")
    ok = None if warm is None or unchanged is None else warm <= TARGET_WARM_PACK_S and unchanged == 0
    found.append(
        (
            f"warm pack <= {TARGET_WARM_PACK_S:g} s, 0 bytes uploaded when unchanged",
            f"{_f(warm, '.2f', ' s')}, {'not run' if unchanged is None else f'{unchanged:,} bytes'}",
            verdict(ok),
        )
    )
    startup = report.get("startup") or {}
    help_s = startup.get("help_median_s")
    found.append(
        (
            f"`--help` <= {TARGET_HELP_S:g} s",
            _f(help_s, ".3f", " s (median)"),
            verdict(None if help_s is None else help_s <= TARGET_HELP_S),
        )
    )
    textual = startup.get("json_imports_textual")
    found.append(
        (
            "`--json` path does not import Textual",
            "not run"
            if textual is None
            else ("imports textual" if textual else "no textual module imported"),
            verdict(None if textual is None else not textual),
        )
    )
    for tool in ("local", "lambda"):
        row = next((r for r in rows if r.n == 1000 and r.tool == f"{tool}-rss"), None)
        rss = None if row is None else row.peak_rss_mb
        ok = None if rss is None or row is None else rss <= TARGET_RSS_1000_MB and row.note == ""
        found.append(
            (
                f"orchestrator peak RSS <= {TARGET_RSS_1000_MB:g} MB at N=1000 ({tool})",
                _f(rss, ".0f", " MB"),
                verdict(ok),
            )
        )
    return found


def other_table(report: dict[str, Any]) -> list[str]:
    out = ["| measurement | value |", "|---|---|"]
    pack = report.get("pack") or {}
    for label, data in pack.items():
        out.append(
            f"| `pack.py` {label} (wall, incl. interpreter start / pack's own) "
            f"| {data['wall_s']:.2f} s / {_f(data['pack_s'], '.2f', ' s')} (exit {data['exit_code']}, "
            f"load {data['load_before']:.2f}) |"
        )
    for label, data in (report.get("uploads") or {}).items():
        out.append(
            f"| lambda executor run, {label} code: bytes uploaded | {data['uploaded_bytes']:,} "
            f"(set-up said: {data['setup'].get('lambda', '?')}; wall {data['wall_s']:.2f} s) |"
        )
    startup = report.get("startup") or {}
    if startup:
        out.append(
            f"| `python -m orchestrator --help` | median {startup['help_median_s']:.3f} s, first "
            f"{startup['help_first_s']:.3f} s, of {len(startup['help_s'])} |"
        )
        out.append(
            f"| `--json`: first output line (N=1 deploy) | {_f(startup['json_first_line_s'], '.3f', ' s')} |"
        )
        out.append(
            f"| `--json`: first line / whole run, N=1 already on its image | "
            f"{_f(startup['json_first_line_skip_run_s'], '.3f', ' s')} / "
            f"{startup['json_wall_skip_run_s']:.3f} s |"
        )
        textual = (
            "YES " + ", ".join(startup["textual_modules"]) if startup["json_imports_textual"] else "none"
        )
        slow = ", ".join(
            f"{i['module']} {i['cumulative_us'] / 1000:.0f} ms" for i in startup["slowest_imports_us"][:5]
        )
        out.append(
            f"| `--json` imports (python -X importtime) | {startup['modules_imported']} modules, textual: "
            f"{textual}; "
            f"slowest: {slow} |"
        )
    return out


# --- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    ns = args.n or (QUICK_NS if args.quick else FULL_NS)
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
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if "ecs-deploy" in tools:
        report["ecs_deploy_version"] = peer_version()
    rows: list[Row] = []
    with (
        workdir(args.keep) as wd,
        Harness(args.rollout_s, wd, defaults, esm_concurrency=args.esm_concurrency) as harness,
    ):
        report["workdir"] = str(wd)
        if "lambda" in tools and not args.no_pack:
            report["pack"] = harness.pack(cold=not args.no_cold_pack)
        if "lambda" in tools or (args.rss_1000 and "lambda" in args.rss_tools):
            # creates the function, queue and mapping: the timed lambda runs find them ready
            report["uploads"] = harness.lambda_uploads()
        if not args.no_startup:
            report["startup"] = harness.startup()
        for n in ns:
            for tool in tools:
                limit = (
                    args.peer_max_n
                    if tool == "ecs-deploy"
                    else args.serial_max_n
                    if tool == "serial"
                    else None
                )
                if limit is not None and n > limit:
                    flag = "--peer-max-n" if tool == "ecs-deploy" else "--serial-max-n"
                    rows.append(
                        Row(
                            n=n,
                            tool=tool,
                            rollout_s=args.rollout_s,
                            lower_bound_s=lower_bound_s(n, args.rollout_s),
                            note=f"not run: N > {flag} {limit}",
                        )
                    )
                    continue
                rows.append(harness.scenario(tool, n))
        if args.rss_1000:
            for tool in args.rss_tools:
                rows.append(harness.scenario(tool, 1000, label=f"{tool}-rss", throttling=False))
        report["emulator_stats"] = harness.em.stats()
    report["rows"] = [r.to_dict() for r in rows]
    report["targets"] = [{"target": t, "measured": m, "verdict": v} for t, m, v in targets(report, rows)]
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    report["machine"]["load_at_end_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    report["_rows"] = rows
    return report


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, Linux {m['kernel']}; "
        f"load (1/5/15 min) "
        f"{m['load_1_5_15']} at start, {m.get('load_at_end_1_5_15')} at end.",
        f"Command: `{report['command']}`; rollout time T = {report['rollout_s']:g} s; "
        f"ecs-deploy {report.get('ecs_deploy_version', 'not used')}; "
        f"spec defaults {report['spec_defaults'] or 'none'}.",
        "",
        *scenario_table(report["_rows"]),
        "",
        *other_table(report),
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *(f"| {t['target']} | {t['measured']} | {t['verdict']} |" for t in report["targets"]),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(markdown(report), flush=True)
    if args.json_out:
        data = {k: v for k, v in report.items() if k != "_rows"}
        args.json_out.write_text(json.dumps(data, indent=1, default=str) + "\n")
    failed_runs = [r for r in report["_rows"] if r.wall_s is not None and r.exit_code not in (0, None)]
    return 1 if failed_runs else 0


if __name__ == "__main__":
    raise SystemExit(main())
