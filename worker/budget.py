"""The shared throttling budget: token buckets in Redis that every worker draws from.

ECS throttles per account and region, with a token bucket per API action (burst, then a
steady refill). 200 workers that each learn about the bucket from ThrottlingExceptions spend
their retries, and the account's budget, on refusals; drawing a token here first paces
them so that nearly every call ECS receives is one it accepts. Local workers and Lambda
workers of every run in the account share the same keys, so two runs at once share one
budget, as they share ECS's. Other callers of the account are not counted: the engine still
rides out the ThrottlingExceptions they cause.

Why our own 25-line Lua script and not the `limits` library: `limits` offers fixed and
moving windows ("N per period"), which cannot express ECS's bucket (20 at once, then 1 a
second) and would either refuse the burst or allow 20 a second after it; and it answers
"allowed or not", so every refused worker would have to poll Redis. The script instead
*reserves* a token: the bucket may go negative and the caller learns exactly how long to
wait for its turn, one round trip per call, first come first served, with Redis's clock
(one clock for every Lambda).

While Redis is away the budget falls back to local pacing: an in-process bucket of the same
size per action, so that a worker on its own still spaces its calls as ECS refills. Workers
of other processes are not counted meanwhile (ECS's ThrottlingExceptions, retried, cover the
difference); the shared buckets are used again as soon as Redis answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import anyio
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from worker.keys import PREFIX
from worker.redis_outage import REDIS_DOWN, Backoff

__all__ = ["ECS_BUCKETS", "ApiBudget", "BucketSize", "LocalBuckets", "budget_key"]

log = logging.getLogger(__name__)


class BucketSize(BaseModel):
    """One action's bucket: `burst` tokens when full, refilled at `per_second`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    burst: int = Field(ge=1)
    per_second: float = Field(gt=0)


# ECS's documented per-account buckets for the calls a worker makes (docs/design.md, 'ECS API
# limits'; DeregisterTaskDefinition assumed like RegisterTaskDefinition).
ECS_BUCKETS: Mapping[str, BucketSize] = {
    "RegisterTaskDefinition": BucketSize(burst=20, per_second=1.0),
    "UpdateService": BucketSize(burst=50, per_second=5.0),
    "DescribeServices": BucketSize(burst=100, per_second=20.0),
    "DeregisterTaskDefinition": BucketSize(burst=20, per_second=1.0),
    # Not published: sized like the calls they stand beside (a read like DescribeServices, a
    # stop like UpdateService) so that following through them costs no more than before.
    "ListServiceDeployments": BucketSize(burst=100, per_second=20.0),
    "DescribeServiceDeployments": BucketSize(burst=100, per_second=20.0),
    "StopServiceDeployment": BucketSize(burst=50, per_second=5.0),
}
# A caller whose turn is later waits this much longer: the burst's first call reached ECS some
# milliseconds (on a busy machine, tens of them) after its turn, and ECS's bucket, full until
# then, lost that refill; without the margin the first call after the burst could arrive a
# hair before ECS has its token again. It delays only calls that wait anyway, and never adds up.
TURN_MARGIN_S = 0.25

# KEYS[1]: the bucket hash; ARGV: burst, tokens per second. Returns the wait in microseconds
# before the reserved token is the caller's (0: at once).
_RESERVE_LUA = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 60)
if tokens >= 0 then return 0 end
return math.ceil(-tokens / rate * 1000000)
"""


def budget_key(scope: str, action: str) -> str:
    """One key per bucket; `scope` is the account/region the bucket belongs to."""
    return f"{PREFIX}:budget:{{{scope}}}:{action}"


class LocalBuckets:
    """The same reservation as `_RESERVE_LUA`, in this process, on this process's clock."""

    def __init__(self, sizes: Mapping[str, BucketSize]) -> None:
        self._sizes = dict(sizes)
        self._state: dict[str, tuple[float, float]] = {}  # action -> (tokens, at: time.monotonic())

    def reserve(self, action: str) -> float:
        """Reserve the next token of `action`'s bucket: the seconds until it is ours (0: now)."""
        size = self._sizes.get(action)
        if size is None:
            return 0.0
        now = time.monotonic()
        tokens, at = self._state.get(action, (float(size.burst), now))
        tokens = min(size.burst, tokens + max(0.0, now - at) * size.per_second) - 1
        self._state[action] = (tokens, now)
        return 0.0 if tokens >= 0 else -tokens / size.per_second


class ApiBudget:
    """Draw a token before each throttled ECS call; `take` waits for the caller's turn.

    The buckets are Redis's, shared by every worker; while Redis is away, this process's own
    (`LocalBuckets`, the same sizes)."""

    def __init__(self, redis: Redis, scope: str, sizes: Mapping[str, BucketSize]) -> None:
        self._scope = scope
        self._sizes = dict(sizes)
        self._reserve = redis.register_script(_RESERVE_LUA)
        self._local = LocalBuckets(sizes)
        self._backoff = Backoff()  # while Redis is away, ask it again at most this often
        self._away = False

    async def reserve(self, action: str) -> float:
        """Reserve the next token of `action`'s bucket: the seconds until it is ours (0: now)."""
        size = self._sizes.get(action)
        if size is None:
            return 0.0
        if not self._backoff.due:
            return self._local.reserve(action)
        try:
            wait_us = await self._reserve(
                keys=[budget_key(self._scope, action)], args=[size.burst, repr(size.per_second)]
            )
        except REDIS_DOWN as exc:
            self._backoff.failed()
            if not self._away:
                self._away = True
                log.info("Redis is unreachable (%s): pacing ECS calls locally until it is back", exc)
            return self._local.reserve(action)
        self._backoff.succeeded()
        if self._away:
            self._away = False
            log.info("Redis is back: ECS calls drawn from the shared budget again")
        return int(wait_us) / 1e6

    async def take(self, action: str) -> float:
        """Wait until a token of `action`'s bucket is ours; the seconds waited (0 if unmetered)."""
        wait_s = await self.reserve(action)
        if wait_s > 0:
            wait_s += TURN_MARGIN_S
            await anyio.sleep(wait_s)
        return wait_s
