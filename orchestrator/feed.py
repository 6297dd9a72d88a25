"""The run's event feed: Redis pushes events to us; the stream fills any gap.

The run's events are its workers' and its gates' (`orchestrator.gate_events`), in one stream.

We SUBSCRIBE to the run's exact channel before any job starts, so nothing published later can
be missed while connected. Pub/sub is at-most-once, though: whenever a subscription is
(re)confirmed, after the first subscribe or after redis-py reconnected by itself, we replay
the run's stream from the last stream id we saw. Stream ids are ordered, and the publisher
XADDs and PUBLISHes atomically, so de-duplicating by id makes replay and live feed one
ordered sequence.

When Redis goes away altogether (a crash, a restart), the feed tries again, every second at
most, until it is back; `on_reconnect` is then awaited before the replay (the run core
restores what a Redis that came back empty lost, and forgives the silence). A Redis restarted
without its data hands out stream ids from its clock: they still come after the last one seen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import anyio
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.gate_events import GateEvent, gate_from_fields, gate_from_message
from worker.contract import WorkerEvent
from worker.keys import event_channel, event_stream

__all__ = ["EventFeed", "FeedItem", "read_entries", "read_stream", "stream_id_key"]

FeedItem = WorkerEvent | GateEvent  # a worker's event, or a gate's (orchestrator.gate_events)

log = logging.getLogger(__name__)

REPLAY_BATCH = 1000
RECONNECT_BACKOFF_S = (0.1, 0.25, 0.5, 1.0)  # a Redis back is heard within a second


def stream_id_key(stream_id: str) -> tuple[int, int]:
    millis, _, seq = stream_id.partition("-")
    return int(millis), int(seq or 0)


async def read_entries(
    redis: Redis, run_id: str, *, after: str = "0-0", count: int | None = None
) -> list[tuple[str, FeedItem]]:
    """(stream id, event) pairs of a run's stream after id `after`, oldest first: the workers'
    events and the gates'."""
    entries = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]",
        await redis.xrange(event_stream(run_id), min=f"({after}", count=count),
    )
    return [
        (raw_id.decode(), gate_from_fields(fields) or WorkerEvent.from_json(fields[b"event"]))
        for raw_id, fields in entries
    ]


async def read_stream(
    redis: Redis, run_id: str, *, after: str = "0-0", count: int | None = None
) -> list[tuple[str, WorkerEvent]]:
    """(stream id, event) pairs of the workers' events of a run's stream after id `after`."""
    entries = await read_entries(redis, run_id, after=after, count=count)
    return [(stream_id, event) for stream_id, event in entries if isinstance(event, WorkerEvent)]


def _decode(raw: str | bytes) -> tuple[str, FeedItem]:
    """(stream id, event) from a message on a run's channel: a worker's envelope or a gate's."""
    data: dict[str, Any] = json.loads(raw)
    return str(data["id"]), gate_from_message(data) or WorkerEvent.model_validate(data["event"])


class EventFeed:
    """Every event of one run, once each, in publish order, across reconnects."""

    def __init__(
        self,
        redis: Redis,
        run_id: str,
        *,
        last_id: str = "0-0",
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._redis = redis
        self._run_id = run_id
        self._last = stream_id_key(last_id)
        self._on_reconnect = on_reconnect
        self._subscribed = anyio.Event()
        self.reconnects = 0
        self.connected = False  # subscribed, as far as we know: events published now reach us

    @property
    def last_id(self) -> str:
        return f"{self._last[0]}-{self._last[1]}"

    async def wait_subscribed(self) -> None:
        await self._subscribed.wait()

    def _fresh(self, stream_id: str) -> bool:
        key = stream_id_key(stream_id)
        if key <= self._last:
            return False
        self._last = key
        return True

    async def _replay(self) -> AsyncIterator[FeedItem]:
        while True:
            entries = await read_entries(self._redis, self._run_id, after=self.last_id, count=REPLAY_BATCH)
            for stream_id, event in entries:
                if self._fresh(stream_id):
                    yield event
            if len(entries) < REPLAY_BATCH:
                return

    async def _reconnected(self) -> None:
        self.reconnects += 1
        log.info("event feed reconnected to Redis; replaying the stream after %s", self.last_id)
        if self._on_reconnect is not None:
            await self._on_reconnect()

    async def events(self) -> AsyncIterator[FeedItem]:
        """Yields until cancelled. Reconnects with backoff when redis-py gives up."""
        attempt = 0
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(event_channel(self._run_id))
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        # First subscribe, or redis-py reconnected and subscribed again:
                        # whatever was published meanwhile is in the stream.
                        attempt = 0
                        self.connected = True
                        if self._subscribed.is_set():
                            await self._reconnected()
                        self._subscribed.set()
                        async for event in self._replay():
                            yield event
                    elif message["type"] == "message":
                        stream_id, item = _decode(message["data"])
                        if self._fresh(stream_id):
                            yield item
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.connected = False
                delay = RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)]
                attempt += 1
                log.info("event feed lost its Redis connection (%s); reconnecting in %.1fs", exc, delay)
                await anyio.sleep(delay)
            finally:
                with anyio.CancelScope(shield=True):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
