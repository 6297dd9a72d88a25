"""Gate events: what a run's waves and their gates do, in the run's own event stream.

A wave starts, its gate's steps run (`halt`, `smoke_test`, `soak`, `alarms`, `approve`), and
the wave passes or stops the run: each change is a `GateEvent`, published by the orchestrator
on the run's channel and kept in the run's stream beside the workers' events (field `gate`
instead of `event`), so that the feed (`orchestrator.feed`) replays and follows both in one
order, and `attach` sees the gates exactly as the run's own output does. Workers never publish
one: a gate is the orchestrator's.

A stream entry's id orders it; folding (`orchestrator.wave_state`) keeps the last id seen, so
a replay that overlaps the live feed changes nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal, cast

import anyio
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from worker.keys import event_channel, event_stream
from worker.publisher import STREAM_MAXLEN, STREAM_TTL_S

__all__ = [
    "GATE_FIELD",
    "AlarmState",
    "GateDetails",
    "GateEvent",
    "GateName",
    "GatePublisher",
    "GateStatus",
    "gate_from_fields",
    "gate_from_message",
]

log = logging.getLogger(__name__)

GATE_FIELD = b"gate"  # the stream field of a gate event (a worker's is `event`)
GateName = Literal["wave", "halt", "smoke_test", "soak", "alarms", "approve"]
# started: a wave's deploy began; waiting: on something (a person, alarms with no data); running:
# a smoke test; soaking: watching the wave's services; passed; stopped: it stopped the run.
GateStatus = Literal["started", "waiting", "running", "soaking", "passed", "stopped"]
RETRY_S = 1.0  # Redis away: the gate's word is published again this often until it is taken


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlarmState(_Wire):
    name: str
    state: str | None  # OK, ALARM, INSUFFICIENT_DATA; None: no such alarm


class GateDetails(_Wire):
    """What a step found, for people and tools: a smoke test's task, an alarm's state."""

    task_arn: str | None = None
    exit_code: int | None = None
    stop_reason: str | None = None
    log_group: str | None = None
    log_stream: str | None = None
    log_region: str | None = None
    alarms: tuple[AlarmState, ...] = ()
    by: str | None = None  # who approved or stopped


class GateEvent(_Wire):
    type: Literal["gate"] = "gate"
    run_id: str
    wave: str
    gate: GateName
    state: GateStatus
    message: str = ""
    ts: float = Field(default_factory=time.time)
    until: float | None = None  # when a soak ends, or a smoke test or an alarm wait gives up
    details: GateDetails = GateDetails()


# KEYS: stream. ARGV: channel, maxlen, the event's JSON, ttl. Returns the stream id.
_PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'gate', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[1], '{"id":"' .. id .. '","gate":' .. ARGV[3] .. '}')
return id
"""


class GatePublisher:
    """Publishes a run's gate events (XADD and PUBLISH in one script, as workers do theirs)."""

    def __init__(self, redis: Redis, run_id: str) -> None:
        self._redis = redis
        self._run_id = run_id
        self._script = redis.register_script(_PUBLISH_LUA)

    async def publish(self, event: GateEvent) -> str:
        """Publish `event`; while Redis is away, try again every second (the run waits on its
        gates, and its end is told only through them). Its stream id."""
        while True:
            try:
                answer = await self._script(
                    keys=[event_stream(self._run_id)],
                    args=[event_channel(self._run_id), STREAM_MAXLEN, event.model_dump_json(), STREAM_TTL_S],
                )
                return answer.decode() if isinstance(answer, bytes) else str(answer)
            except (RedisError, OSError) as exc:
                log.warning("gate event of wave %s not published yet (%s); trying again", event.wave, exc)
                await anyio.sleep(RETRY_S)

    async def say(
        self,
        wave: str,
        gate: GateName,
        state: GateStatus,
        message: str,
        *,
        until: float | None = None,
        details: GateDetails | None = None,
    ) -> GateEvent:
        """Publish a gate event of this run."""
        event = GateEvent(
            run_id=self._run_id,
            wave=wave,
            gate=gate,
            state=state,
            message=message,
            until=until,
            details=details or GateDetails(),
        )
        await self.publish(event)
        return event


def gate_from_fields(fields: dict[bytes, bytes]) -> GateEvent | None:
    """The gate event of a stream entry, or None when the entry is a worker's."""
    raw = fields.get(GATE_FIELD)
    return None if raw is None else GateEvent.model_validate_json(raw)


def gate_from_message(data: dict[str, Any]) -> GateEvent | None:
    """The gate event of a decoded channel message, or None when it is a worker's."""
    raw = data.get("gate")
    return None if raw is None else GateEvent.model_validate(cast("dict[str, Any]", raw))
