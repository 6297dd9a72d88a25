"""An AWS endpoint in this process: moto's server, our rollout simulator, ECS's throttling.

Why: the tests, the `--sandbox` mode and the benchmarks need an AWS they can reach over real
HTTP (so botocore's retries, endpoints and credentials are exercised as in production) whose
ECS rolls deployments forward (`RolloutSimulator`). moto's `ThreadedMotoServer` hides its WSGI
app, so we build the same server ourselves and put a middleware in front of it that counts
requests per action, injects faults on demand and, when asked, answers like ECS's per-account
token buckets do. Note moto's state is process-global: two emulators in one process share it.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from moto.core.utils import utcnow
from moto.iam.models import get_account_id_from
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from orchestrator.sandbox.ecs_event_emitter import EcsEventEmitter
from orchestrator.sandbox.simulator import RolloutScenario, RolloutSimulator
from orchestrator.sandbox.sts_hooks import RULES, install_sts_hooks

__all__ = ["DEFAULT_ECS_BUCKETS", "AwsEmulator", "sandbox_aws_env"]

# ECS's documented per-account, per-region buckets: action -> (burst, refill per second)
DEFAULT_ECS_BUCKETS: dict[str, tuple[float, float]] = {
    "RegisterTaskDefinition": (20, 1.0),
    "UpdateService": (50, 5.0),
    "DescribeServices": (100, 20.0),
    # ECS publishes no figures for these: sized as the workers' budget assumes (worker/budget.py)
    "ListServiceDeployments": (100, 20.0),
    "DescribeServiceDeployments": (100, 20.0),
}
_FAULT_CODES = {
    403: "AccessDeniedException",
    429: "TooManyRequestsException",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def sandbox_aws_env(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    """Environment that points every AWS SDK at the emulator with throw-away credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


@dataclass
class _Bucket:
    burst: float
    rate: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class _Middleware:
    """Counts, fails and throttles requests before moto sees them. Thread-safe."""

    def __init__(self, app: WsgiApp, throttling: bool, buckets: Mapping[str, tuple[float, float]]) -> None:
        self.app = app
        self.throttling = throttling
        self.bucket_config = dict(buckets)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()
        self._faults: dict[str, list[int]] = {}  # action -> statuses still to answer, in order
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._throttled.clear()
            self._faults.clear()
            self._buckets.clear()

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def throttled(self) -> dict[str, int]:
        with self._lock:
            return dict(self._throttled)

    def add_fault(self, action: str, status: int, count: int) -> None:
        with self._lock:
            self._faults.setdefault(action, []).extend([status] * count)

    def pending_faults(self) -> dict[str, int]:
        with self._lock:
            return {action: len(statuses) for action, statuses in self._faults.items() if statuses}

    def configure(self, throttling: bool, buckets: Mapping[str, tuple[float, float]] | None) -> None:
        with self._lock:
            self.throttling = throttling
            if buckets is not None:
                self.bucket_config = dict(buckets)
            self._buckets.clear()  # a new configuration starts with full buckets

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        action, json_protocol = _action(environ)
        if action is None:
            return self.app(environ, start_response)
        if RULES.expired(_access_key(environ), utcnow()):  # AWS refuses an expired session
            return _error(
                start_response,
                400,
                "ExpiredTokenException",
                "The security token included in the request is expired",
                json_protocol,
            )
        with self._lock:
            self._counts[action] += 1
            faults = self._faults.get(action)
            fault = faults.pop(0) if faults else None
            throttled = fault is None and not self._admit(environ, action)
            if throttled:
                self._throttled[action] += 1
        if fault is not None:
            code = _FAULT_CODES.get(fault, "InternalFailure")
            return _error(start_response, fault, code, f"Injected fault ({code})", json_protocol)
        if throttled:
            return _error(start_response, 400, "ThrottlingException", "Rate exceeded", json_protocol)
        return self.app(environ, start_response)

    def _admit(self, environ: dict[str, Any], action: str) -> bool:
        config = self.bucket_config.get(action) if self.throttling else None
        if config is None:
            return True
        key = (*_caller(environ), action)  # ECS's buckets are per account and region
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(config[0], config[1], config[0], now)
        return bucket.take(now)


