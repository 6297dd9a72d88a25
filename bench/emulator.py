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
import base64
import binascii
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from moto.awslambda.models import LambdaBackend
from moto.backends import get_backend

from bench.request_log import RequestLog
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.sandbox.esm import EventSourceMappingEmulator, Handler
from orchestrator.sandbox.session import SANDBOX_CREDENTIALS
from worker.aws import AwsAccess
from worker.handler import make_handler
from worker.settings import WorkerSettings

__all__ = ["LambdaPlane", "main"]

log = logging.getLogger("bench.emulator")

DEFAULT_ESM_CONCURRENCY = 5
DESCRIPTION = "moto + the rollout simulator + ECS throttling, for the benchmarks, in its own process"


def _zip_size(code: Any) -> int:
    """Bytes of a base64 `ZipFile` the Lambda API received (0 when there is none)."""
    if not isinstance(code, str | bytes) or not code:
        return 0
    try:
        return len(base64.b64decode(code))
    except (binascii.Error, ValueError):
        return len(code)


class FunctionHandler:
    """The worker's handler as Lambda runs it for one function: with that function's configured
    environment, read at each invocation (the orchestrator may update it between runs) over
    `base_env`; a handler is made again only when that environment changed."""

    def __init__(
        self, backend: Any, function_name: str, base_env: Mapping[str, str], region: str, aws: AwsAccess
    ) -> None:
        self._backend, self.name = backend, function_name
        self._base_env, self._region, self._aws = dict(base_env), region, aws
        self._made: tuple[tuple[tuple[str, str], ...], Handler] | None = None
        self._lock = threading.Lock()
        self.cpu_s = 0.0  # CPU the invocations' own threads used (no moto, no waiting for the GIL)

    def variables(self) -> dict[str, str]:
        try:
            found = self._backend.get_function(self.name).environment_vars
        except Exception:  # moto's errors share no base; deleted: the last environment
            log.warning("function %s: environment not found; the last one is used", self.name)
            return dict(self._made[0]) if self._made else {}
        return {str(k): str(v) for k, v in (found or {}).items()}

    def timeout_s(self) -> float:
        """The function's configured timeout (Lambda's default of the API, 3 s, if none)."""
        try:
            return float(self._backend.get_function(self.name).timeout or 3)
        except Exception:  # as above
            return 900.0

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        key = tuple(sorted(self.variables().items()))
        made = self._made
        if made is None or made[0] != key:
            env = {**self._base_env, **dict(key), "AWS_REGION": self._region}
            made = self._made = (key, make_handler(WorkerSettings.from_environ(env), self._aws))
        started = time.thread_time()  # the handler's event loop runs in this thread
        try:
            return made[1](event, context)
        finally:
            took = time.thread_time() - started
            with self._lock:
                self.cpu_s += took


