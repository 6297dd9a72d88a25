"""Start the measured subprocesses from a small process, so that their peak RSS is their own.

Why: Linux carries a process's peak RSS (`ru_maxrss`) across exec, and a child forked (or
vforked) by the harness starts out as a copy of the harness, which has moto and botocore
loaded (~180 MB): every child would report at least that. This module imports only the
standard library; run as `python -m bench.spawner` it takes one JSON request per line on stdin
(`{"cmd": [...], "env": {...}, "cwd": "...", "timeout_s": 60}`) and answers one JSON line with
the child's exit code, wall time, CPU time and peak RSS (from `os.wait4`, this child alone) and
its stdout lines, each with the time it arrived.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["main", "run_measured"]


def run_measured(
    cmd: Sequence[str], *, env: Mapping[str, str], cwd: str, timeout_s: float, keep_stdout: bool = True
) -> dict[str, Any]:
    """Run `cmd`, timestamp its stdout lines, reap it with wait4 for its own rusage."""
    with tempfile.TemporaryFile("w+") as err:
        started, started_at = time.monotonic(), time.time()
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            env=dict(env),
            cwd=cwd,
        )
        done, killed = threading.Event(), threading.Event()

        def watchdog() -> None:
            if not done.wait(timeout_s):
                killed.set()
                proc.kill()

        threading.Thread(target=watchdog, daemon=True).start()
        lines: list[tuple[float, str]] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            if keep_stdout or not lines:
                lines.append((time.monotonic() - started, line.rstrip("\n")))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        err.seek(0)
        stderr = err.read()
    return {
        "returncode": proc.returncode,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
        "lines": lines,
        "stderr": stderr,
        "timed_out": killed.is_set(),
        "started_at": started_at,
    }


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            answer = run_measured(
                request["cmd"],
                env=request["env"],
                cwd=request["cwd"],
                timeout_s=float(request["timeout_s"]),
                keep_stdout=bool(request.get("keep_stdout", True)),
            )
        except OSError as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
