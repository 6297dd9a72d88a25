"""The benchmarks' AWS: moto + our rollout simulator + ECS throttling, in a process of its own.

`python -m bench.emulator --port 0 --rollout-s 3 --throttling` prints one JSON line
(`{"endpoint_url": ...}`) on stdout once it listens, then serves until killed or until its
stdin closes. Why a process of its own: moto answers about 100 requests/s from one
interpreter, and an orchestrator sharing that interpreter would have its CPU time, its memory
and its latencies mixed with moto's. Here the orchestrator and the peer tool are subprocesses
that reach this process over HTTP (`AWS_ENDPOINT_URL`), as they would reach AWS.

Control: one JSON command per line on stdin, one JSON answer per line on stdout:
`{"cmd": "throttling", "enabled": true}` (full buckets again), `{"cmd": "stats"}` (requests and
throttles per action, code uploads, the event-source mapping's counters), `{"cmd": "requests"}`
(the request log since the last one: `bench.request_log`), `{"cmd": "rollout", "seconds": 120}`
(rollouts started from now on take that long), `{"cmd": "lambda", "enabled": false}` (the
event-source mappings stop polling; `true`: they poll again), `{"cmd": "quit"}`.

The `lambda` executor: Lambda itself is not emulated by moto here (it would start Docker), so
this process plays Lambda's SQS event-source mapping, as the sandbox does in `on_queue_ready`:
when a mapping onto an SQS queue is created through the API, moto's own mapping is taken off
the queue (it must happen here, in moto's process) before the call returns, and our
`EventSourceMappingEmulator` starts polling that queue, calling the worker's handler
(`worker.handler.make_handler`) with `MaximumConcurrency` pollers, as Lambda would call it: with
the function's configured environment (read at each invocation, as the orchestrator set it: the
timer queue of parked jobs among it) over this process's (`REDIS_URL`), the region of
`--region`, AWS at this very endpoint, and the function's timeout. The workers therefore run in
this process, as they run outside the orchestrator on AWS; their CPU is not charged to the
orchestrator. Each invocation is timed (`EsmStats.busy_s`, what Lambda would bill): `stats`
reports it per mapping.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bench.lambda_plane import LambdaPlane
from bench.request_log import RequestLog
from orchestrator.sandbox import AwsEmulator, RolloutScenario

__all__ = ["LambdaPlane", "TickerClock", "main"]

log = logging.getLogger("bench.emulator")

DESCRIPTION = "moto + the rollout simulator + ECS throttling, for the benchmarks, in its own process"


def _speed_up_moto_sqs() -> None:
    """moto's SQS computes "now" through timezone-aware datetimes ~200 times per message and batch
    (visibility and delay checks over the whole queue): with 1,000 FIFO messages one
    SendMessageBatch takes seconds and the orchestrator's sends time out. Same value, from
    `time.time()`; an emulator-only patch, real SQS has no such cost."""
    from moto.sqs import models as sqs_models

    original: Callable[..., float] = vars(sqs_models)["unix_time_millis"]

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original(dt)

    setattr(sqs_models, "unix_time_millis", unix_time_millis)  # noqa: B010


class TickerClock:
    """How long the emulator's ECS-events ticker spends in its ticks (each holds moto's lock
    over every simulated service): a figure behind the events' detection lag."""

    def __init__(self, emulator: AwsEmulator) -> None:
        self.ticks, self.busy_s, self.max_s = 0, 0.0, 0.0
        emitter = emulator.ecs_events
        tick: Callable[[], int] = emitter.tick

        def timed() -> int:
            started = time.monotonic()
            try:
                return tick()
            finally:
                took = time.monotonic() - started
                self.ticks, self.busy_s, self.max_s = (
                    self.ticks + 1,
                    self.busy_s + took,
                    max(self.max_s, took),
                )

        setattr(emitter, "tick", timed)  # noqa: B010 (an instance's method, looked up at each tick)

    def stats(self) -> dict[str, Any]:
        return {"ticks": self.ticks, "busy_s": self.busy_s, "max_s": self.max_s}


def _serve_control(
    emulator: AwsEmulator, plane: LambdaPlane, requests: RequestLog, ticker: TickerClock
) -> None:
    """Answer commands from stdin until `quit` or end of input."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            name = command.get("cmd")
            answer: dict[str, Any]
            if name == "throttling":
                emulator.set_throttling(bool(command.get("enabled", True)))
                answer = {"ok": True, "throttling": emulator.throttling}
            elif name == "stats":
                answer = {
                    "ok": True,
                    "counts": emulator.request_counts(),
                    "throttled": emulator.throttled_counts(),
                    "ticker": ticker.stats(),
                    **plane.stats(),
                }
            elif name == "lambda":
                plane.set_enabled(bool(command.get("enabled", True)))
                answer = {"ok": True, "lambda": plane.enabled}
            elif name == "requests":
                answer = {"ok": True, "log": requests.take()}
            elif name == "rollout":
                scenario = emulator.simulator.scenario
                emulator.set_scenario(replace(scenario, rollout_s=float(command["seconds"])))
                answer = {"ok": True}
            elif name == "quit":
                _answer({"ok": True})
                return
            else:
                answer = {"ok": False, "error": f"unknown command {name!r}"}
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            answer = {"ok": False, "error": str(exc)}
        _answer(answer)


def _answer(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator", description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (default)")
    parser.add_argument("--rollout-s", type=float, default=3.0, help="time a rollout takes (default: 3)")
    parser.add_argument("--throttling", action="store_true", help="emulate ECS's API throttling buckets")
    parser.add_argument("--region", default="us-east-1", help="region the workers' environment names")
    parser.add_argument(
        "--esm-concurrency",
        type=int,
        help="pollers per event-source mapping (default: the mapping's MaximumConcurrency)",
    )
    parser.add_argument(
        "--no-control", action="store_true", help="ignore stdin: serve until killed (SIGTERM/SIGINT)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    scenario = RolloutScenario(rollout_s=args.rollout_s, bad_images=("*:broken*",))
    emulator = AwsEmulator(scenario, throttling=args.throttling, host=args.host, port=args.port)
    emulator.start()
    requests = RequestLog()
    emulator.wrap_app(requests.wrap)
    ticker = TickerClock(emulator)
    # The workers of the lambda executor run here, as on Lambda: their settings from the
    # function's environment over this process's (REDIS_URL comes from the caller) and AWS at
    # this very endpoint.
    _speed_up_moto_sqs()
    plane = LambdaPlane(emulator.endpoint_url, args.region, os.environ, args.esm_concurrency)
    plane.install()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _answer({"endpoint_url": emulator.endpoint_url, "pid": os.getpid()})
    try:
        if args.no_control:
            while True:
                signal.pause()
        _serve_control(emulator, plane, requests, ticker)
    except KeyboardInterrupt:
        pass
    finally:
        # no plane.stop(): it would wait out running invocations; the pollers are daemon threads
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
