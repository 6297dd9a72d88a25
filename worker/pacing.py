"""How often a job may look at its deployment when many jobs share one account's budget. Pure.

ECS gives each account and region one DescribeServices bucket (100 burst, 20 a second) and,
we assume, one of the same size for DescribeServiceDeployments. A call looks at up to 10
services of one cluster (DescribeServices) or up to 20 service deployments of any cluster
(DescribeServiceDeployments), so jobs that look at the same moment cost a fraction of a call
each. `worker.looker` makes them look at the same moments: every job whose interval is I looks
on the same grid (multiples of I), so one round serves them all in as few calls as the batch
sizes allow. The interval is the caller's floor (`poll_interval`, or the slow safety poll under
events) unless the budget needs more: a round's calls at the budget's rate, with a share left
for the calls jobs make one by one (describing a service at start, listing deployments).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from worker.contract import Follow, JobOptions

__all__ = [
    "BATCH",
    "BUDGET_SHARE",
    "SAFETY_POLL_S",
    "LookKey",
    "batches",
    "calls_per_round",
    "interval_s",
    "longest_unlooked_first",
    "look_floor_s",
    "next_grid_in",
]

# Where a look goes: ("DescribeServices", cluster) or ("DescribeServiceDeployments", "").
LookKey = tuple[str, str]

BATCH: Mapping[str, int] = {"DescribeServices": 10, "DescribeServiceDeployments": 20}
# Of each bucket's refill, the looker plans to spend this share; the rest is for other calls.
BUDGET_SHARE = 0.8
# Under `follow = "events"`, ECS's events end the waits: a look this often is only a safety net.
SAFETY_POLL_S = 30.0

T = TypeVar("T")


def look_floor_s(options: JobOptions) -> float:
    """The shortest interval between two looks of this job (the budget may lengthen it)."""
    if options.follow is Follow.EVENTS:
        return max(options.poll_min_s, SAFETY_POLL_S)
    return options.poll_min_s


def calls_per_round(followers: Mapping[LookKey, int]) -> dict[str, int]:
    """The calls of one round in which every follower looks once, per action."""
    calls: dict[str, int] = {}
    for (action, _group), count in followers.items():
        if count > 0:
            calls[action] = calls.get(action, 0) + math.ceil(count / BATCH[action])
    return calls


def interval_s(floor_s: float, followers: Mapping[LookKey, int], rates: Mapping[str, float]) -> float:
    """Seconds between two looks of a job: `floor_s`, or longer when a round of every follower's
    look would spend more than the budget's share of each action's refill (`rates`: per second)."""
    needed = [
        calls / (rates[action] * BUDGET_SHARE)
        for action, calls in calls_per_round(followers).items()
        if rates.get(action)
    ]
    return max([floor_s, *needed])


def next_grid_in(now: float, interval: float) -> float:
    """Seconds from `now` to the next multiple of `interval`: where jobs of that interval meet."""
    return (math.floor(now / interval) + 1) * interval - now


def batches(items: Iterable[tuple[LookKey, T]]) -> list[tuple[LookKey, list[T]]]:
    """`items` (in the order to serve them: the longest unlooked first) grouped by where they go,
    at most a call's worth each; the first call holds the first item."""
    open_batches: dict[LookKey, list[T]] = {}
    out: list[tuple[LookKey, list[T]]] = []
    for key, item in items:
        batch = open_batches.get(key)
        if batch is None or len(batch) >= BATCH[key[0]]:
            batch = open_batches[key] = []
            out.append((key, batch))
        batch.append(item)
    return out


def longest_unlooked_first(asks: Sequence[tuple[float, T]]) -> list[T]:
    """Asks as (last looked, ask), oldest look first (a stable order for ties)."""
    return [ask for _, ask in sorted(asks, key=lambda pair: pair[0])]
