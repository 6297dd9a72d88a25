"""Publishing worker events to Redis: pushed live, kept for replay.

Pub/sub is at-most-once (a subscriber that blinks loses messages), so each event is also
XADDed to the run's stream. One Lua script does both, plus the job's sequence number, in one
round trip and atomically: the message on the channel carries the stream id, so a reader that
reconnects knows exactly where to resume with XRANGE.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis

from worker.contract import WorkerEvent
from worker.keys import event_channel, event_stream, job_hash

__all__ = ["EventPublisher", "connect_redis", "decode_envelope", "redact_url"]

STREAM_MAXLEN = 100_000

STREAM_TTL_S = 7 * 24 * 3600  # as long as the run's plan and job records: `attach` needs all three

# KEYS: stream, job hash. ARGV: channel, maxlen, event json, seq, ttl.
_PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('HSET', KEYS[2], 'seq', ARGV[4])
redis.call('PUBLISH', ARGV[1], '{"id":"' .. id .. '","event":' .. ARGV[3] .. '}')
return id
"""


def connect_redis(url: str, *, max_connections: int = 64) -> Redis:
    """A client for `redis://` or `rediss://` (TLS, as ElastiCache serverless requires).

    The pool blocks instead of raising when many workers publish at once: redis-py's default
    pool raises MaxConnectionsError past 100 concurrent commands.
    """
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30)
    return Redis.from_pool(pool)


def redact_url(url: str) -> str:
    """`url` without its password, fit for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def decode_envelope(raw: str | bytes) -> tuple[str, WorkerEvent]:
    """(stream id, event) from a message published on a run's channel."""
    data: dict[str, Any] = json.loads(raw)
    return str(data["id"]), WorkerEvent.model_validate(data["event"])


class EventPublisher:
    def __init__(self, redis: Redis, *, stream_maxlen: int = STREAM_MAXLEN) -> None:
        self._redis = redis
        self._maxlen = stream_maxlen
        self._script = redis.register_script(_PUBLISH_LUA)

    async def publish(self, event: WorkerEvent) -> str:
        """Publish `event`; returns its stream id."""
        stream_id = await self._script(
            keys=[event_stream(event.run_id), job_hash(event.run_id, event.job_id)],
            args=[event_channel(event.run_id), self._maxlen, event.to_json(), event.seq, STREAM_TTL_S],
        )
        return stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