class LambdaPlane:
    """Code uploads seen by moto's Lambda API, and our event-source mappings, in this process."""

    def __init__(
        self, endpoint_url: str, region: str, base_env: Mapping[str, str], esm_concurrency: int | None = None
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.base_env = dict(base_env)
        self.aws = AwsAccess(endpoint_url=endpoint_url, static_credentials=SANDBOX_CREDENTIALS)
        self.esm_concurrency = esm_concurrency
        self._lock = threading.Lock()
        self.uploads: list[dict[str, Any]] = []
        self._mappings: dict[str, EventSourceMappingEmulator] = {}  # queue ARN -> emulator (polling)
        self._made: dict[str, tuple[str, str, int, FunctionHandler]] = {}  # queue ARN -> how to poll it
        self._past: dict[str, dict[str, float]] = {}  # queue ARN -> counters of its stopped pollers
        self.enabled = True

    def install(self) -> None:
        """Class-level hooks on moto's Lambda backend (they survive moto's resets)."""
        plane = self
        create_function: Callable[..., Any] = LambdaBackend.create_function
        update_code: Callable[..., Any] = LambdaBackend.update_function_code
        create_mapping: Callable[..., Any] = LambdaBackend.create_event_source_mapping

        def hooked_create_function(backend: Any, spec: dict[str, Any]) -> Any:
            result = create_function(backend, spec)
            plane._record("CreateFunction", _zip_size((spec.get("Code") or {}).get("ZipFile")))
            return result

        def hooked_update_code(backend: Any, name: str, qualifier: Any, body: dict[str, Any]) -> Any:
            result = update_code(backend, name, qualifier, body)
            plane._record("UpdateFunctionCode", _zip_size(body.get("ZipFile")))
            return result

        def hooked_create_mapping(backend: Any, spec: dict[str, Any]) -> Any:
            esm = create_mapping(backend, spec)
            plane._take_over(backend, spec)
            return esm

        setattr(LambdaBackend, "create_function", hooked_create_function)  # noqa: B010
        setattr(LambdaBackend, "update_function_code", hooked_update_code)  # noqa: B010
        setattr(LambdaBackend, "create_event_source_mapping", hooked_create_mapping)  # noqa: B010

    def _record(self, api: str, size: int) -> None:
        with self._lock:
            self.uploads.append({"api": api, "bytes": size})

    def _take_over(self, backend: Any, spec: dict[str, Any]) -> None:
        arn = str(spec.get("EventSourceArn", ""))
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            return
        _, _, _, region, account, name = parts
        queue = get_backend("sqs")[account][region].queues.get(name)
        if queue is None:
            return
        # moto would try to run the function in Docker on every send: our mapping takes over
        queue.lambda_event_source_mappings.clear()
        with self._lock:
            if arn in self._mappings:
                return
        concurrency = self.esm_concurrency or int(
            (spec.get("ScalingConfig") or {}).get("MaximumConcurrency") or DEFAULT_ESM_CONCURRENCY
        )
        url = f"{self.endpoint_url}/{account}/{name}"
        function = str(spec.get("FunctionName", ""))
        handler = FunctionHandler(backend, function, self.base_env, self.region, self.aws)
        with self._lock:
            self._made[arn] = (url, region, concurrency, handler)
            if not self.enabled:
                return
        # started from another thread: start() calls this very server, which is answering us
        threading.Thread(
            target=self._start_mapping, args=(arn, url, region, concurrency, handler), daemon=True
        ).start()

    def _start_mapping(
        self, arn: str, url: str, region: str, concurrency: int, handler: FunctionHandler
    ) -> None:
        mapping = EventSourceMappingEmulator(
            url,
            handler,
            region=region,
            endpoint_url=self.endpoint_url,
            credentials=SANDBOX_CREDENTIALS,
            max_concurrency=concurrency,
            function_name=handler.name.rsplit(":", 1)[-1] or "ecs-fanout-worker",
            remaining_time_s=handler.timeout_s(),
        )
        mapping.start()
        with self._lock:
            keep = self.enabled and arn not in self._mappings
            if keep:
                self._mappings[arn] = mapping
        if not keep:  # turned off, or started twice, meanwhile
            mapping.stop()
            return
        log.info("event-source mapping on %s: %d pollers", arn, concurrency)

    def set_enabled(self, enabled: bool) -> None:
        """Lambda on (the mappings poll their queues) or off: no worker takes a message, as in an
        account without the function. The bench turns it off for the local executor's runs: the
        mapping on the queue of ECS's events would otherwise take their events."""
        with self._lock:
            was, self.enabled = self.enabled, enabled
            stopping = list(self._mappings.items()) if not enabled else []
            if not enabled:
                self._mappings.clear()
            made = dict(self._made) if enabled and not was else {}
        for arn, mapping in stopping:
            mapping.stop()
            past = self._past.setdefault(arn, {})
            for name, value in self._counters(mapping).items():
                past[name] = past.get(name, 0) + value
        for arn, (url, region, concurrency, handler) in made.items():
            self._start_mapping(arn, url, region, concurrency, handler)

    @staticmethod
    def _counters(mapping: EventSourceMappingEmulator) -> dict[str, float]:
        s = mapping.stats
        return {
            "invocations": s.invocations,
            "records": s.records,
            "failures": s.failures,
            "deleted": s.deleted,
            "errors": s.errors,
            "busy_s": s.busy_s,
        }

    def stats(self) -> dict[str, Any]:
        """Code uploads, and per mapping its counters since this process started (`cpu_s`: the CPU
        time of its invocations' threads, a floor under `busy_s` that moto's share of the
        interpreter does not inflate)."""
        with self._lock:
            mappings = dict(self._mappings)
            uploads = list(self.uploads)
            esm = {arn: dict(past) for arn, past in self._past.items()}
            handlers = {arn: made[3] for arn, made in self._made.items()}
        for arn, mapping in mappings.items():
            counters = esm.setdefault(arn, {})
            for name, value in self._counters(mapping).items():
                counters[name] = counters.get(name, 0) + value
        for arn, handler in handlers.items():
            esm.setdefault(arn, {"invocations": 0})["cpu_s"] = handler.cpu_s
        return {"enabled": self.enabled, "uploads": uploads, "esm": esm}

    def stop(self) -> None:
        with self._lock:
            mappings = list(self._mappings.values())
            self._mappings.clear()
        for mapping in mappings:
            mapping.stop()


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
