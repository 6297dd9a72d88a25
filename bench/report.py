"""The Markdown report `python -m bench` prints: the machine, the scenario table, the other
measurements and the targets' verdicts.

Why a module of its own: what is measured (`bench.harness`, `bench.probes`) and how it is
judged (`bench.targets`) do not change with how it is laid out; this is the one place that
lays it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.results import LOOK_ACTIONS, Row, speedup

__all__ = ["fmt", "markdown"]


def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    """`value` formatted with `spec` and `unit`; "not run" for None."""
    return "not run" if value is None else f"{value:{spec}}{unit}"


def _scenario_cells(r: Row, rows: Sequence[Row]) -> list[str]:
    if r.wall_s is None:
        return [str(r.n), r.tool, "not run", f"{r.lower_bound_s:.1f}", *[""] * 7, r.note, ""]
    up, up_all = speedup(r, rows), speedup(r, rows, "ecs-deploy-all")
    lat = (
        "n/a"
        if r.tool.startswith("ecs-deploy")
        else f"{fmt(r.latency_p50_ms)} / {fmt(r.latency_p99_ms)} ({r.events})"
    )
    throttled = ", ".join(f"{k} {v}" for k, v in sorted(r.throttled.items())) or "0"
    if not r.throttling:
        throttled = "throttling off"
    return [
        str(r.n),
        r.tool,
        f"{r.wall_s:.2f}",
        f"{r.lower_bound_s:.1f}",
        f"{r.ratio:.2f}x" if r.ratio is not None else "",
        "-" if up is None else f"{up:.1f}x",
        "-" if up_all is None else f"{up_all:.2f}x",
        fmt(r.cpu_s),
        fmt(r.peak_rss_mb, ".0f"),
        lat,
        f"{r.succeeded}/{r.targets}" + (f" ({r.note})" if r.note else ""),
        throttled,
        fmt(r.load_before),
    ]


def scenario_table(rows: Sequence[Row]) -> list[str]:
    return [
        "| N | tool | wall s | lower bound s | ratio | speed-up vs ecs deploy loop | vs all at once "
        "| CPU s | peak RSS MB | event latency p50 / p99 ms | succeeded | throttled | load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        *("| " + " | ".join(_scenario_cells(r, rows)) + " |" for r in rows),
    ]


def following_table(rows: Sequence[Row]) -> list[str]:
    """What ECS saw of ecs-fanout's runs: its first change, how late it noticed ends, its looks."""
    out = [
        "| N | tool | first UpdateService s | detection lag p50 / p99 ms | DescribeServices / job "
        "| DescribeServiceDeployments / job | ListServiceDeployments / job | longest gap between looks s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.wall_s is None or r.tool.startswith("ecs-deploy"):
            continue
        calls = [fmt(r.calls_per_job.get(a), ".2f") for a in LOOK_ACTIONS]
        lag = f"{fmt(r.detect_p50_ms, '.0f')} / {fmt(r.detect_p99_ms, '.0f')} ({r.detect_n})"
        gap = fmt(r.max_look_gap_s, ".2f")
        out.append(
            f"| {r.n} | {r.tool} | {fmt(r.first_update_s, '.3f')} | {lag} | {' | '.join(calls)} | {gap} |"
        )
    return out


def other_table(report: dict[str, Any]) -> list[str]:
    out = ["| measurement | value |", "|---|---|"]
    pack = report.get("pack") or {}
    for label, data in pack.items():
        out.append(
            f"| `pack.py` {label} (wall, incl. interpreter start / pack's own) "
            f"| {data['wall_s']:.2f} s / {fmt(data['pack_s'], '.2f', ' s')} (exit {data['exit_code']}, "
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
            f"| `--json`: first output line (N=1 deploy) | {fmt(startup['json_first_line_s'], '.3f', ' s')} |"
        )
        out.append(
            f"| `--json`: first line / whole run, N=1 already on its image | "
            f"{fmt(startup['json_first_line_skip_run_s'], '.3f', ' s')} / "
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


def markdown(report: dict[str, Any], rows: Sequence[Row]) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, Linux {m['kernel']}; "
        f"load (1/5/15 min) "
        f"{m['load_1_5_15']} at start, {m.get('load_at_end_1_5_15')} at end.",
        f"Command: `{report['command']}`; rollout time T = {report['rollout_s']:g} s; "
        f"ecs-deploy {report.get('ecs_deploy_version', 'not used')}; "
        f"spec defaults {report['spec_defaults'] or 'none'}.",
        "",
        *scenario_table(rows),
        "",
        *following_table(rows),
        "",
        *other_table(report),
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *(f"| {t['target']} | {t['measured']} | {t['verdict']} |" for t in report["targets"]),
    ]
    return "\n".join(lines)
