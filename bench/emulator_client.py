"""The harness's side of the emulator process (`bench.emulator`): start it, control it, stop it.

Why a client of its own: the emulator runs in a process of its own (see `bench.emulator`), and
everything the harness asks of it (throttling on/off, its counters, quit) goes through this one
JSON-lines channel. The emulator also runs the lambda executor's workers, with the `worker/`
code it imported at start: `workers_stale` says when that code changed since.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.children import ROOT, JsonLineChild

__all__ = ["Emulator", "worker_code_stamp"]


def worker_code_stamp() -> float:
    """Newest modification time of the worker's code (the emulator process runs the workers)."""
    return max(p.stat().st_mtime for p in (ROOT / "worker").glob("*.py"))


class Emulator(JsonLineChild):
    """`python -m bench.emulator` as a child process, controlled over its stdin/stdout."""

    what = "emulator"

    def __init__(
        self, rollout_s: float, redis_url: str, log_path: Path, esm_concurrency: int | None = None
    ) -> None:
        self.code_stamp = worker_code_stamp()
        self._log = log_path.open("w")
        super().__init__(
            "bench.emulator",
            *("--port", "0", "--rollout-s", f"{rollout_s:g}", "--throttling"),
            *(["--esm-concurrency", str(esm_concurrency)] if esm_concurrency else []),
            env={**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"},
            stderr=self._log,
        )
        first = self._read()
        self.endpoint_url = str(first["endpoint_url"])
        self.pid = int(first["pid"])

    def _exited(self) -> str:
        return f"{super()._exited()}; see {self._log.name}"

    def command(self, cmd: str, **fields: Any) -> dict[str, Any]:
        return self.request({"cmd": cmd, **fields})

    def throttling(self, enabled: bool) -> None:
        self.command("throttling", enabled=enabled)

    def stats(self) -> dict[str, Any]:
        return self.command("stats")

    def requests(self) -> list[tuple[float, str, list[str]]]:
        """The emulator's request log since the last call (`bench.request_log`), then cleared."""
        return [(float(t), str(a), list(items)) for t, a, items in self.command("requests")["log"]]

    def set_rollout(self, seconds: float) -> None:
        """Rollouts that start from now on take `seconds`."""
        self.command("rollout", seconds=seconds)

    def lambda_enabled(self, enabled: bool) -> None:
        """The emulated Lambda's event-source mappings poll (True) or not (False)."""
        self.command("lambda", enabled=enabled)

    def workers_stale(self) -> bool:
        """True when `worker/` changed after this process started: its workers run older code."""
        return worker_code_stamp() != self.code_stamp

    def _say_goodbye(self) -> None:
        self.command("quit")

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._log.close()
