"""Issue 16's verdicts (bench.targets) and tables (bench.report) from made-up rows: pure."""

from __future__ import annotations

from bench.report import inflight_table, lambda_table, side_by_side_table
from bench.results import Row
from bench.targets import targets


def _row(n: int, tool: str, wall_s: float, **figures: object) -> Row:
    row = Row.start(n, tool, 5.0)
    row.wall_s, row.succeeded, row.targets = wall_s, n, n
    for name, value in figures.items():
        setattr(row, name, value)
    return row


def _verdicts(rows: list[Row]) -> dict[str, tuple[str, str]]:
    return {target: (measured, verdict) for target, measured, verdict in targets({}, rows)}


def test_issue_16_targets_pass_and_fail_on_their_own_figures() -> None:
    rows = [
        _row(2, "ecs-deploy-all", 8.0),
        _row(2, "local", 6.0, detect_p50_ms=90.0, detect_p99_ms=120.0, follow="events"),
        _row(20, "ecs-deploy-all", 30.0),
        _row(20, "local", 6.4, detect_p50_ms=100.0, detect_p99_ms=300.0, follow="events"),
        _row(20, "local-poll", 7.0, detect_p50_ms=600.0, detect_p99_ms=1100.0, follow="poll"),
        _row(1000, "local-poll-inflight", 190.0, max_look_gap_s=14.0, follow="poll"),
        _row(
            1000,
            "local-inflight",
            185.0,
            calls_per_job={"DescribeServices": 2.4},
            throttled={"DescribeServices": 3},
            follow="events",
        ),
        _row(20, "lambda-billing", 70.0, lambda_busy_s=30.0, lambda_invocations=45),
    ]
    verdicts = _verdicts(rows)

    assert verdicts["N=20 wall <= T + 1.5 s (local)"] == ("6.40 s (T + 1.40 s)", "PASS")
    assert verdicts["faster than `ecs deploy` all at once at every N >= 2 (local)"][1] == "PASS"
    assert verdicts["detection lag p99 <= 250 ms at N=20 (local, follow events)"][1] == "FAIL"
    assert verdicts["detection lag p99 <= 1500 ms at N=20 (local-poll, follow poll)"][1] == "PASS"
    poll = verdicts["N in flight, polling: 0 throttled looks, each looked at every <= 60 s"]
    assert poll == ("N=1000: 0 throttled, longest gap 14.0 s", "PASS")
    events = verdicts["N in flight, events: <= 2 DescribeServices per job"]
    assert events == ("N=1000: 2.40 / job, 3 throttled looks", "FAIL")
    assert verdicts["Lambda billed <= 5 s per job (lambda, T = 60 s)"] == (
        "1.50 s / job (N=20, T = 5 s)",
        "PASS",
    )

    side = side_by_side_table(rows)
    assert side[2].startswith("| 2 | not run | 8.00 | 6.00 | not run | 1.33x | 90 / 120 (0) | not run |")
    assert len(inflight_table(rows)) == 4 and len(lambda_table(rows)) == 3


def test_what_was_not_measured_is_not_run_never_a_pass() -> None:
    verdicts = _verdicts([_row(1, "local", 6.0)])
    for target in (
        "N in flight, polling: 0 throttled looks, each looked at every <= 60 s",
        "N in flight, events: <= 2 DescribeServices per job",
        "Lambda billed <= 5 s per job (lambda, T = 60 s)",
        "detection lag p99 <= 250 ms at N=20 (local, follow events)",
    ):
        assert verdicts[target] == ("not run", "not run")
    lost = _row(20, "lambda-billing", 70.0, lambda_busy_s=30.0, note="1 not succeeded")
    lost.succeeded = 19
    measured, verdict = _verdicts([lost])["Lambda billed <= 5 s per job (lambda, T = 60 s)"]
    assert verdict == "FAIL" and "1 of 20 not succeeded" in measured
