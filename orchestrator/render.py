"""Headless renderers: `--json` (NDJSON for CI) and `--plain` (lines for pipes and logs).

Both write results to stdout only; logs go to stderr through `logging`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from orchestrator.state import JobState, RunState
from worker.contract import Phase, WorkerEvent

__all__ = ["JsonRenderer", "PlainRenderer", "shorten", "summary_table"]


_TARGET_FIELDS = {"account", "region", "cluster", "service", "container", "revision"}


class JsonRenderer:
    """One JSON object per line, each with a `type`; the last one is the summary."""

    def __init__(self, out: TextIO | None = None, *, spec_path: str = "") -> None:
        self._out = out or sys.stdout
        self._spec_path = spec_path
        self._run_id = ""

    def _write(self, obj: dict[str, Any]) -> None:
        self._out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._out.flush()

    def started(self, state: RunState) -> None:
        self._run_id = state.run_id
        targets = [
            {**r.model_dump(include=_TARGET_FIELDS), "image": r.planned_image} for r in state.results()
        ]
        self._write({"type": "run", "run_id": state.run_id, "spec": self._spec_path, "targets": targets})

    def setup_changed(self, step: str, status: str, message: str) -> None:
        self._write(
            {"type": "setup", "run_id": self._run_id, "step": step, "status": status, "message": message}
        )

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        if event is not None and event.phase is Phase.DUPLICATE:
            return  # a delivery that did nothing: the job did not change, no line
        self._write(
            {
                "type": "event",
                "run_id": self._run_id,
                "job_id": job.job_id,
                **job.target.model_dump(),
                "phase": job.phase.value,
                "message": job.message,
                "seq": None if event is None else event.seq,
                "ts": time.time() if event is None else event.ts,
                "received_at": None if event is None else job.last_event_at,
                "details": job.details.model_dump(exclude_defaults=True),
            }
        )

    def finished(self, state: RunState) -> None:
        self._write(
            {
                "type": "summary",
                "run_id": state.run_id,
                "results": [r.model_dump(mode="json") for r in state.results()],
            }
        )


SUMMARY_WIDTH = 120  # columns: the table fits a terminal and a CI log without wrapping
TARGET_MAX, IMAGE_MAX = 32, 44  # longer ones are shortened in the middle (the tag stays)


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` columns: a quarter of them for its start, the rest for its end
    (an image's tag, a target's container), `...` in between."""
    if len(text) <= width:
        return text
    head = (width - 3) // 4
    return f"{text[:head]}...{text[len(text) - (width - 3 - head) :]}"


def summary_table(state: RunState, width: int = SUMMARY_WIDTH) -> str:
    """A row per target in at most `width` columns: long targets and images are shortened in
    the middle, a long message is cut (the event lines above and --json have it whole)."""
    rows = [
        (
            "/".join(part for part in (r.cluster, r.service, r.container) if part),
            r.status.value,
            r.image or (f"revision {r.revision}" if r.revision else r.planned_image or ""),
            r.message,
        )
        for r in state.results()
    ]
    header = ("TARGET", "STATUS", "IMAGE", "MESSAGE")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    widths[0], widths[2] = min(widths[0], TARGET_MAX), min(widths[2], IMAGE_MAX)
    message_width = width - sum(widths) - 2 * len(widths)
    lines = [
        "  ".join(shorten(cell, w).ljust(w) for cell, w in zip(row[:3], widths, strict=True))
        + "  "
        + (row[3] if len(row[3]) <= message_width else row[3][: message_width - 3] + "...")
        for row in [header, *rows]
    ]
    counts = ", ".join(f"{n} {phase.value}" for phase, n in sorted(state.counts().items()))
    return "\n".join([*(line.rstrip() for line in lines), f"run {state.run_id}: {counts}"])


class PlainRenderer:
    """A line per state change, then a summary table."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def started(self, state: RunState) -> None:
        self._line(f"run {state.run_id}: {len(state.jobs)} services")

    def setup_changed(self, step: str, status: str, message: str) -> None:
        self._line(f"{time.strftime('%H:%M:%S')} {'[' + step + ']':<40} {status:<12} {message}")

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        if event is not None and event.phase is Phase.DUPLICATE:
            return  # a delivery that did nothing: the job did not change, no line
        stamp = time.strftime("%H:%M:%S")
        self._line(f"{stamp} {job.name:<40} {job.phase.value:<12} {job.message}")

    def finished(self, state: RunState) -> None:
        self._line(summary_table(state))
