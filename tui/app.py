"""The live view of a run: the Textual app (`tui.run.run_tui` runs it for the session and `attach`).

The app does not know where events come from. It is handed the `RunState` it shows and a
`runner`: a coroutine function that drives the run (`run_jobs`, or `attach`'s replay) and
reports through the renderer it is given. The runner runs as a Textual worker on the app's
own asyncio loop, so the run core and the widgets share one thread and one state object.

Repaints are coalesced: the renderer marks jobs dirty, and `flush` repaints just those panes,
at once after a quiet spell (leading edge) and then at most every `FLUSH_INTERVAL_S`. A pane
off screen only notes that it is stale; it repaints when it scrolls into view.

Panes are grouped by account and region (`tui.group.PaneGroup`), each group under a header
with its counts; a run in one account and region has one group and shows no group header.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Region
from textual.widgets import Footer, Input

from orchestrator.approval import Decision
from orchestrator.exits import ExitCode
from orchestrator.renderer import Renderer
from orchestrator.state import RunState, exit_code
from tui.group import PaneGroup
from tui.header import RunHeader, RunSummary
from tui.layout import PaneLayout
from tui.pane import Clock, JobPane, PaneStyles, SetupPane
from tui.renderer import TuiRenderer
from tui.screens import ApprovalScreen, EventLogScreen, QuitScreen
from tui.view import elapsed_text, phase_group

__all__ = ["FLUSH_INTERVAL_S", "Decide", "FanoutApp", "Runner"]

Runner = Callable[[Renderer], Awaitable[object]]
Decide = Callable[[str, Decision], Awaitable[None]]  # a wave's approval, given in the live view

FLUSH_INTERVAL_S = 1 / 20
RESTYLE_BUDGET_S = 0.008  # restyling per flush: a burst of phase changes spreads over frames


class FanoutApp(App[int]):
    """One pane per job, a header with the counts, a summary at the end."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "ecs-fanout"
    AUTO_FOCUS = "JobPane"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (150, "-wide"), (230, "-very-wide")]
    BINDINGS = [
        Binding("q", "quit_run", "Quit"),
        Binding("ctrl+c", "quit_run", "Quit", show=False, priority=True),
        Binding("f", "toggle_failures", "Failures only"),
        Binding("slash", "filter", "Filter"),
        Binding("c", "toggle_collapse", "Collapse finished"),
        Binding("a", "ask_approval", "Approve wave"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(
        self,
        state: RunState,
        runner: Runner,
        *,
        spec_path: str = "",
        clock: Clock = time.time,
        exit_on_done: bool = False,
        confirm_quit: bool = True,
        caller: str | None = None,
        decide: Decide | None = None,
    ) -> None:
        """`clock` drives every elapsed time shown (tests fix it); `confirm_quit=False` for
        `attach`, where quitting stops only the viewer; `caller`: who runs it (an account id or
        ARN, from STS GetCallerIdentity), shown in the header when known; `decide`: how this
        view gives a wave's approval (the run's own view; `attach` only shows the wait)."""
        super().__init__()
        self.state = state
        self.renderer = TuiRenderer(self)
        self.error: Exception | None = None
        self.finished = False
        self.failures_only = False
        self.collapse_finished = False
        self.name_filter = ""
        self._runner = runner
        self._spec_path = spec_path
        self._caller = caller
        self._clock = clock
        self._exit_on_done = exit_on_done
        self._confirm_quit = confirm_quit
        self._decide = decide
        self._pane_styles = PaneStyles()
        layout = PaneLayout(state, clock, self._pane_styles, can_decide=decide is not None)
        self._groups, self._panes, self._group_of = layout.groups, layout.panes, layout.group_of
        self._sections = layout.sections  # a run with waves: one per wave, in order
        self._restyle: dict[str, None] = {}  # panes whose phase group moved, oldest first
        self._setup: dict[str, SetupPane] = {}
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._last_flush = -1.0
        self._last_second = -1

    _PANE_ACTIONS = frozenset(
        {"toggle_failures", "filter", "toggle_collapse", "clear_filter", "ask_approval"}
    )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The pane keys mean nothing over the event log or the quit question: hide them there.
        if action == "ask_approval" and (self._decide is None or self.state.waves.awaiting() is None):
            return False
        return action not in self._PANE_ACTIONS or self.screen is self.screen_stack[0]

    @property
    def panes(self) -> list[JobPane]:
        """Every job pane, in the order shown (group by group)."""
        return list(self._panes.values())

    @property
    def groups(self) -> list[PaneGroup]:
        """One per account and region, in the order the plan first names them."""
        return list(self._groups)

    def compose(self) -> ComposeResult:
        yield self._pane_styles
        yield RunHeader(self.state.run_id, self._spec_path, self._caller)
        yield Horizontal(id="setup")
        with VerticalScroll(id="panes", can_focus=False):
            yield from self._sections if self._sections else self._groups
        yield Input(placeholder="filter panes by name (enter: keep, escape: clear)", id="filter")
        yield RunSummary()
        yield Footer()

    def on_mount(self) -> None:
        self._header = self.query_one(RunHeader)
        self._scroll = self.query_one("#panes", VerticalScroll)
        # Scrolling brings stale panes on screen: repaint them before the next frame.
        self.watch(self._scroll, "scroll_y", lambda: self._reveal(), init=False)
        self._refresh_header()
        self.set_interval(FLUSH_INTERVAL_S, self._tick)
        self._drive()

    @work(group="run", exit_on_error=False)
    async def _drive(self) -> None:
        try:
            await self._runner(self.renderer)
        except Exception as exc:  # shown by run_tui after the terminal is restored
            self.error = exc
            self.exit(None, return_code=1)

    # Events from the run core, through TuiRenderer.

    @on(TuiRenderer.Started)
    def _run_started(self, message: TuiRenderer.Started) -> None:
        self._started_at = self._clock()
        self._refresh_header()

    @on(TuiRenderer.SetupChanged)
    def _setup_changed(self, message: TuiRenderer.SetupChanged) -> None:
        pane = self._setup.get(message.step)
        if pane is None:
            pane = self._setup[message.step] = SetupPane(message.step)
            strip = self.query_one("#setup")
            strip.add_class("-shown")
            strip.mount(pane)
        pane.set_status(message.status, message.message)

    @on(TuiRenderer.JobsChanged)
    def _jobs_changed(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()  # the first change after a quiet spell shows at once

    @on(TuiRenderer.GateChanged)
    def _gate_changed(self, message: TuiRenderer.GateChanged) -> None:
        self._sections[message.wave.name].changed()
        if isinstance(self.screen, ApprovalScreen) and not self.screen.wave.awaiting_approval:
            self.screen.dismiss(None)  # decided elsewhere: `ecs-fanout approve` or `stop`
        if message.wave.awaiting_approval:
            self.action_ask_approval()

    def action_ask_approval(self) -> None:
        """`a`, or a wave's gate coming to its approval: the prompt (the run's own view only)."""
        wave = self.state.waves.awaiting()
        if self._decide is None or wave is None or isinstance(self.screen, ApprovalScreen):
            return
        decide = self._decide

        def answered(decision: Decision | None) -> None:
            if decision is not None:
                self.run_worker(decide(wave.name, decision), group="approval")

        self.push_screen(ApprovalScreen(wave, self.state.run_id), answered)

    @on(TuiRenderer.Finished)
    def _run_finished(self, message: TuiRenderer.Finished) -> None:
        self.flush()
        self.finished = True
        self._finished_at = self._clock()
        self._refresh_header()
        code = exit_code(self.state)
        self.query_one(RunSummary).show(self.state, self._run_elapsed(), code)
        if isinstance(self.screen, QuitScreen):  # nothing left to detach from
            self.screen.run_ended()
        if self._exit_on_done:
            self.exit(code)

    def flush(self) -> None:
        """Repaint the panes whose job changed since the last flush (and only those)."""
        self._last_flush = time.monotonic()
        dirty = self.renderer.take_dirty()
        viewport = self._scroll.region
        counted: dict[int, PaneGroup] = {}
        for job_id in dirty:
            pane = self._panes.get(job_id)
            if pane is None:
                continue
            group = self._group_of[job_id]
            counted[id(group)] = group
            if pane.sync(self._on_screen(pane, viewport)):
                self._restyle[job_id] = None
        for group in counted.values():
            group.jobs_changed()
        self._sections.changed(self._panes[j].job.wave for j in dirty if j in self._panes)
        # A replay can move 200 panes to a new phase group at once: past the budget, next frame.
        deadline = time.perf_counter() + RESTYLE_BUDGET_S
        shown: dict[int, PaneGroup] = {}
        while self._restyle and time.perf_counter() < deadline:
            job_id = next(iter(self._restyle))
            del self._restyle[job_id]
            self._apply_view(self._panes[job_id])
            group = self._group_of[job_id]
            shown[id(group)] = group
        for group in shown.values():  # failures only: a group's first failure shows the group
            group.update_shown()
        self._sections.update_shown()
        if not dirty:
            return
        self._refresh_header()
        for screen in self.screen_stack:
            if isinstance(screen, EventLogScreen) and screen.job.job_id in dirty:
                screen.refresh_log()
            elif isinstance(screen, QuitScreen):
                screen.show_running(self._unfinished())

    def _tick(self) -> None:
        if not self.is_running:  # shutting down: the widgets are going away
            return
        self.flush()
        viewport = self._scroll.region
        second = int(self._clock())
        if second != self._last_second:  # elapsed times move on once a second
            self._last_second = second
            self._refresh_header()
            self._sections.changed()  # a soak's time left
            for pane in self._panes.values():
                if not pane.job.terminal:
                    pane.tick(self._on_screen(pane, viewport))
        self._reveal(viewport)

    @staticmethod
    def _on_screen(pane: JobPane, viewport: Region) -> bool:
        return pane.display and pane.region.overlaps(viewport)

    def _reveal(self, viewport: Region | None = None) -> None:
        """Repaint the panes that changed while off screen and are on screen now."""
        viewport = viewport or self._scroll.region
        for pane in self._panes.values():
            if pane.stale and self._on_screen(pane, viewport):
                pane.reveal()

    def _run_elapsed(self) -> str:
        starts = [job.started_at for job in self.state.jobs.values() if job.started_at is not None]
        if self._started_at is not None:
            starts.append(self._started_at)
        if not starts:
            return elapsed_text(None)
        return elapsed_text((self._finished_at or self._clock()) - min(starts))

    def _refresh_header(self) -> None:
        notes = []
        if self.failures_only:
            notes.append("failures only")
        if self.name_filter:
            notes.append(f'filter "{self.name_filter}"')
        self._header.show(self.state.counts(), self._run_elapsed(), self.finished, ", ".join(notes))

    # What is shown: failures only, a name filter, finished panes collapsed.

    def _apply_view(self, pane: JobPane) -> None:
        group = phase_group(pane.job.phase)
        shown = (not self.failures_only or group == "failed") and self.name_filter in pane.search_text
        if pane.display != shown:  # setting it, even unchanged, costs a layout pass
            pane.display = shown
        pane.restyle(collapsed=self.collapse_finished and group == "ok")

    def _apply_all(self) -> None:
        self._restyle.clear()
        with self.batch_update():
            for pane in self._panes.values():
                self._apply_view(pane)
            for group in self._groups:
                group.update_shown()
            self._sections.update_shown()
        self._refresh_header()
        focused = self.focused
        if isinstance(focused, JobPane) and not focused.display:  # keep `enter` meaningful
            self._focus_first_pane()

    def action_toggle_failures(self) -> None:
        self.failures_only = not self.failures_only
        self._apply_all()

    def action_toggle_collapse(self) -> None:
        self.collapse_finished = not self.collapse_finished
        self._apply_all()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.value or box.has_class("-shown"):
            box.value = ""  # Input.Changed shows every pane again
            box.remove_class("-shown")
            self._focus_first_pane()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.name_filter = event.value.strip().lower()
        self._apply_all()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.query_one("#filter", Input).remove_class("-shown")  # the header names the filter
        self._focus_first_pane()

    def _focus_first_pane(self) -> None:
        shown = next((pane for pane in self._panes.values() if pane.display), None)
        if shown is not None:
            shown.focus()

    @on(JobPane.OpenLog)
    def _open_log(self, message: JobPane.OpenLog) -> None:
        self.push_screen(EventLogScreen(message.pane.job, message.pane.view, self._clock))

    def action_quit_run(self) -> None:
        if self.finished or self.state.done:
            self.exit(exit_code(self.state))
        elif not self._confirm_quit:
            self.exit(ExitCode.INTERRUPTED)
        elif not isinstance(self.screen, QuitScreen):
            self.push_screen(QuitScreen(self._unfinished(), self.state.run_id), self._quit_answered)

    def _unfinished(self) -> int:
        return sum(1 for job in self.state.jobs.values() if not job.terminal)

    def _quit_answered(self, detach: bool | None) -> None:
        if detach:
            self.exit(ExitCode.INTERRUPTED)
