"""A throw-away `redis-server` on 127.0.0.1 and a free port.

Why: workers publish their events to Redis; the tests, the `--sandbox` mode and the
benchmarks need one without asking the user to run it. Persistence is off (`--save ""
--appendonly no`) so nothing is written to disk and a stop loses nothing anyone wants.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType

import redis

__all__ = ["RedisServer", "RedisServerNotFound"]


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

    def start(self) -> RedisServer:
        if self._process is not None:
            return self
        executable = shutil.which(self.binary)
        if executable is None:
            raise RedisServerNotFound(self.binary)
        self._workdir = tempfile.TemporaryDirectory(prefix="ecs-fanout-redis-")
        for _ in range(3):
            if self._launch(executable):
                return self
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {self.timeout_s}s")

    def _launch(self, executable: str) -> bool:
        assert self._workdir is not None
        self.port = _free_port(self.host)
        args = [executable, "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        args += ["--dir", self._workdir.name, "--protected-mode", "no", "--loglevel", "warning"]
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
                except redis.ConnectionError:
                    time.sleep(0.02)
        finally:
            client.close()
        self._kill()
        return False

    def _kill(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def stop(self) -> None:
        self._kill()
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

    @staticmethod
    def url_from_env() -> str | None:
        """`REDIS_URL` when the user points at a Redis of their own."""
        return os.environ.get("REDIS_URL") or None
