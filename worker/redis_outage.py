"""Riding out a Redis that went away: which errors mean "Redis is away", and patient retries.

A worker must outlive a Redis restart (a crash, a failover, a deploy of the cache): ECS goes on
rolling out whatever Redis does, so the worker goes on following it. Each user of Redis decides
what to do meanwhile (the outbox buffers events, the ledger keeps its writes for later, the
budget paces locally); this module only says what an outage looks like and how to wait one out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["REDIS_DOWN", "Backoff", "retry_while_down"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# What redis-py raises when the server cannot be reached or answers nothing (a refused or reset
# connection, a server still loading its append-only file, a pool with no connection to give).
REDIS_DOWN: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)

FIRST_RETRY_S = 0.1
LAST_RETRY_S = 1.0  # a restarted Redis is noticed within a second


class Backoff:
    """Waits between attempts: 0.1 s doubling to 1 s, and back to 0.1 s after a success."""

    def __init__(self, first_s: float = FIRST_RETRY_S, last_s: float = LAST_RETRY_S) -> None:
        self._first_s = first_s
        self._last_s = last_s
        self._next_s = first_s
        self._not_before = 0.0  # time.monotonic()

    @property
    def due(self) -> bool:
        """Whether the next attempt may be made now."""
        return time.monotonic() >= self._not_before

    def failed(self) -> float:
        """One more failure: the seconds until the next attempt."""
        wait_s = self._next_s
        self._not_before = time.monotonic() + wait_s
        self._next_s = min(self._next_s * 2, self._last_s)
        return wait_s

    def succeeded(self) -> None:
        self._next_s = self._first_s
        self._not_before = 0.0


async def retry_while_down(call: Callable[[], Awaitable[T]], *, patience_s: float, what: str) -> T:
    """`call()`, tried again while Redis is away, for at most `patience_s`; then its error."""
    backoff = Backoff()
    give_up_at = time.monotonic() + patience_s
    while True:
        try:
            return await call()
        except REDIS_DOWN as exc:
            wait_s = backoff.failed()
            if time.monotonic() + wait_s > give_up_at:
                raise
            log.info("Redis is unreachable (%s) to %s; trying again in %.1fs", exc, what, wait_s)
            await anyio.sleep(wait_s)
