"""Publishing worker events to Redis: pushed live, kept for replay.

Pub/sub is at-most-once (a subscriber that blinks loses messages), so each event is also
XADDed to the run's stream. One Lua script does both, plus the job's sequence number, in one
round trip and atomically: the message on the channel carries the stream id, so a reader that
reconnects knows exactly where to resume with XRANGE.

The script also gives the event its final sequence number: the one asked for, unless the job
already published that far, then the next one (a job's first number is 1). Whoever publishes
on a job (its owner, a duplicate delivery reporting itself, a handler's verdict), the job's
events are numbered in stream order, strictly increasing, and the job's recorded `seq` never
goes back: a continuation starts after the last number used, never on one already used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from worker.contract import WorkerEvent
from worker.keys import event_channel, event_stream, job_hash

__all__ = ["EventPublisher", "Published", "connect_redis", "decode_envelope", "redact_url"]

STREAM_MAXLEN = 100_000

STREAM_TTL_S = 7 * 24 * 3600  # as long as the run's plan and job records: `attach` needs all three

# KEYS: stream, job hash. ARGV: channel, maxlen, the event's JSON before and after its seq,
# the seq asked for, ttl. Returns {stream id, seq given}.
_PUBLISH_LUA = """
local seq = tonumber(ARGV[5])
local last = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if seq <= last then
  seq = last + 1
end
local event = ARGV[3] .. string.format('%d', seq) .. ARGV[4]
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'event', event)
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('HSET', KEYS[2], 'seq', string.format('%d', seq))
redis.call('PUBLISH', ARGV[1], '{"id":"' .. id .. '","event":' .. event .. '}')
return {id, string.format('%d', seq)}
"""


@dataclass(frozen=True)
class Published:
    """Where an event went: its stream id and the sequence number it was given."""

    stream_id: str
    seq: int


def _around_seq(event: WorkerEvent) -> tuple[str, str]:
    """The event's JSON before and after the value of its `seq`.

    Inside a JSON string a quote is escaped, so the first `"seq":` of the text is the event's
    own key (it comes before `details`, whose keys are nested anyway).
    """
    text = event.to_json()
    head, found, tail = text.partition(f'"seq":{event.seq}')
    if not found or tail[:1] not in (",", "}"):
        raise ValueError(f"cannot find the seq of {text}")
    return head + '"seq":', tail


CONNECT_TIMEOUT_S = 5.0


def connect_redis(url: str, *, max_connections: int = 64) -> Redis:
    """A client for `redis://` or `rediss://` (TLS, as ElastiCache serverless requires).

    The pool blocks instead of raising when many workers publish at once: redis-py's default
    pool raises MaxConnectionsError past 100 concurrent commands. A command whose connection
    broke is tried again twice on a new one (redis-py's default from a URL is never): after
    Redis restarted, every pooled connection is dead and would otherwise fail one command each.
    Our scripts are safe to run twice, except a publish, which the outbox documents.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=30,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries=2),
    )
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

    async def publish(self, event: WorkerEvent) -> Published:
        """Publish `event` as number `event.seq`, or the job's next number if that one is used."""
        head, tail = _around_seq(event)
        answer = await self._script(
            keys=[event_stream(event.run_id), job_hash(event.run_id, event.job_id)],
            args=[event_channel(event.run_id), self._maxlen, head, tail, event.seq, STREAM_TTL_S],
        )
        stream_id, seq = (
            part.decode() if isinstance(part, bytes) else str(part) for part in cast("list[Any]", answer)
        )
        return Published(stream_id, int(seq))
