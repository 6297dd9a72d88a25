"""One account and region's looks at its deployments, shared by the jobs of one process.

Why: a job alone asks ECS about its one deployment; 20 jobs of one cluster doing that every
second spend 20 DescribeServices a second, the account's whole refill, and 1,000 jobs cannot
be served at all. ECS answers for 10 services of one cluster per DescribeServices and 20
service deployments per DescribeServiceDeployments, so the local executor's jobs look
*together*: each job's `Watch` registers here while it follows (`following`), sleeps until the
next point of its interval's grid (`pause_s`: jobs of one interval meet there), then asks
(`ask`). The looker gathers the asks of that moment, orders them longest unlooked first,
batches them by cluster (DescribeServices) or by account and region (DescribeServiceDeployments),
takes one budget token per call and hands each job its answer. The interval is the job's floor
unless the budget needs longer (`worker.pacing`), so 20 jobs look every second and 1,000 still
fit the budget. A Lambda worker has one job and no looker: it looks alone, paced by the shared
budget (`worker.follow`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from worker.budget import ECS_BUCKETS
from worker.pacing import BATCH, LookKey, batches, interval_s, longest_unlooked_first, next_grid_in

if TYPE_CHECKING:
    from worker.ecs_calls import ServiceCalls

__all__ = ["GATHER_S", "Looker"]

# Jobs of one grid point wake together but reach `ask` one after another (each has a little to
# do first): the looker waits this long after an ask, and again while more keep coming.
GATHER_S = 0.02
MAX_GATHER_S = 0.2


@dataclass(eq=False)
class _Ask:
    key: LookKey
    item: str  # a service (DescribeServices) or a service deployment's ARN
    metered: bool  # the job draws from the shared budget
    last: float  # when this item was last looked at (monotonic; 0: never)
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: dict[str, Any] | None = None
    error: BaseException | None = None


class Looker:
    """Batches and paces the looks of one ECS client's (one account and region's) jobs."""

    def __init__(
        self, calls: ServiceCalls, *, rates: Mapping[str, float] | None = None, gather_s: float = GATHER_S
    ) -> None:
        self._calls = calls
        self._rates = dict(rates or {action: ECS_BUCKETS[action].per_second for action in BATCH})
        self._gather_s = gather_s
        self._followers: Counter[LookKey] = Counter()
        self._last: dict[str, float] = {}
        self._asks: list[_Ask] = []
        self._wake = anyio.Event()
        self.calls: Counter[str] = Counter()  # calls made, per action

    @contextmanager
    def following(self, key: LookKey, item: str) -> Iterator[None]:
        """A job follows `item` through `key` meanwhile: it counts in the pacing."""
        self._followers[key] += 1
        try:
            yield
        finally:
            self._followers[key] -= 1
            if self._followers[key] <= 0:
                del self._followers[key]
            self._last.pop(item, None)

    def interval_s(self, floor_s: float) -> float:
        return interval_s(floor_s, self._followers, self._rates)

    def pause_s(self, floor_s: float) -> float:
        """How long a job whose floor is `floor_s` sleeps before its next look: to the next point
        of its interval's grid, where the other jobs of that interval look too."""
        return next_grid_in(time.monotonic(), self.interval_s(floor_s))

    async def ask(self, key: LookKey, item: str, *, metered: bool) -> dict[str, Any] | None:
        """ECS's answer for `item` in the looker's next call for `key`; None when ECS has none."""
        ask = _Ask(key, item, metered, self._last.get(item, 0.0))
        self._asks.append(ask)
        self._wake.set()
        await ask.done.wait()
        if ask.error is not None:
            raise ask.error
        return ask.answer

    async def run(self) -> None:
        """Serve the asks until cancelled (the executor cancels it when its jobs are done)."""
        async with anyio.create_task_group() as tg:
            while True:
                await self._wake.wait()
                await self._gather()
                self._wake = anyio.Event()
                asks, self._asks = self._asks, []
                ordered = longest_unlooked_first([(ask.last, ask) for ask in asks])
                for key, batch in batches((ask.key, ask) for ask in ordered):
                    tg.start_soon(self._serve, key, batch)

    async def _gather(self) -> None:
        started, seen = time.monotonic(), -1
        while len(self._asks) != seen and time.monotonic() - started < MAX_GATHER_S:
            seen = len(self._asks)
            await anyio.sleep(self._gather_s)

    async def _serve(self, key: LookKey, batch: list[_Ask]) -> None:
        action, group = key
        items = list(dict.fromkeys(ask.item for ask in batch))
        metered = any(ask.metered for ask in batch)
        self.calls[action] += 1
        try:
            if action == "DescribeServices":
                found = await self._calls.describe_many(group, items, metered=metered)
            else:
                found = await self._calls.describe_deployments_many(items, metered=metered)
        except Exception as exc:  # each job's look raises it, as its own call would have
            for ask in batch:
                ask.error = exc
                ask.done.set()
            return
        now = time.monotonic()
        for ask in batch:
            ask.answer = found.get(ask.item)
            self._last[ask.item] = now
            ask.done.set()
