"""The Markdown report `python -m bench` prints: the machine, the scenario table, the other
measurements and the targets' verdicts.

Why a module of its own: what is measured (`bench.harness`, `bench.probes`) and how it is
judged (`bench.targets`) do not change with how it is laid out; this is the one place that
lays it out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.results import LOOK_ACTIONS, Row, find_row, speedup

__all__ = ["fmt", "lag", "markdown", "throttled_looks"]


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


def lag(r: Row | None) -> str:
    """Detection lag p50 / p99 ms (jobs measured)."""
    if r is None or r.wall_s is None:
        return "not run"
    return f"{fmt(r.detect_p50_ms, '.0f')} / {fmt(r.detect_p99_ms, '.0f')} ({r.detect_n})"


def throttled_looks(r: Row) -> int:
    """Throttled DescribeServices and DescribeServiceDeployments of a run."""
    return sum(r.throttled.get(a, 0) for a in LOOK_ACTIONS[:2])


def following_table(rows: Sequence[Row]) -> list[str]:
    """What ECS saw of ecs-fanout's runs: its first change, how late it noticed ends, its looks."""
    out = [
        "| N | tool | follow | first UpdateService s | detection lag p50 / p99 ms | DescribeServices / job "
        "| DescribeServiceDeployments / job | ListServiceDeployments / job | longest gap between looks s "
        "| emulator's events ticker busy |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.wall_s is None or r.tool.startswith("ecs-deploy"):
            continue
        calls = [fmt(r.calls_per_job.get(a), ".2f") for a in LOOK_ACTIONS]
        gap = fmt(r.max_look_gap_s, ".2f")
        out.append(
            f"| {r.n} | {r.tool} | {r.follow or '-'} | {fmt(r.first_update_s, '.3f')} | {lag(r)} "
            f"| {' | '.join(calls)} | {gap} | {r.ticker_busy_s / r.wall_s:.0%} |"
        )
    return out


def _wall(r: Row | None) -> str:
    if r is None or r.wall_s is None:
        return "not run"
    return f"{r.wall_s:.2f}" + ("" if r.succeeded == r.targets else f" ({r.succeeded}/{r.targets} ok)")


def side_by_side_table(rows: Sequence[Row]) -> list[str]:
    """Issue 16's comparison per N: the `ecs deploy` loop, all at once, ecs-fanout following
    ECS's events (`local`) and polling (`local-poll`): wall time, detection lag, calls."""
    ns = sorted({r.n for r in rows if r.tool in ("local", "local-poll") and r.wall_s is not None})
    out = [
        "| N | ecs deploy loop s | ecs deploy all at once s | ecs-fanout events s | ecs-fanout poll s "
        "| events vs all at once | lag events p50 / p99 ms | lag poll p50 / p99 ms "
        "| DescribeServices / job events / poll |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in ns:
        loop, every = find_row(rows, n, "ecs-deploy"), find_row(rows, n, "ecs-deploy-all")
        events, poll = find_row(rows, n, "local"), find_row(rows, n, "local-poll")
        up = None if events is None else speedup(events, rows, "ecs-deploy-all")
        calls = " / ".join(
            "-" if r is None else fmt(r.calls_per_job.get("DescribeServices"), ".2f") for r in (events, poll)
        )
        out.append(
            f"| {n} | {_wall(loop)} | {_wall(every)} | {_wall(events)} | {_wall(poll)} "
            f"| {fmt(up, '.2f', 'x')} | {lag(events)} | {lag(poll)} | {calls} |"
        )
    return out


def inflight_table(rows: Sequence[Row]) -> list[str]:
    """N rollouts already in flight, followed at once: what following them cost ECS's buckets."""
    out = [
        "| N | follow | wall s | CPU s | peak RSS MB | succeeded | throttled looks | DescribeServices / job "
        "| DescribeServiceDeployments / job | longest gap between looks s | detection lag p50 / p99 ms |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if not r.tool.endswith("-inflight") or r.wall_s is None:
            continue
        ok = f"{r.succeeded}/{r.targets}" + (f" ({r.note})" if r.note else "")
        out.append(
            f"| {r.n} | {r.follow} | {r.wall_s:.2f} | {fmt(r.cpu_s)} | {fmt(r.peak_rss_mb, '.0f')} | {ok} "
            f"| {throttled_looks(r)} | {fmt(r.calls_per_job.get('DescribeServices'))} "
            f"| {fmt(r.calls_per_job.get('DescribeServiceDeployments'))} | {fmt(r.max_look_gap_s, '.1f')} "
            f"| {lag(r)} |"
        )
    return out


def lambda_table(rows: Sequence[Row]) -> list[str]:
    """The lambda executor's runs: what Lambda would bill (the emulated mappings' invocations)."""
    out = [
        "| N | tool | T s | wall s | succeeded | invocations | billed s | billed s / job "
        "| workers' CPU s / job | by queue: billed s (invocations) |",
        "|---:|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.lambda_busy_s is None or r.wall_s is None:
            continue
        ok = f"{r.succeeded}/{r.targets}" + (f" ({r.note})" if r.note else "")
        by_queue = ", ".join(
            f"{q} {busy:.2f} ({calls})" for q, (busy, calls, _) in sorted(r.lambda_busy.items())
        )
        out.append(
            f"| {r.n} | {r.tool} | {r.rollout_s:g} | {r.wall_s:.2f} | {ok} | {r.lambda_invocations} "
            f"| {r.lambda_busy_s:.2f} | {fmt(r.busy_per_job_s)} "
            f"| {fmt(None if r.lambda_cpu_s is None else r.lambda_cpu_s / r.n)} | {by_queue} |"
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
        if floor := startup.get("floor"):
            out.append(
                f"| import floor, best of {len(startup['help_s'])} | `python -c pass` "
                f"{floor['python_s']:.3f} s; the product's packages alone {floor['stack_imports_s']:.3f} s; "
                f"`ecs deploy --help` (the peer's whole start) {floor['peer_help_s']:.3f} s |"
            )
    return out


def _tables(*tables: list[str]) -> list[str]:
    """The tables that have a row beyond their header, each followed by a blank line."""
    return [line for table in tables if len(table) > 2 for line in (*table, "")]


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
        *_tables(
            scenario_table(rows),
            side_by_side_table(rows),
            following_table(rows),
            inflight_table(rows),
            lambda_table(rows),
        ),
        *other_table(report),
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        *(f"| {t['target']} | {t['measured']} | {t['verdict']} |" for t in report["targets"]),
    ]
    return "\n".join(lines)
