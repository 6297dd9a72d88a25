"""A `redis-server` of our own on 127.0.0.1 and a free port: the embedded default for events.

Why in the product: workers publish their events to Redis, and a local run (local executor,
no `REDIS_URL`) should not ask the user to run one. `private_redis()` starts one for a run,
says on stderr where it is (so `ecs-fanout attach` can follow the run from another terminal)
and stops it at the run's end. Only the lambda executor needs a Redis of the user's: its
workers run on AWS and must reach it too. The tests and benchmarks use `RedisServer` directly.

The append-only file is on (`--appendonly yes`, in a data directory kept until the server
stops) and fsynced on every write (`--appendfsync always`; with `everysec` a SIGKILL loses up
to the last second of events): what the run published survives a crash and restart of the
server during the run. `kill()` (SIGKILL) and `restart()` (same port, same directory) are
that crash and restart; the tests use them. RDB snapshots are off: they would fork the server
for nothing.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TextIO

import redis

from orchestrator.errors import ConfigError

__all__ = ["RedisServer", "RedisServerNotFound", "private_redis"]


class RedisServerNotFound(FileNotFoundError):
    """No `redis-server` binary to start."""

    def __init__(self, binary: str) -> None:
        super().__init__(
            f"redis-server not found ({binary!r} is not on PATH): install it: "
            "apt-get install redis-server, or set REDIS_URL to a running Redis"
        )


def _free_port(host: str) -> int:
    # the port may be taken again before redis binds it; start() retries on that
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Start with `start()` or `with RedisServer() as server:`; `server.url` is its URL."""

    def __init__(
        self, binary: str = "redis-server", host: str = "127.0.0.1", timeout_s: float = 10.0
    ) -> None:
        self.binary = binary
        self.host = host
        self.timeout_s = timeout_s
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        if self.port is None or self._process is None:
            raise RuntimeError("redis-server is not running: call start() first")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def data_dir(self) -> str | None:
        """Where its append-only file lives while it runs (removed when it stops)."""
        return None if self._workdir is None else self._workdir.name

    def start(self) -> RedisServer:
        if self._process is not None:
            return self
        executable = self._executable()
        self._workdir = tempfile.TemporaryDirectory(prefix="ecs-fanout-redis-")
        for _ in range(3):
            self.port = _free_port(self.host)
            if self._launch(executable):
                return self
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {self.timeout_s}s")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would: its port and data directory are kept for `restart()`."""
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self._close_stderr()
        self._process = None

    def restart(self, *, empty: bool = False) -> RedisServer:
        """Start the server again on the same port, from the same data directory: what it had
        written to its append-only file is back, unless `empty` (as a Redis without persistence
        comes back: its files are removed first)."""
        if self._process is not None:
            return self
        if self.port is None or self._workdir is None:
            raise RuntimeError("redis-server was never started: call start() first")
        executable = self._executable()
        if empty:
            for entry in Path(self._workdir.name).iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        deadline = time.monotonic() + self.timeout_s
        while not self._launch(executable):  # the port may linger a moment after a kill
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not come back on port {self.port}")
            time.sleep(0.1)
        return self

    def _executable(self) -> str:
        executable = shutil.which(self.binary)
        if executable is None:
            raise RedisServerNotFound(self.binary)
        return executable

    def _launch(self, executable: str) -> bool:
        assert self._workdir is not None and self.port is not None
        args = [executable, "--bind", self.host, "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", self._workdir.name]
        args += ["--protected-mode", "no", "--loglevel", "warning"]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    break  # exited: most likely the port was taken meanwhile
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:  # not listening yet, or still loading its file
                    time.sleep(0.02)
        finally:
            client.close()
        self._terminate()
        return False

    def _terminate(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._close_stderr()
        self._process = None

    def _close_stderr(self) -> None:
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()

    def stop(self) -> None:
        self._terminate()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        self.port = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _announcement(url: str, run_id: str) -> str:
    return (
        f"ecs-fanout: events in a private Redis at {url} "
        f"(REDIS_URL={url} ecs-fanout attach {run_id} while it runs)"
    )


@contextmanager
def private_redis(run_id: str, *, out: TextIO | None = None) -> Iterator[str]:
    """A redis-server for this run only: its URL, announced in one line on `out` (stderr).

    Stopped, and its data removed, when the block ends. No `redis-server` on PATH is bad
    configuration (a ConfigError naming both ways out).
    """
    try:
        server = RedisServer().start()
    except RedisServerNotFound as exc:
        raise ConfigError(f"no Redis to carry events: {exc}") from exc
    try:
        print(_announcement(server.url, run_id), file=out or sys.stderr, flush=True)
        yield server.url
    finally:
        server.stop()
