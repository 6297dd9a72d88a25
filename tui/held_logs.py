"""Log lines held while the live view draws: written under it, they would tear the screen."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["logs_held"]


class _HeldLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: deque[logging.LogRecord] = deque(maxlen=10_000)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def logs_held() -> Iterator[None]:
    """Log lines written to the terminal under the TUI would tear it: replay them after."""
    root = logging.getLogger()
    saved, held = root.handlers[:], _HeldLogs()
    root.handlers = [held]
    try:
        yield
    finally:
        root.handlers = saved
        for record in held.records:
            root.handle(record)
