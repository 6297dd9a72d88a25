"""The targets ecs-fanout is held to, and each one's verdict on a run's figures.

Why: BENCHMARKS.md states these goals; judging them in code, from the same figures the report
prints, keeps the verdicts honest: a figure that was not measured is "not run", never a PASS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.report import fmt, throttled_looks
from bench.results import Row, find_row, speedup

__all__ = ["targets", "verdict"]

TARGET_RATIO_N200 = 1.05
TARGET_SPEEDUP_N20 = 20.0
TARGET_LATENCY_P99_MS = 5.0
TARGET_WARM_PACK_S = 1.0
TARGET_HELP_S = 0.3
TARGET_RSS_1000_MB = 150.0
TARGET_TWO_ACCOUNTS = 1.25  # N over two accounts, against N/2 in one
TARGET_OVER_T_N20_S = 1.5  # wall at N = 20 at most T + this
TARGET_DETECT_P99_MS = {"events": 250.0, "poll": 1500.0}  # following ECS's events / polling
TARGET_INFLIGHT_DESCRIBES = 2.0  # DescribeServices per job, N in flight, following events
TARGET_LAMBDA_BILLED_S = 5.0  # Lambda's billed seconds per job, T = 60 s
TARGET_FIRST_UPDATE_S = 1.0
TARGET_LOOK_GAP_S = 60.0

Target = tuple[str, str, str]  # (target, measured, verdict)


def verdict(ok: bool | None) -> str:
    return "not run" if ok is None else ("PASS" if ok else "FAIL")


def _ratio_n200(rows: Sequence[Row], tool: str) -> Target:
    row = find_row(rows, 200, tool)
    ok = None if row is None or row.ratio is None else row.ratio <= TARGET_RATIO_N200 and row.note == ""
    measured = (
        "not run" if row is None else f"{row.ratio:.3f}x ({row.wall_s:.1f}s / {row.lower_bound_s:.0f}s)"
    )
    return f"N=200 within {TARGET_RATIO_N200}x the lower bound ({tool})", measured, verdict(ok)


def _speedup_n20(rows: Sequence[Row], tool: str) -> Target:
    row = find_row(rows, 20, tool)
    up = None if row is None else speedup(row, rows)
    ok = None if up is None else up >= TARGET_SPEEDUP_N20
    target = f">= {TARGET_SPEEDUP_N20:g}x faster than the ecs deploy loop at N=20 ({tool})"
    return target, fmt(up, ".1f", "x"), verdict(ok)


def _latency(rows: Sequence[Row], tool: str) -> Target:
    measured_rows = [r for r in rows if r.tool == tool and r.latency_p99_ms is not None]
    worst = max(measured_rows, key=lambda r: r.latency_p99_ms or 0.0, default=None)
    ok = None if worst is None else (worst.latency_p99_ms or 0.0) <= TARGET_LATENCY_P99_MS
    measured = "not run" if worst is None else f"worst p99 {worst.latency_p99_ms:.2f} ms (N={worst.n})"
    return f"event latency p99 <= {TARGET_LATENCY_P99_MS:g} ms ({tool})", measured, verdict(ok)


def _pack_and_upload(report: dict[str, Any]) -> Target:
    warm = ((report.get("pack") or {}).get("warm") or {}).get("wall_s")
    unchanged = ((report.get("uploads") or {}).get("unchanged") or {}).get("uploaded_bytes")
    ok = None if warm is None or unchanged is None else warm <= TARGET_WARM_PACK_S and unchanged == 0
    return (
        f"warm pack <= {TARGET_WARM_PACK_S:g} s, 0 bytes uploaded when unchanged",
        f"{fmt(warm, '.2f', ' s')}, {'not run' if unchanged is None else f'{unchanged:,} bytes'}",
        verdict(ok),
    )


def _startup(report: dict[str, Any]) -> list[Target]:
    startup = report.get("startup") or {}
    help_s = startup.get("help_median_s")
    textual = startup.get("json_imports_textual")
    return [
        (
            f"`--help` <= {TARGET_HELP_S:g} s",
            fmt(help_s, ".3f", " s (median)"),
            verdict(None if help_s is None else help_s <= TARGET_HELP_S),
        ),
        (
            "`--json` path does not import Textual",
            "not run"
            if textual is None
            else ("imports textual" if textual else "no textual module imported"),
            verdict(None if textual is None else not textual),
        ),
    ]


def _rss_1000(rows: Sequence[Row], tool: str) -> Target:
    row = find_row(rows, 1000, f"{tool}-rss", ran=False)
    rss = None if row is None else row.peak_rss_mb
    ok = None if rss is None or row is None else rss <= TARGET_RSS_1000_MB and row.note == ""
    target = f"orchestrator peak RSS <= {TARGET_RSS_1000_MB:g} MB at N=1000 ({tool})"
    return target, fmt(rss, ".0f", " MB"), verdict(ok)


def _two_accounts(report: dict[str, Any], rows: Sequence[Row]) -> Target:
    """Two accounts have two ECS buckets: N split over them takes about what N/2 take in one."""
    n = report.get("accounts_n") or 0
    split, half = find_row(rows, n, "local-2acct"), find_row(rows, n // 2, "local-1acct")
    one = find_row(rows, n, "local-1acct")
    target = f"N over two accounts within {TARGET_TWO_ACCOUNTS:g}x of N/2 in one (local, throttled)"
    if split is None or half is None or split.wall_s is None or half.wall_s is None:
        return target, "not run", verdict(None)
    ratio = split.wall_s / half.wall_s
    measured = f"{ratio:.2f}x ({split.wall_s:.1f}s / {half.wall_s:.1f}s"
    measured += f"; N in one account {one.wall_s:.1f}s)" if one is not None and one.wall_s else ")"
    return target, measured, verdict(ratio <= TARGET_TWO_ACCOUNTS and split.note == "")


def _wall_n20(rows: Sequence[Row]) -> Target:
    row = find_row(rows, 20, "local")
    target = f"N=20 wall <= T + {TARGET_OVER_T_N20_S:g} s (local)"
    if row is None or row.wall_s is None:
        return target, "not run", verdict(None)
    bound = row.rollout_s + TARGET_OVER_T_N20_S
    ok = row.wall_s <= bound and row.note == ""
    return target, f"{row.wall_s:.2f} s (T + {row.wall_s - row.rollout_s:.2f} s)", verdict(ok)


def _beats_all_at_once(rows: Sequence[Row]) -> Target:
    pairs = [(r, speedup(r, rows, "ecs-deploy-all")) for r in rows if r.tool == "local" and r.n >= 2]
    measured = [(r.n, up) for r, up in pairs if up is not None]
    target = "faster than `ecs deploy` all at once at every N >= 2 (local)"
    if not measured:
        return target, "not run", verdict(None)
    text = ", ".join(f"N={n}: {up:.2f}x" for n, up in measured)
    return target, text, verdict(all(up > 1.0 for _, up in measured))


def _detection_n20(rows: Sequence[Row], tool: str, follow: str) -> Target:
    row = find_row(rows, 20, tool)
    p99 = None if row is None else row.detect_p99_ms
    limit = TARGET_DETECT_P99_MS[follow]
    ok = None if p99 is None else p99 <= limit
    measured = (
        "not run" if row is None or p99 is None else f"p50 {row.detect_p50_ms:.0f} ms, p99 {p99:.0f} ms"
    )
    return f"detection lag p99 <= {limit:g} ms at N=20 ({tool}, follow {follow})", measured, verdict(ok)


def _first_update_n20(rows: Sequence[Row]) -> Target:
    row = find_row(rows, 20, "local")
    first = None if row is None else row.first_update_s
    ok = None if first is None else first <= TARGET_FIRST_UPDATE_S
    target = f"first UpdateService <= {TARGET_FIRST_UPDATE_S:g} s after start at N=20 (local)"
    return target, fmt(first, ".3f", " s"), verdict(ok)


def _ran_row(rows: Sequence[Row], tool: str) -> Row | None:
    return next((r for r in rows if r.tool == tool and r.wall_s is not None), None)


def _outcome(row: Row) -> str:
    return "" if row.note == "" else f"; {row.targets - row.succeeded} of {row.targets} not succeeded"


def _inflight_poll(rows: Sequence[Row]) -> Target:
    row = _ran_row(rows, "local-poll-inflight")
    target = f"N in flight, polling: 0 throttled looks, each looked at every <= {TARGET_LOOK_GAP_S:g} s"
    if row is None:
        return target, "not run", verdict(None)
    throttled, gap = throttled_looks(row), row.max_look_gap_s
    ok = throttled == 0 and gap is not None and gap <= TARGET_LOOK_GAP_S and row.note == ""
    measured = f"N={row.n}: {throttled} throttled, longest gap {fmt(gap, '.1f', ' s')}{_outcome(row)}"
    return target, measured, verdict(ok)


def _inflight_events(rows: Sequence[Row]) -> Target:
    row = _ran_row(rows, "local-inflight")
    target = f"N in flight, events: <= {TARGET_INFLIGHT_DESCRIBES:g} DescribeServices per job"
    if row is None:
        return target, "not run", verdict(None)
    per_job = row.calls_per_job.get("DescribeServices", 0.0)
    ok = per_job <= TARGET_INFLIGHT_DESCRIBES and row.note == ""
    measured = f"N={row.n}: {per_job:.2f} / job, {throttled_looks(row)} throttled looks{_outcome(row)}"
    return target, measured, verdict(ok)


def _lambda_billing(rows: Sequence[Row]) -> Target:
    row = _ran_row(rows, "lambda-billing")
    per_job = None if row is None else row.busy_per_job_s
    target = f"Lambda billed <= {TARGET_LAMBDA_BILLED_S:g} s per job (lambda, T = 60 s)"
    if row is None or per_job is None:
        return target, "not run", verdict(None)
    ok = per_job <= TARGET_LAMBDA_BILLED_S and row.note == ""
    measured = f"{per_job:.2f} s / job (N={row.n}, T = {row.rollout_s:g} s){_outcome(row)}"
    return target, measured, verdict(ok)


def targets(report: dict[str, Any], rows: Sequence[Row]) -> list[Target]:
    """(target, measured, verdict) lines."""
    executors = ("local", "lambda")
    return [
        _wall_n20(rows),
        _beats_all_at_once(rows),
        _detection_n20(rows, "local", "events"),
        _detection_n20(rows, "local-poll", "poll"),
        _inflight_poll(rows),
        _inflight_events(rows),
        _lambda_billing(rows),
        *(_ratio_n200(rows, tool) for tool in executors),
        *(_rss_1000(rows, tool) for tool in executors),
        _first_update_n20(rows),
        *(_speedup_n20(rows, tool) for tool in executors),
        *(_latency(rows, tool) for tool in (*executors, "serial")),
        _pack_and_upload(report),
        *_startup(report),
        _two_accounts(report, rows),
    ]
