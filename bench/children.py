"""The harness's helper processes: `python -m bench.<module>`, spoken to in JSON lines.

Why: the emulator and the spawner each run in a process of their own (their modules say why).
The harness writes one JSON request a line on a child's stdin and reads one JSON answer a line
from its stdout; `JsonLineChild` is that conversation, shared by both clients.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["ROOT", "JsonLineChild", "env_without_pythonpath"]

ROOT = Path(__file__).resolve().parent.parent


def env_without_pythonpath() -> dict[str, str]:
    """This process's environment minus PYTHONPATH: a child imports what its own venv has."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


class JsonLineChild:
    """`python -m MODULE ARGS...` in the repository root, with a request/answer channel."""

    what = "child"  # names the process in error messages

    def __init__(
        self, module: str, *args: str, env: Mapping[str, str], stderr: IO[str] | None = None
    ) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=dict(env),
            cwd=ROOT,
        )
        self._lock = threading.Lock()

    def _exited(self) -> str:
        return f"the {self.what} process exited (code {self._proc.poll()})"

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(self._exited())
        answer: dict[str, Any] = json.loads(line)
        return answer

    def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Send one JSON line, return the one JSON line that answers it."""
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(message) + "\n")
            self._proc.stdin.flush()
            return self._read()

    def _say_goodbye(self) -> None:
        """Ask the child to exit: closing its stdin ends its request loop."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()

    def close(self) -> None:
        try:
            self._say_goodbye()
            self._proc.wait(timeout=10)
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        finally:
            if self._proc.stdout is not None:
                self._proc.stdout.close()
