"""Running a side task (heartbeats) for exactly as long as a call: one helper for every waiter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio

__all__ = ["beside"]

T = TypeVar("T")


async def beside(body: Callable[[], Awaitable[T]], other: Callable[[], Coroutine[Any, Any, None]]) -> T:
    """`body()`'s result (or its exception, as itself), with `other()` running beside it until
    `body` ends. `other` must not raise."""
    results: list[T] = []
    errors: list[Exception] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        try:
            results.append(await body())
        except Exception as exc:  # raised below, as itself: not wrapped in an ExceptionGroup
            errors.append(exc)
        finally:
            tg.cancel_scope.cancel()
    if errors:
        raise errors[0]
    return results[0]
