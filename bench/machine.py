"""What machine the figures were taken on: cores, CPU model, Python, kernel, load.

Why: a benchmark's figures mean little without the machine and how busy it was; the report
(`python -m bench`) and `bench.tui_latency` both print it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "load", "machine"]


def cpu_model(default: str = "unknown") -> str:
    """The CPU's model name from /proc/cpuinfo, or `default`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default


def load() -> list[float]:
    """The load averages over 1, 5 and 15 minutes, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_1_5_15": load(),
    }
