"""Progress lines on stderr, timestamped.

Why: stdout carries the report (Markdown) alone, so that it can be piped or saved; what the
benchmark is doing meanwhile goes to stderr, one line an event.
"""

from __future__ import annotations

import sys
import time

__all__ = ["log"]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
