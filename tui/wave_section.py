"""A wave of the run: a header with its counts and its gate's state, over its panes.

A run with waves shows one `WaveSection` per wave, in order; each holds that wave's pane
groups (one per account and region, `tui.group.PaneGroup`, headed only when the run spans
several). Its `WaveHeader` says, on its first line, the wave's name and counts, and on its
second what its gate does now (`gate_text`): waiting for the waves before it, deploying,
the smoke test running, soaking with the time left, waiting on alarms or for approval,
passed, or stopped the run. Times left move on with the app's clock (`tick`), repainting
only when the text changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from textual.app import ComposeResult
from textual.containers import Container
from textual.content import Content
from textual.style import Style
from textual.widget import Widget

from orchestrator.render import GATE_WORDS, STATUS_WORDS, status_counts
from orchestrator.state import JobState
from orchestrator.wave_state import WaveState
from tui.group import PaneGroup
from tui.view import elapsed_text

__all__ = ["WaveHeader", "WaveSection", "WaveSections", "gate_text"]

Clock = Callable[[], float]
_Part = str | Content | tuple[str, str | Style]
_WORD_STYLE = dict(STATUS_WORDS)  # word -> phase group


def gate_text(wave: WaveState, now: float, can_decide: bool = False) -> tuple[str, str]:
    """What the wave's gate does now, and its style (`waiting`, `active`, `ok`, `failed`).
    `can_decide`: this view can take the approval (the run's own live view)."""
    step = wave.now
    if wave.status == "pending":
        return "waits for the waves before it", "waiting"
    if wave.status == "not_started":
        return f"not started: {wave.message}" if wave.message else "not started", "waiting"
    if wave.status == "deploying":
        return "deploying; its gate follows", "active"
    if wave.status == "passed":
        return f"passed: {wave.message}", "ok"
    if wave.status == "stopped":
        return f"stopped the run: {wave.message}", "failed"
    if step is None or wave.current is None:
        return "at its gate", "active"
    left = "" if step.until is None else f", {elapsed_text(step.until - now)} left"
    word = GATE_WORDS[wave.current]
    if wave.awaiting_approval:  # here (the run's own view), or the commands that decide it
        return "waiting for approval: press a to approve or stop" if can_decide else step.message, "waiting"
    if step.state == "soaking":
        return f"soaking{left}: {step.message}", "active"
    if step.state in ("running", "waiting"):
        style = "active" if step.state == "running" else "waiting"
        return f"{word} {step.state}{left}: {step.message}", style
    return f"{word} {step.state}: {step.message}", "ok" if step.state == "passed" else "failed"


class WaveHeader(Widget):
    """`wave canary — 2 services: 1 succeeded, 1 in progress`, then its gate's state."""

    COMPONENT_CLASSES = {
        "wave--name",
        "wave--label",
        "wave--queued",
        "wave--active",
        "wave--ok",
        "wave--failed",
        "wave--gate-waiting",
        "wave--gate-active",
        "wave--gate-ok",
        "wave--gate-failed",
    }

    def __init__(self, wave: WaveState, jobs: Sequence[JobState], clock: Clock, can_decide: bool) -> None:
        super().__init__()
        self.wave = wave
        self._jobs = jobs
        self._clock = clock
        self._can_decide = can_decide
        self._shown: tuple[tuple[tuple[str, int], ...], tuple[str, str]] = ((), ("", ""))

    @property
    def gate(self) -> str:
        """The gate's line as shown."""
        return self._shown[1][0]

    def update(self) -> None:
        """Counts and gate again; repaint only when what is shown moved."""
        counts = tuple(status_counts(job.phase for job in self._jobs))
        shown = (counts, gate_text(self.wave, self._clock(), self._can_decide))
        if shown != self._shown:
            self._shown = shown
            self.refresh()

    def render(self) -> Content:
        style = self.get_visual_style
        counts, (gate, group) = self._shown
        total = len(self._jobs)
        parts: list[_Part] = [
            (f"wave {self.wave.name}", style("wave--name")),
            (f" — {total} {'service' if total == 1 else 'services'}: ", style("wave--label")),
        ]
        for index, (word, count) in enumerate(counts):
            if index:
                parts.append((", ", style("wave--label")))
            parts.append((f"{count} {word}", style(f"wave--{_WORD_STYLE[word]}")))
        parts += ["\n", ("gate: ", style("wave--label")), (gate, style(f"wave--gate-{group}"))]
        return Content.assemble(*parts)


class WaveSection(Container):
    """One wave: its header, then its panes grouped by account and region."""

    def __init__(
        self,
        wave: WaveState,
        jobs: Sequence[JobState],
        groups: Sequence[PaneGroup],
        clock: Clock,
        can_decide: bool,
    ) -> None:
        super().__init__()
        self.wave = wave
        self.groups = list(groups)
        self.header = WaveHeader(wave, jobs, clock, can_decide)

    def compose(self) -> ComposeResult:
        yield self.header
        yield from self.groups

    def on_mount(self) -> None:
        self.header.update()

    def changed(self) -> None:
        """Its jobs or its gate moved, or time passed: the header says so if it shows."""
        self.header.update()

    def update_shown(self) -> None:
        """Hide the section when none of its panes is shown (a filter, failures only)."""
        shown = any(group.display for group in self.groups)
        if self.display != shown:
            self.display = shown


class WaveSections:
    """The app's wave sections by wave name, in order; none in a run without waves."""

    def __init__(self) -> None:
        self._by_name: dict[str, WaveSection] = {}

    def add(self, section: WaveSection) -> None:
        self._by_name[section.wave.name] = section

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def __iter__(self) -> Iterator[WaveSection]:
        return iter(self._by_name.values())

    def __getitem__(self, name: str) -> WaveSection:
        return self._by_name[name]

    def changed(self, names: Iterable[str | None] | None = None) -> None:
        """The waves `names` (None: all) moved, or time passed: their headers follow."""
        for name in self._by_name if names is None else set(names):
            if name in self._by_name:
                self._by_name[name].changed()

    def update_shown(self) -> None:
        for section in self._by_name.values():
            section.update_shown()
