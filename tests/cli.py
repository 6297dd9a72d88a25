"""Running `python -m orchestrator` as a user does: a subprocess in the repo, with REDIS_URL set."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(redis_url: str, env: dict[str, str] | None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    kept = (
        {name: value for name, value in os.environ.items() if not name.startswith(drop)}
        if drop
        else os.environ
    )
    return {**kept, "REDIS_URL": redis_url, **(env or {})}


def run_cli(
    *args: str,
    redis_url: str,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`python -m orchestrator ARGS` to its end; `env` is added to this process's environment,
    after the variables whose names start with one of `drop` are left out."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(redis_url, env, drop),
        cwd=ROOT,
        check=False,
    )


def spawn_cli(*args: str, redis_url: str) -> subprocess.Popen[str]:
    """`python -m orchestrator ARGS` started, its stdout and stderr piped (for Ctrl-C tests)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(redis_url, None),
        cwd=ROOT,
    )


class CliInTerminal:
    """`python -m orchestrator ARGS` as a shell runs it: a pseudo-terminal of its own on stdin,
    stdout and stderr (Textual draws on stderr)."""

    def __init__(self, *args: str, env: Mapping[str, str]) -> None:
        leader, follower = os.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *args],
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=env,
            cwd=ROOT,
        )
        os.close(follower)
        self.leader = leader  # what a person types goes here
        self.output = bytearray()

    def read(self, seconds: float, until: Callable[[bytearray], bool] = lambda _: False) -> None:
        """Reads what the child shows until `until` holds of all it showed, it closes the terminal
        or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until(self.output):
            try:
                chunk = os.read(self.leader, 65536)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            self.output += chunk

    def finish(self, seconds: float) -> str:
        """Reads to the end and waits for the child's exit: all it showed."""
        self.read(seconds)
        os.close(self.leader)
        self.process.wait(timeout=30)
        return self.output.decode(errors="replace")
