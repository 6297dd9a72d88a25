"""What a scenario yields: `Row` (one tool at one N) and what its figures are compared with.

Why here: the rows are measured by the harness, judged by `bench.targets` and printed by
`bench.report`; the lower bound, the percentile and the speed-up over the peer are defined once,
for all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LOOK_ACTIONS", "Row", "find_row", "lower_bound_s", "percentile", "speedup"]

REGISTER_BURST, REGISTER_RATE = 20, 1.0  # ECS's RegisterTaskDefinition bucket
LOOK_ACTIONS = ("DescribeServices", "DescribeServiceDeployments", "ListServiceDeployments")


def lower_bound_s(n: int, rollout_s: float, accounts: int = 1) -> float:
    """One rollout plus what ECS's RegisterTaskDefinition bucket needs for `n` registrations;
    over several accounts, each with a bucket of its own, what the fullest account needs."""
    per_account = -(-n // max(1, accounts))
    return rollout_s + max(0, per_account - REGISTER_BURST) / REGISTER_RATE


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class Row:
    """One tool at one N. `wall_s` None = not run (`note` says why)."""

    n: int
    tool: str
    rollout_s: float
    lower_bound_s: float
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    events: int = 0
    succeeded: int = 0
    targets: int = 0
    exit_code: int | None = None
    first_line_s: float | None = None
    throttled: dict[str, int] = field(default_factory=dict)
    load_before: float | None = None
    throttling: bool = True
    accounts: int = 1  # the accounts the N services are spread over (each its own ECS buckets)
    first_update_s: float | None = None  # from the tool's start to the first UpdateService ECS took
    detect_p50_ms: float | None = None  # from ECS's end of a rollout to the tool's terminal event
    detect_p99_ms: float | None = None
    detect_n: int = 0
    calls_per_job: dict[str, float] = field(default_factory=dict)  # ECS requests per action / N
    max_look_gap_s: float | None = None  # the longest a deployment went without a look
    ticker_busy_s: float = 0.0  # the emulator's ECS-events ticker: its ticks' time during the run
    follow: str = ""  # how ecs-fanout followed: "events" (the default) or "poll"
    lambda_busy_s: float | None = None  # the lambda executor: its invocations' summed duration
    lambda_invocations: int = 0
    lambda_cpu_s: float | None = None  # the CPU time of the invocations' threads (a floor)
    # queue: (busy s, invocations, CPU s)
    lambda_busy: dict[str, tuple[float, int, float]] = field(default_factory=dict)
    note: str = ""
    stderr_tail: str = ""

    @classmethod
    def start(cls, n: int, tool: str, rollout_s: float, note: str = "") -> Row:
        """A row with no figures yet, its lower bound that of `n` services with throttling on."""
        return cls(n=n, tool=tool, rollout_s=rollout_s, lower_bound_s=lower_bound_s(n, rollout_s), note=note)

    @property
    def ratio(self) -> float | None:
        return None if self.wall_s is None else self.wall_s / self.lower_bound_s

    @property
    def busy_per_job_s(self) -> float | None:
        """Lambda's billed seconds per job (all invocations of the run: jobs, timers, ECS's events)."""
        return None if self.lambda_busy_s is None else self.lambda_busy_s / self.n

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "lambda_busy_per_job_s": self.busy_per_job_s}


def find_row(rows: Sequence[Row], n: int, tool: str, *, ran: bool = True) -> Row | None:
    """The row of `tool` at `n` (with `ran`, only if it was run), or None."""
    return next((r for r in rows if r.n == n and r.tool == tool and (r.wall_s is not None or not ran)), None)


def speedup(row: Row, rows: Sequence[Row], peer_tool: str = "ecs-deploy") -> float | None:
    """How many times faster than `peer_tool` (the ecs deploy loop, or `ecs-deploy-all`: all at
    once) at the same N; None without both figures."""
    peer = find_row(rows, row.n, peer_tool)
    if peer is None or row.wall_s is None or row.tool.startswith("ecs-deploy") or peer.wall_s is None:
        return None
    return peer.wall_s / row.wall_s
