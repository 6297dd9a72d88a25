"""When the emulated ECS answered which request: the benchmarks' request log (emulator process).

Why: some figures are only visible from AWS's side: when the first UpdateService of a run
arrived (start-up), and how long each job went between two looks at its deployment (the
looker's pacing at N = 1,000). `RequestLog` wraps moto's app behind the emulator's counting and
throttling (`AwsEmulator.wrap_app`), so it sees the requests ECS accepted, and notes for the
ECS actions of `LOGGED` the time and what each asked about (services, or service-deployment
ARNs). The harness reads and clears it over the emulator's control channel.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["LOGGED", "RequestLog", "looked_at"]

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# action -> the request field naming what it asks about
LOGGED = {
    "DescribeServices": "services",
    "DescribeServiceDeployments": "serviceDeploymentArns",
    "UpdateService": "service",
}


class RequestLog:
    """A WSGI wrapper noting (time.time(), action, [items]) of each logged ECS request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[tuple[float, str, list[str]]] = []

    def wrap(self, app: WsgiApp) -> WsgiApp:
        def logged(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            action = target.rsplit(".", 1)[-1] if target.startswith("AmazonEC2ContainerService") else ""
            if action in LOGGED:
                self._note(environ, action)
            return app(environ, start_response)

        return logged

    def _note(self, environ: dict[str, Any], action: str) -> None:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        try:
            value = json.loads(body or b"{}").get(LOGGED[action])
        except ValueError:
            value = None
        items = [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []
        with self._lock:
            self._entries.append((time.time(), action, items))

    def take(self) -> list[tuple[float, str, list[str]]]:
        """Every entry since the last `take`, oldest first; the log starts again empty."""
        with self._lock:
            entries, self._entries = self._entries, []
        return entries


def looked_at(entries: Iterable[tuple[float, str, list[str]]], action: str) -> dict[str, list[float]]:
    """When each item (a service, a service deployment) was asked about by `action`, in order."""
    times: dict[str, list[float]] = {}
    for at, logged, items in entries:
        if logged == action:
            for item in items:
                times.setdefault(item.rsplit("/", 1)[-1], []).append(at)
    return times
