"""Running `python -m orchestrator` as a user does: a subprocess in the repo, with REDIS_URL set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(redis_url: str, env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": redis_url, **(env or {})}


def run_cli(
    *args: str, redis_url: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m orchestrator ARGS` to its end; `env` is added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(redis_url, env),
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
