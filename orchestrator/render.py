"""Headless renderers: `--json` (NDJSON for CI) and `--plain` (lines for pipes and logs).

Both write results to stdout only; logs go to stderr through `logging`.

A run may span several accounts and regions. Its targets are grouped by *scope* (account,
region): `scopes` gives the groups in the order the plan first names them, and `scope_line`
the line that heads a group (`111111111111 · eu-west-1 — 5 services: 3 succeeded, 1 in
progress, 1 failed`), here in the summary table and in the live view alike. A run in one
scope is shown as before: no group lines, targets by name alone.

Where a job's service deployment stands (strategy, lifecycle stage, traffic, bake time left, a
hook holding it) is in its `--plain` lines through the worker's own message (`...; post test
traffic shift; production traffic 0%; waiting for hook check for 3m12s`), and in `--json` event
lines' `details` as the worker sent them. A `baking` end (done_when = "traffic_shifted") counts
as a success, and the summary says it is not a whole one yet (`baking_note`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from orchestrator.gate_events import GateEvent
from orchestrator.state import OK_PHASES, JobState, RunState, TargetResult
from orchestrator.wave_state import WaveState
from worker.contract import Phase, WorkerEvent
from worker.target import Target

__all__ = [
    "STATUS_WORDS",
    "JsonRenderer",
    "PlainRenderer",
    "Scope",
    "baking_note",
    "scope_label",
    "scope_line",
    "scopes",
    "shorten",
    "status_counts",
    "summary_table",
    "wave_line",
]

Scope = tuple[str | None, str | None]  # (account, region); None: the caller's, the run's


def _scope(target: Target | TargetResult) -> Scope:
    return (target.account, target.region)


def scopes(state: RunState) -> dict[Scope, list[JobState]]:
    """The run's jobs grouped by (account, region), groups in the order the plan first names them."""
    groups: dict[Scope, list[JobState]] = {}
    for job in state.jobs.values():
        groups.setdefault(_scope(job.target), []).append(job)
    return groups


def scope_label(scope: Scope) -> str:
    """`111111111111 · eu-west-1`; the caller's account or the run's region where not known."""
    account, region = scope
    return f"{account or 'caller account'} · {region or 'default region'}"


# The words a group's counts are given in, in the order they are listed, each with the style
# group (tui.view.phase_group's names) the live view paints it in.
STATUS_WORDS = (
    ("succeeded", "ok"),
    ("baking", "ok"),
    ("skipped", "ok"),
    ("in progress", "active"),
    ("queued", "queued"),
    ("failed", "failed"),
    ("not started", "queued"),
)


def _status_word(phase: Phase) -> str:
    if phase in OK_PHASES:
        return phase.value
    if phase is Phase.NOT_STARTED:
        return "not started"
    if phase.terminal:
        return "failed"  # failed, rolled back, timed out, lost: what makes the exit code 1
    return "queued" if phase is Phase.QUEUED else "in progress"


def status_counts(phases: Iterable[Phase]) -> list[tuple[str, int]]:
    """(word, count) for each word of STATUS_WORDS with a count, in that order."""
    counts: dict[str, int] = {}
    for phase in phases:
        word = _status_word(phase)
        counts[word] = counts.get(word, 0) + 1
    return [(word, counts[word]) for word, _ in STATUS_WORDS if word in counts]


def scope_line(scope: Scope, phases: Sequence[Phase]) -> str:
    """`111111111111 · eu-west-1 — 5 services: 3 succeeded, 1 in progress, 1 failed`."""
    counts = ", ".join(f"{n} {word}" for word, n in status_counts(phases))
    noun = "service" if len(phases) == 1 else "services"
    return f"{scope_label(scope)} — {len(phases)} {noun}: {counts}"


