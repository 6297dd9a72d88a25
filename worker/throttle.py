"""Calls that ECS may throttle: draw from the shared budget, retry while throttled, keep talking.

ECS's RegisterTaskDefinition bucket is per account (20 burst, then 1/s): with 200 services
the last registration waits ~3 minutes, far beyond botocore's retries (and its retry quota,
which one shared client spends in seconds). So a throttled call is tried again, with
jittered backoff, until the job's deadline; a token from the shared budget (`worker.budget`)
is drawn before every attempt so that most attempts are never throttled at all. The wait
can be long, so a heartbeat runs beside it: a job silent that long would look lost.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from botocore.exceptions import ClientError

from worker.beside import beside
from worker.budget import ApiBudget

__all__ = ["THROTTLE_CODES", "is_throttled", "until_not_throttled"]

THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
THROTTLE_WAIT_S = (1.0, 8.0)  # first and longest wait between throttled attempts (jittered)
T = TypeVar("T")


def is_throttled(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in THROTTLE_CODES


async def until_not_throttled(
    call: Callable[[], Awaitable[T]],
    *,
    action: str,
    deadline: float,
    budget: ApiBudget | None,
    heartbeat: Callable[[], Awaitable[None]],
    heartbeat_every_s: float,
) -> T:
    """`call()` after a token of `action`, again while ECS throttles it, until `deadline`.

    `heartbeat()` is awaited every `heartbeat_every_s` meanwhile (whole: it is shielded).
    A refusal other than throttling, or throttling past the deadline, is raised as is.
    """

    async def beat() -> None:
        while True:
            await anyio.sleep(heartbeat_every_s)
            with anyio.CancelScope(shield=True):  # an event is published whole or not at all
                await heartbeat()

    async def attempts() -> T:
        wait = THROTTLE_WAIT_S[0]
        while True:
            if budget is not None:
                await budget.take(action)
            try:
                return await call()
            except ClientError as exc:
                if not is_throttled(exc) or time.time() + wait >= deadline:
                    raise
            await anyio.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * 2, THROTTLE_WAIT_S[1])

    return await beside(attempts, beat)
