"""The run's header (id, spec, caller, elapsed time, counts per state) and its end-of-run summary.

Both repaint only when what they show changed: the header is asked to update on every flush
and every clock tick, which must cost nothing when nothing moved.
"""

from __future__ import annotations

from textual.content import Content
from textual.style import Style
from textual.widget import Widget

from orchestrator.render import baking_note
from orchestrator.state import OK_PHASES, RunState
from tui.view import phase_group, phase_icon, short_arns
from worker.contract import Phase
from worker.target import Target

__all__ = ["RunHeader", "RunSummary"]

SUMMARY_LINES = 8  # past this many troubled targets, `f` lists them all
_Part = str | Content | tuple[str, str | Style]


def _counts_parts(widget: Widget, counts: dict[Phase, int], prefix: str) -> list[_Part]:
    parts: list[_Part] = []
    for phase in Phase:  # the lifecycle's order, not the alphabet's
        if counts.get(phase):
            if parts:
                parts.append("  ")
            style = widget.get_visual_style(f"{prefix}--{phase_group(phase)}")
            parts.append((f"{phase_icon(phase)} {counts[phase]} {phase.value}", style))
    return parts


class RunHeader(Widget):
    """`ecs-fanout  run <id>  spec <file>  elapsed 0:42`, a count per state and the caller."""

    COMPONENT_CLASSES = {
        "header--title",
        "header--label",
        "header--value",
        "header--queued",
        "header--active",
        "header--ok",
        "header--failed",
        "header--note",
    }

    def __init__(self, run_id: str, spec_path: str, caller: str | None = None) -> None:
        """`caller`: who runs it (an account id or ARN); not shown when not known."""
        super().__init__()
        self._run_id = run_id
        self._spec = spec_path or "—"
        self._caller = caller
        self._shown: tuple[tuple[tuple[Phase, int], ...], str, bool, str] = ((), "", False, "")

    def show(self, counts: dict[Phase, int], elapsed: str, finished: bool, note: str = "") -> None:
        """`note` says what the panes leave out (a filter), if anything."""
        shown = (tuple(sorted(counts.items())), elapsed, finished, note)
        if shown != self._shown:
            self._shown = shown
            self.refresh()

    def render(self) -> Content:
        style = self.get_visual_style
        counts_items, elapsed, finished, note = self._shown
        label, value = style("header--label"), style("header--value")
        first: list[_Part] = [
            ("ecs-fanout", style("header--title")),
            ("  run ", label),
            (self._run_id, value),
            ("  spec ", label),
            (self._spec, value),
            ("  finished in " if finished else "  elapsed ", label),
            (elapsed, value),
        ]
        if note:
            first += [("  showing ", label), (note, style("header--note"))]
        counts = _counts_parts(self, dict(counts_items), "header") or [("waiting for the run", label)]
        if self._caller:  # who deploys: the account (or role) the run's own credentials act as
            counts += [("  caller ", label), (self._caller, value)]
        return Content.assemble(*first, "\n", *counts)


class RunSummary(Widget):
    """Shown when every job has ended; stays until `q`."""

    COMPONENT_CLASSES = {
        "summary--title",
        "summary--queued",
        "summary--active",
        "summary--ok",
        "summary--failed",
        "summary--hint",
    }

    def __init__(self) -> None:
        super().__init__()
        self._state: RunState | None = None
        self._elapsed = ""
        self._code = 0

    def show(self, state: RunState, elapsed: str, code: int) -> None:
        self._state, self._elapsed, self._code = state, elapsed, code
        self.add_class("-finished")
        self.refresh(layout=True)

    def render(self) -> Content:
        style = self.get_visual_style
        if self._state is None:
            return Content("")
        results = self._state.results()
        parts: list[_Part] = [
            (f"Run finished in {self._elapsed}, exit code {self._code}: ", style("summary--title")),
            *_counts_parts(self, self._state.counts(), "summary"),
        ]
        troubled = [r for r in results if r.status not in OK_PHASES]
        scoped = len({(r.account, r.region) for r in results}) > 1  # name the account and region
        note = baking_note(self._state)  # a line of its own: one troubled target fewer fits
        shown = SUMMARY_LINES - bool(note)
        for result in troubled[:shown]:
            target = "/".join(part for part in (result.cluster, result.service, result.container) if part)
            if scoped:
                where = Target(
                    account=result.account,
                    region=result.region,
                    cluster=result.cluster,
                    service=result.service,
                )
                target = f"{where.scope} {target}"
            parts += [
                "\n",
                (f"{phase_icon(result.status)} {target} {result.status.value}: ", style("summary--failed")),
                short_arns(result.message),
            ]
        if note:
            parts += ["\n", (f"{phase_icon(Phase.BAKING)} {note}", style("summary--ok"))]
        more = len(troubled) - shown
        hint = f"… and {more} more: f shows failures only. " if more > 0 else ""
        parts += ["\n", (f"{hint}q quits, enter on a pane shows its events.", style("summary--hint"))]
        return Content.assemble(*parts)