_WAVE_WORDS = {
    "pending": "waiting for the waves before it",
    "deploying": "deploying",
    "gating": "at its gate",
    "passed": "passed",
    "stopped": "stopped the run",
    "not_started": "not started",
}
GATE_WORDS = {
    "wave": "wave",
    "halt": "halt",
    "smoke_test": "smoke test",
    "soak": "soak",
    "alarms": "alarms",
    "approve": "approval",
}


def wave_line(wave: WaveState, phases: Sequence[Phase]) -> str:
    """`wave canary — 2 services: 2 succeeded · passed: gate passed (halt, soak)`."""
    counts = ", ".join(f"{n} {word}" for word, n in status_counts(phases))
    noun = "service" if len(phases) == 1 else "services"
    said = f": {wave.message}" if wave.message and wave.decided else ""
    return f"wave {wave.name} — {len(phases)} {noun}: {counts} · {_WAVE_WORDS[wave.status]}{said}"


_TARGET_FIELDS = {"account", "region", "cluster", "service", "container", "revision", "wave"}


class JsonRenderer:
    """One JSON object per line, each with a `type`; the last one is the summary."""

    def __init__(self, out: TextIO | None = None, *, spec_path: str = "", caller: str | None = None) -> None:
        """`caller`: who runs it (STS GetCallerIdentity's ARN or account), on the `run` line."""
        self._out = out or sys.stdout
        self._spec_path = spec_path
        self._caller = caller
        self._run_id = ""

    def _write(self, obj: dict[str, Any]) -> None:
        self._out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._out.flush()

    def started(self, state: RunState) -> None:
        self._run_id = state.run_id
        targets = [
            {**r.model_dump(include=_TARGET_FIELDS), "image": r.planned_image} for r in state.results()
        ]
        waves = [
            {
                "name": wave.name,
                "targets": len(wave.job_ids),
                "gate": wave.gate.model_dump(exclude_defaults=True),
            }
            for wave in state.waves.waves.values()
        ]
        self._write(
            {
                "type": "run",
                "run_id": state.run_id,
                "spec": self._spec_path,
                "caller": self._caller,
                "targets": targets,
                **({"waves": waves} if waves else {}),
            }
        )

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

    def gate_changed(self, wave: WaveState, event: GateEvent) -> None:
        self._write(
            event.model_dump(mode="json", exclude={"details"})
            | {"details": event.details.model_dump(mode="json", exclude_defaults=True)}
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
    the middle, a long message is cut (the event lines above and --json have it whole).

    A run over several accounts or regions lists its rows under a line per (account, region)
    with that group's counts, the rows indented by two."""
    results = state.results()
    grouped = _grouped(state, results)
    indent = "  " if len(grouped) > 1 else ""
    header = ("TARGET", "STATUS", "IMAGE", "MESSAGE")
    # Grouped by wave, a run over several accounts or regions says each row's (as --plain does).
    where = bool(state.waves) and len(scopes(state)) > 1
    rows = {id(r): _row(r, where) for r in results}
    widths = [max(len(row[i]) for row in [header, *rows.values()]) for i in range(3)]
    widths[0], widths[2] = min(widths[0], TARGET_MAX), min(widths[2], IMAGE_MAX)
    message_width = width - len(indent) - sum(widths) - 2 * len(widths)

    def line(row: tuple[str, str, str, str]) -> str:
        message = row[3] if len(row[3]) <= message_width else row[3][: message_width - 3] + "..."
        cells = "  ".join(shorten(cell, w).ljust(w) for cell, w in zip(row[:3], widths, strict=True))
        return (indent + cells + "  " + message).rstrip()

    lines = [line(header)]
    for title, group in grouped:
        if indent:
            lines.append(shorten(title, width) if len(title) > width else title)
        lines += (line(rows[id(r)]) for r in group)
    counts = ", ".join(f"{n} {phase.value}" for phase, n in sorted(state.counts().items()))
    note = baking_note(state)
    return "\n".join([*lines, f"run {state.run_id}: {counts}", *([note] if note else [])])


def baking_note(state: RunState) -> str | None:
    """What a `baking` end leaves open, when the run has one: ECS may yet roll it back."""
    baking = sum(job.phase is Phase.BAKING for job in state.jobs.values())
    if not baking:
        return None
    services = "1 service is" if baking == 1 else f"{baking} services are"
    return (
        f"{services} still baking: traffic is on the new revision, ECS may yet roll back "
        f"(`ecs-fanout status {state.run_id}` asks ECS)"
    )


def _grouped(state: RunState, results: list[TargetResult]) -> list[tuple[str, list[TargetResult]]]:
    """The rows under their group's line: per wave in a run with waves, else per account and region."""
    if state.waves:
        by_wave: dict[str | None, list[TargetResult]] = {name: [] for name in state.waves.waves}
        for result in results:
            by_wave.setdefault(result.wave, []).append(result)
        waves = state.waves.waves
        return [
            (wave_line(waves[name], [job.phase for job in state.wave_jobs(waves[name])]), rows)
            for name, rows in by_wave.items()
            if name in waves
        ]
    by_scope: dict[Scope, list[TargetResult]] = {}
    for result in results:
        by_scope.setdefault(_scope(result), []).append(result)
    jobs = scopes(state)
    return [(scope_line(scope, [job.phase for job in jobs[scope]]), rows) for scope, rows in by_scope.items()]


def _row(r: TargetResult, where: bool = False) -> tuple[str, str, str, str]:
    target = "/".join(part for part in (r.cluster, r.service, r.container) if part)
    return (
        f"{r.account or '-'}/{r.region or '-'} {target}" if where else target,
        r.status.value,
        r.image or (f"revision {r.revision}" if r.revision else r.planned_image or ""),
        r.message,
    )


NAME_WIDTH, NAME_WIDTH_MAX = 40, 72  # the target column of a state-change line: wider for scopes


class PlainRenderer:
    """A line per state change, then a summary table. A run over several accounts or regions
    names each target with its scope: `111111111111/eu-west-1 payments/api`."""

    def __init__(self, out: TextIO | None = None, *, caller: str | None = None) -> None:
        self._out = out or sys.stdout
        self._caller = caller
        self._scoped = False
        self._width = NAME_WIDTH

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def started(self, state: RunState) -> None:
        groups = scopes(state)
        self._scoped = len(groups) > 1
        names = (self._name(job) for job in state.jobs.values())
        self._width = max(NAME_WIDTH, min(NAME_WIDTH_MAX, max(map(len, names), default=0)))
        where = f" in {len(groups)} account/region groups" if self._scoped else ""
        waves = state.waves.waves
        if waves:
            where += f" in {len(waves)} waves ({', '.join(waves)})"
        who = f" as {self._caller}" if self._caller else ""
        self._line(f"run {state.run_id}: {len(state.jobs)} services{where}{who}")

    def setup_changed(self, step: str, status: str, message: str) -> None:
        self._line(f"{time.strftime('%H:%M:%S')} {'[' + step + ']':<40} {status:<12} {message}")

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        if event is not None and event.phase is Phase.DUPLICATE:
            return  # a delivery that did nothing: the job did not change, no line
        stamp = time.strftime("%H:%M:%S")
        self._line(f"{stamp} {self._name(job):<{self._width}} {job.phase.value:<12} {job.message}")

    def gate_changed(self, wave: WaveState, event: GateEvent) -> None:
        stamp = time.strftime("%H:%M:%S")
        what = f"{GATE_WORDS[event.gate]}: " if event.gate != "wave" else ""
        self._line(f"{stamp} {'wave ' + wave.name:<{self._width}} {event.state:<12} {what}{event.message}")

    def _name(self, job: JobState) -> str:
        return f"{job.target.scope} {job.name}" if self._scoped else job.name

    def finished(self, state: RunState) -> None:
        self._line(summary_table(state))
