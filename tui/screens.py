"""The screens over the panes: one job's full event log, the quit question, and a wave's approval.

The log reads `JobState.recent` (the last 50 events the run core kept) and is refreshed by
the app when that job changes, so it follows the job live; its title says where ECS's service
deployment stands (a hook holding it: for how long, counted every second). Quitting while jobs run asks
first: detaching leaves the rollouts ECS already started to finish without us.
"""

from __future__ import annotations

import time

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Static

from orchestrator.approval import Decision
from orchestrator.state import JobState
from orchestrator.wave_state import WaveState
from tui.pane import Clock
from tui.view import JobView, elapsed_text, phase_icon

__all__ = ["ApprovalScreen", "EventLogScreen", "QuitScreen"]


class EventLogScreen(Screen[None]):
    """Every event kept for one job, newest last, with the ECS service events they carried."""

    BINDINGS = [Binding("escape,backspace", "dismiss", "Back")]

    def __init__(self, job: JobState, view: JobView, clock: Clock = time.time) -> None:
        super().__init__()
        self.job = job
        self._view = view
        self._clock = clock
        self._title = ""

    def compose(self) -> ComposeResult:
        yield Static(id="log-title")
        yield DataTable(id="log", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#log", DataTable)
        table.add_columns("at", "seq", "phase", "tasks", "message")
        self.refresh_log()
        table.focus()
        self.set_interval(1.0, self._refresh_title)  # a hook's holding time, the bake time left

    def _refresh_title(self) -> None:
        job = self.job
        revision = self._view.revision_text(job.phase)
        title = f"{job.name}  {phase_icon(job.phase)} {job.phase.value}  {revision}\n{job.message}"
        if deployment := self._view.deployment_text(job.ended_at or self._clock()):
            title += f"\nECS: {deployment}"
        if title != self._title:
            self._title = title
            self.query_one("#log-title", Static).update(Content(title))

    def refresh_log(self) -> None:
        """Re-read the job: at most 50 rows, cheap enough to rebuild on each change."""
        job = self.job
        self._refresh_title()
        table = self.query_one("#log", DataTable)
        table.clear()
        seen_ecs: set[str] = set()
        for index, event in enumerate(job.recent):
            at = "" if job.started_at is None else "+" + elapsed_text(event.ts - job.started_at)
            details = event.details
            tasks = "" if details.desired is None else f"{details.running or 0}/{details.desired}"
            if details.failed_tasks:
                tasks += f" ({details.failed_tasks} failed)"
            table.add_row(at, str(event.seq), event.phase.value, tasks, event.message, key=str(index))
            for line in details.service_events:
                if line not in seen_ecs:  # every poll repeats ECS's latest events
                    seen_ecs.add(line)
                    table.add_row("", "", "ecs", "", line)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)


class QuitScreen(ModalScreen[bool]):
    """`q` while jobs run: detach (True) or keep waiting (False). Dismissed by the app when the
    run ends first."""

    BINDINGS = [
        Binding("d", "choose(True)", "Detach"),
        Binding("w,escape", "choose(False)", "Keep waiting"),
    ]

    def __init__(self, running: int, run_id: str) -> None:
        super().__init__()
        self._jobs_running = running
        self._run_id = run_id

    @staticmethod
    def _title(running: int) -> Content:
        return Content(f"{running} job(s) are still running.")

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog"):
            yield Static(self._title(self._jobs_running), id="quit-title")
            yield Static(
                Content(
                    "Detach: stop watching and leave. Rollouts ECS has started go on (with the "
                    f"lambda executor the workers too: `ecs-fanout attach {self._run_id}` follows "
                    "them again).\nKeep waiting: back to the run."
                ),
                id="quit-text",
            )
            with Horizontal(id="quit-buttons"):
                yield Button("Detach (d)", id="detach", variant="error")
                yield Button("Keep waiting (w)", id="wait", variant="primary")

    @on(Button.Pressed, "#detach")
    def _on_detach_pressed(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#wait")
    def _on_wait_pressed(self) -> None:
        self.dismiss(False)

    def action_choose(self, detach: bool) -> None:
        self.dismiss(detach)

    def show_running(self, running: int) -> None:
        """Jobs ended while the question was up: say how many still run."""
        if running != self._jobs_running:
            self._jobs_running = running
            for title in self.query("#quit-title").results(Static):  # none yet before compose
                title.update(self._title(running))

    def run_ended(self) -> None:
        """Every job ended while the question was up: nothing left to detach from, so the
        question goes and the end-of-run summary shows, as after any run."""
        self.dismiss(False)


class ApprovalScreen(ModalScreen["Decision | None"]):
    """A wave's gate waits for a person: approve (the next wave starts) or stop the run; `later`
    leaves the question (the wave's header says it waits; `a` asks again). Dismissed by the app
    when the decision came from elsewhere (`ecs-fanout approve` or `stop`)."""

    BINDINGS = [
        Binding("a", "choose('approve')", "Approve"),
        Binding("s", "choose('stop')", "Stop the run"),
        Binding("escape,l", "choose(None)", "Later"),
    ]

    def __init__(self, wave: WaveState, run_id: str) -> None:
        super().__init__()
        self.wave = wave
        self._run_id = run_id

    def compose(self) -> ComposeResult:
        with Vertical(id="approval-dialog"):
            yield Static(Content(f"Wave {self.wave.name} passed its checks: approve?"), id="approval-title")
            yield Static(
                Content(
                    "Approve: the next wave starts. Stop the run: no further wave starts (with "
                    "--all-or-nothing, every service changed goes back).\nLater: decide here with `a`, "
                    f"or from anywhere with `ecs-fanout approve {self._run_id}` or `ecs-fanout stop "
                    f"{self._run_id}`."
                ),
                id="approval-text",
            )
            with Horizontal(id="approval-buttons"):
                yield Button("Approve (a)", id="approve", variant="success")
                yield Button("Stop the run (s)", id="stop", variant="error")
                yield Button("Later (escape)", id="later")

    @on(Button.Pressed, "#approve")
    def _on_approve_pressed(self) -> None:
        self.dismiss("approve")

    @on(Button.Pressed, "#stop")
    def _on_stop_pressed(self) -> None:
        self.dismiss("stop")

    @on(Button.Pressed, "#later")
    def _on_later_pressed(self) -> None:
        self.dismiss(None)

    def action_choose(self, decision: Decision | None) -> None:
        self.dismiss(decision)
