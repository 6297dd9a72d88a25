"""A worker's outbox: its events published in order, held while Redis is away.

ECS goes on rolling out whatever happens to Redis, and so does the worker: an event it cannot
publish waits here, and goes out when Redis answers again (tried again with the next event, at
most every second, and by `drain`, which a job's last event waits for). While events are held,
every event the process's jobs emit queues behind them and all go out in the order emitted, so
each job's events reach the stream in order and the publisher's script numbers them strictly
increasing. While nothing is held, events go out at once, jobs side by side (a job emits one
event at a time, so its own order holds).

The outbox is bounded (`limit` events): past it, the oldest progress report (`in_progress`,
which the next one supersedes) is dropped, else the oldest event that is not a job's last; a
job's terminal or hand-over event is never dropped. Dropping is logged as a warning.

An event whose publish failed as the connection broke may have reached Redis all the same: it
is sent again and appears twice in the stream, the second time under the job's next number
(what the run core folds is unaffected: a repeated phase changes nothing).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from worker.contract import Phase, WorkerEvent
from worker.publisher import EventPublisher
from worker.redis_outage import REDIS_DOWN, Backoff

__all__ = ["DRAIN_PATIENCE_S", "OUTBOX_LIMIT", "Outbox"]

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 5000  # ~2 KiB each at most: ~10 MiB, well inside a Lambda's memory
DRAIN_PATIENCE_S = 120.0  # how long a job's last event waits for Redis before it gives up


@dataclass(eq=False)  # one letter is one emission: compared by identity
class _Letter:
    event: WorkerEvent
    seq: int | None = None  # the number the publisher gave it, once published

    @property
    def final(self) -> bool:
        """A delivery's last word: never dropped."""
        return self.event.phase.terminal or self.event.phase is Phase.HANDED_OVER


class Outbox:
    """Publishes events in emission order; holds them (up to `limit`) while Redis is away."""

    def __init__(self, publisher: EventPublisher, *, limit: int = OUTBOX_LIMIT) -> None:
        self._publisher = publisher
        self._limit = limit
        self._pending: deque[_Letter] = deque()
        self._in_flight: _Letter | None = None  # being published: not to be dropped
        self._lock = anyio.Lock()
        self._backoff = Backoff()
        self._down_since: float | None = None  # time.monotonic()
        self._dropped = 0  # since Redis went away

    @property
    def pending(self) -> int:
        """Events waiting for Redis."""
        return len(self._pending)

    async def send(self, event: WorkerEvent) -> int:
        """Publish `event` after every event emitted before it; the job's number to go on from:
        the one the publisher gave it, or the one it asked for while it waits."""
        if not self._pending and self._backoff.due:
            try:
                return (await self._publisher.publish(event)).seq
            except REDIS_DOWN as exc:
                self._went_away(exc)
        letter = _Letter(event)
        self._pending.append(letter)
        self._keep_bound()
        if self._backoff.due:
            await self._flush()
        return event.seq if letter.seq is None else letter.seq

    async def drain(self, patience_s: float = DRAIN_PATIENCE_S) -> bool:
        """Wait until every held event is published, at most `patience_s`; whether they all were."""
        give_up_at = time.monotonic() + patience_s
        while not await self._flush():
            if time.monotonic() >= give_up_at:
                log.warning(
                    "Redis was unreachable for %.0fs: %d events of this worker were never published",
                    patience_s,
                    len(self._pending),
                )
                return False
            await anyio.sleep(0.1)
        return True

    async def _flush(self) -> bool:
        """Publish held events, oldest first, until Redis refuses; whether none is left."""
        async with self._lock:
            while self._pending:
                if not self._backoff.due:
                    return False
                letter = self._in_flight = self._pending[0]
                try:
                    published = await self._publisher.publish(letter.event)
                except REDIS_DOWN as exc:
                    self._went_away(exc)
                    return False
                finally:
                    self._in_flight = None
                self._pending.popleft()
                letter.seq = published.seq
            self._came_back()
            return True

    def _went_away(self, exc: BaseException) -> None:
        wait_s = self._backoff.failed()
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.info("Redis is unreachable (%s): events are buffered until it is back", exc)
        else:
            log.debug(
                "Redis still unreachable (%s): %d events buffered, next try in %.1fs",
                exc,
                self.pending,
                wait_s,
            )

    def _came_back(self) -> None:
        self._backoff.succeeded()
        if self._down_since is None:
            return
        away_s = time.monotonic() - self._down_since
        if self._dropped:
            log.warning(
                "Redis is back after %.1fs: buffered events published, %d dropped (outbox limit %d)",
                away_s,
                self._dropped,
                self._limit,
            )
        else:
            log.info("Redis is back after %.1fs: buffered events published in order", away_s)
        self._down_since, self._dropped = None, 0

    def _keep_bound(self) -> None:
        if len(self._pending) <= self._limit:
            return
        victim = self._oldest(lambda letter: letter.event.phase is Phase.IN_PROGRESS)
        if victim is None:
            victim = self._oldest(lambda letter: not letter.final)
        if victim is None:
            return  # only jobs' last words: kept, one per job at most
        self._pending.remove(victim)
        if self._dropped == 0:
            log.warning(
                "Redis is unreachable and %d events are buffered (the limit): dropping the oldest "
                "progress reports first (%s, seq %d)",
                self._limit,
                victim.event.job_id,
                victim.event.seq,
            )
        self._dropped += 1

    def _oldest(self, droppable: Callable[[_Letter], bool]) -> _Letter | None:
        return next(
            (letter for letter in self._pending if letter is not self._in_flight and droppable(letter)), None
        )
