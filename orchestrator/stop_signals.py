"""SIGTERM and SIGHUP stop a command the way Ctrl-C does.

CI runners cancel a job with SIGTERM, `docker stop` and Kubernetes send it too, and a closed
terminal sends SIGHUP. Python's default for both is to die at once: no report of what ECS is
still rolling out, and a private `redis-server` left running. `install()` (the CLI calls it
once, before any command runs, in the CLI process only) turns both into what SIGINT does
at that moment:

- inside `anyio.run` or Textual's `asyncio.run`, the runner's own SIGINT handler: the main
  task is cancelled, every `finally` and context manager runs (the live view restores the
  terminal, the sandbox and the private Redis are stopped), then KeyboardInterrupt is raised;
- elsewhere, Python's default: KeyboardInterrupt where the main thread is.

So every path that handles Ctrl-C handles them too, and only the exit code and the wording
differ: `stop_code()` is 143 (128 + SIGTERM, `ExitCode.TERMINATED`) after a SIGTERM and 130
(`ExitCode.INTERRUPTED`) after SIGINT or SIGHUP; `stop_reason()` names what happened. A
second signal while stopping interrupts the clean-up, as a second Ctrl-C does.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from orchestrator.exits import ExitCode

__all__ = ["install", "received", "reset", "stop_code", "stop_reason"]

_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
_REASONS = {signal.SIGTERM: "terminated (SIGTERM)", signal.SIGHUP: "hung up (SIGHUP)"}
_received: list[int] = []


def _as_sigint(signum: int, frame: FrameType | None) -> None:
    if not _received:
        _received.append(signum)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # Python's default_int_handler, or an event loop runner's
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored (a background job of a shell) or not ours: stop all the same
        raise KeyboardInterrupt


def install() -> None:
    """Route SIGTERM and SIGHUP to the SIGINT handler of the moment. CLI process only (and
    its main thread: Python runs signal handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        signal.signal(signum, _as_sigint)


def reset() -> None:
    """Forget a signal received (for a process that runs more than one command)."""
    _received.clear()


def received() -> int | None:
    """The SIGTERM or SIGHUP that stopped this process, if one did."""
    return _received[0] if _received else None


def stop_code() -> ExitCode:
    """The exit code of a command stopped by a signal: 143 for SIGTERM, else 130."""
    return ExitCode.TERMINATED if received() == signal.SIGTERM else ExitCode.INTERRUPTED


def stop_reason() -> str:
    """`interrupted`, `terminated (SIGTERM)` or `hung up (SIGHUP)`."""
    signum = received()
    return "interrupted" if signum is None else _REASONS[signal.Signals(signum)]
