"""The panes of one account and region, under a header with that group's counts.

A run whose targets span several accounts or regions shows one `PaneGroup` per (account,
region), in the order the plan first names them; each has a `GroupHeader`
(`111111111111 · eu-west-1 — 5 services: 3 succeeded, 1 in progress, 1 failed`) and a grid of
job panes. A run in one account and region has one group and no header: its header would say
what every pane already shares, and the view stays as it was before accounts and regions.

The group owns its header: the app tells it which of its jobs changed (`jobs_changed`) and
the group repaints its counts when they moved. When none of its panes is shown (a filter,
failures only), the whole group hides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from textual.app import ComposeResult
from textual.containers import Container
from textual.content import Content
from textual.style import Style
from textual.widget import Widget

from orchestrator.render import STATUS_WORDS, Scope, scope_label, status_counts
from orchestrator.state import JobState
from tui.pane import JobPane

__all__ = ["GroupHeader", "PaneGroup", "pane_groups"]

_Part = str | Content | tuple[str, str | Style]
_WORD_STYLE = dict(STATUS_WORDS)  # word -> phase group


class GroupHeader(Widget):
    """`account · region — N services: counts`, each count in its phase group's colour."""

    COMPONENT_CLASSES = {
        "group--scope",
        "group--label",
        "group--queued",
        "group--active",
        "group--ok",
        "group--failed",
    }

    def __init__(self, scope: Scope, panes: Sequence[JobPane]) -> None:
        super().__init__()
        self.scope = scope
        self._panes = panes
        self._shown: tuple[tuple[str, int], ...] = ()

    @property
    def counts(self) -> list[tuple[str, int]]:
        """(word, count) as shown: `[("succeeded", 3), ("in progress", 1), ("failed", 1)]`."""
        return list(self._shown)

    def update_counts(self) -> None:
        """Count the group's jobs again; repaint only when a count moved."""
        shown = tuple(status_counts(pane.job.phase for pane in self._panes))
        if shown != self._shown:
            self._shown = shown
            self.refresh()

    def render(self) -> Content:
        style = self.get_visual_style
        total = len(self._panes)
        parts: list[_Part] = [
            (scope_label(self.scope), style("group--scope")),
            (f" — {total} {'service' if total == 1 else 'services'}: ", style("group--label")),
        ]
        for index, (word, count) in enumerate(self._shown):
            if index:
                parts.append((", ", style("group--label")))
            parts.append((f"{count} {word}", style(f"group--{_WORD_STYLE[word]}")))
        return Content.assemble(*parts)


class PaneGroup(Container):
    """One (account, region): a header (hidden when it is the run's only group), then its panes."""

    def __init__(self, scope: Scope, panes: Sequence[JobPane], *, single: bool) -> None:
        super().__init__(classes="-single" if single else "")
        self.scope = scope
        self.panes = list(panes)
        self.header = GroupHeader(scope, self.panes)

    def compose(self) -> ComposeResult:
        yield self.header
        with Container(classes="group-panes"):
            yield from self.panes

    def on_mount(self) -> None:
        self.header.update_counts()

    def jobs_changed(self) -> None:
        """Some of this group's jobs changed: their counts may have."""
        self.header.update_counts()

    def update_shown(self) -> None:
        """Hide the group when none of its panes is shown (a filter, failures only)."""
        shown = any(pane.display for pane in self.panes)
        if self.display != shown:
            self.display = shown


def pane_groups(
    jobs: Iterable[JobState], make_pane: Callable[[JobState], JobPane], single: bool
) -> list[PaneGroup]:
    """A pane per job, grouped by account and region in the order first named; `single`: the
    run has one account and region, so no group shows its header."""
    grouped: dict[Scope, list[JobPane]] = {}
    for job in jobs:
        grouped.setdefault((job.target.account, job.target.region), []).append(make_pane(job))
    return [PaneGroup(scope, panes, single=single) for scope, panes in grouped.items()]
