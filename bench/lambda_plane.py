"""The emulated Lambda of the benchmarks' emulator process: code uploads, and the workers.

Why a module of its own: `bench.emulator` serves moto; this is what plays Lambda in that process
(see its docstring): hooks on moto's Lambda backend that count the code uploaded and take every
SQS event-source mapping over with our `EventSourceMappingEmulator`, whose pollers call the
worker's handler with the function's configured environment (`FunctionHandler`). Lambda can be
turned off and on between runs (`LambdaPlane.set_enabled`), and each mapping's invocations are
counted and timed (what Lambda would bill) and their threads' CPU measured.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from moto.awslambda.models import LambdaBackend
from moto.backends import get_backend

from orchestrator.sandbox.esm import EventSourceMappingEmulator, Handler
from orchestrator.sandbox.session import SANDBOX_CREDENTIALS
from worker.aws import AwsAccess
from worker.handler import make_handler
from worker.settings import WorkerSettings

__all__ = ["FunctionHandler", "LambdaPlane"]

log = logging.getLogger("bench.emulator")

DEFAULT_ESM_CONCURRENCY = 5


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