def _action(environ: dict[str, Any]) -> tuple[str | None, bool]:
    """The API action of a request and whether it speaks a JSON protocol."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocols: "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition"
        return str(target).rsplit(".", 1)[-1], True
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0], False
    if str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        # query protocol: the action is in the body; read it and hand moto a fresh stream
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0], False
    return None, False  # REST APIs (Lambda, S3) and moto's own API: not counted


def _access_key(environ: dict[str, Any]) -> str:
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    return auth.partition("Credential=")[2].split("/", 1)[0]


def _caller(environ: dict[str, Any]) -> tuple[str, str]:
    """(account, region) of a request, the way moto attributes it."""
    # "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ecs/aws4_request, ..."
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    parts = auth.partition("Credential=")[2].split(",", 1)[0].split("/")
    access_key, region = (parts[0], parts[2]) if len(parts) >= 3 else ("", "us-east-1")
    # moto's own rule, read the way moto reads it: the test bed attributes requests as moto does.
    account = os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
    return str(account or get_account_id_from(access_key)), region


def _error(
    start_response: StartResponse, status: int, code: str, message: str, json_protocol: bool
) -> list[bytes]:
    request_id = str(uuid.uuid4())
    if json_protocol:
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("x-amzn-ErrorType", code),  # botocore reads the error code from here for JSON protocols
        ("x-amzn-RequestId", request_id),
    ]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    start_response(f"{status} {phrase}", headers)
    return [body]


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # one stderr line per request would drown the sandbox's own output


class AwsEmulator:
    """moto's server on 127.0.0.1 and a free port, with the rollout simulator installed.

    Use as a context manager or `start()`/`stop()`; `reset()` empties every moto backend,
    the request counts, pending faults and throttling buckets between tests.
    """

    def __init__(
        self,
        scenario: RolloutScenario | None = None,
        *,
        throttling: bool = False,
        buckets: Mapping[str, tuple[float, float]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.simulator = RolloutSimulator(scenario)
        self._host, self._port = host, port
        app = DomainDispatcherApplication(create_backend_app)
        self._throttle_config = (throttling, dict(DEFAULT_ECS_BUCKETS if buckets is None else buckets))
        self._middleware = _Middleware(app, *self._throttle_config)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.ecs_events = EcsEventEmitter()  # ECS's EventBridge events, from the simulator's changes

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the AWS emulator is not running: call start() first")
        return f"http://{self._host}:{self._server.server_port}"

    @property
    def throttling(self) -> bool:
        return self._middleware.throttling

    def start(self) -> AwsEmulator:
        if self._server is not None:
            return self
        self.simulator.install()
        install_sts_hooks()
        # make_server binds at once (port 0 = a free port), so the URL is valid when we return
        self._server = make_server(
            self._host, self._port, self._middleware, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-emulator", daemon=True)
        self._thread.start()
        self.ecs_events.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.ecs_events.stop()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None
        self.simulator.uninstall()

    def __enter__(self) -> AwsEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every AWS resource, count and fault; throttling goes back to the constructor's.

        The scenario stays: `set_scenario` changes it.
        """
        moto_api_backend.reset()
        RULES.reset()
        self._middleware.reset()
        self._middleware.configure(*self._throttle_config)
        if self._server is not None:
            self.simulator.install()  # claim the backends again if anyone else took them

    def set_scenario(self, scenario: RolloutScenario) -> None:
        self.simulator.scenario = scenario

    def set_role_sessions(self, seconds: int | None) -> None:
        """Assumed-role credentials last at most `seconds` (None: as asked, an hour by default);
        expired ones are refused with ExpiredTokenException, as AWS does."""
        RULES.session_s = seconds

    def assumed_roles(self) -> list[str]:
        """The role ARN of every AssumeRole answered since the last reset, in order."""
        return RULES.assumed()

    def set_throttling(self, enabled: bool, buckets: Mapping[str, tuple[float, float]] | None = None) -> None:
        """Switch ECS throttling on or off; `buckets` (action -> (burst, rate)) replaces the table."""
        self._middleware.configure(enabled, buckets)

    def inject_fault(self, action: str, status: int = 500, count: int = 1) -> None:
        """Answer the next `count` calls of `action` (e.g. "UpdateService") with HTTP `status`."""
        if count < 1 or status < 400:
            raise ValueError("inject_fault needs count >= 1 and an error status (>= 400)")
        self._middleware.add_fault(action, status, count)

    def pending_faults(self) -> dict[str, int]:
        """Injected faults not answered yet, per action."""
        return self._middleware.pending_faults()

    def wrap_app(self, wrapper: Callable[[WsgiApp], WsgiApp]) -> None:
        """Put `wrapper` around moto's app, behind the counting and throttling: it sees every
        request ECS would have accepted (a benchmark's request log)."""
        self._middleware.app = wrapper(self._middleware.app)

    def request_counts(self) -> dict[str, int]:
        """Requests received per API action since the last reset (throttled and failed included)."""
        return self._middleware.counts()

    def throttled_counts(self) -> dict[str, int]:
        """Requests answered with ThrottlingException per action since the last reset."""
        return self._middleware.throttled()
