"""The panes: one per job (listing each of its containers), one per executor set-up step.

A job pane is a single widget that renders its own lines instead of a tree of child widgets:
200 panes stay 200 widgets, and a change repaints one widget without a layout pass (its
height depends only on its number of containers and on being collapsed). The app decides
when to repaint (`sync`, `tick`) and restyle (`restyle`); the pane decides what it looks
like. Its frame and its text colours come from `PaneStyles`, defined in app.tcss.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from textual.binding import Binding
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.style import Style
from textual.widget import Widget

from orchestrator.state import JobState
from tui.view import JobView, elapsed_text, event_lines, phase_group, phase_icon

__all__ = ["Clock", "JobPane", "PaneStyles", "SetupPane"]

Clock = Callable[[], float]
_Part = str | Content | tuple[str, str | Style]

BAR_WIDTH = 20
_MOVE = Binding.Group("Move between panes")  # one footer entry for both directions
EVENT_LINES = 2  # fixed, so that a pane's height never changes with its events


class PaneStyles(Widget):
    """The styles of every job pane, computed once, in this one hidden widget.

    Restyling a widget through its CSS classes costs a style pass (one more per component
    class) and, in Textual 8.2.8, a layout pass of the whole grid: 200 panes changing phase in
    one burst would freeze the screen for seconds. So job panes have fixed CSS classes: their
    text borrows these component styles, and their frame (border, background, title colours
    per phase group and focus) is copied from a `pane--frame-*` component into the pane's
    inline styles, which repaints the pane and nothing else.
    """

    COMPONENT_CLASSES = {
        "pane--frame-queued",
        "pane--frame-active",
        "pane--frame-ok",
        "pane--frame-failed",
        "pane--frame-focus",
        "pane--frame-failed-focus",
        "pane--frame-collapsed",
        "pane--frame-collapsed-focus",
        "pane--container",
        "pane--arrow",
        "pane--image",
        "pane--revision",
        "pane--bar-queued",
        "pane--bar-active",
        "pane--bar-ok",
        "pane--bar-failed",
        "pane--bar-todo",
        "pane--counts",
        "pane--bad",
        "pane--offset",
        "pane--event",
        "pane--event-failed",
        "pane--deployment",
        "pane--hook",
        "pane--name",
        "pane--phase-ok",
        "pane--phase-failed",
    }

    def style(self, component: str) -> Style:
        try:
            return self.get_visual_style(component, partial=True)
        except KeyError:  # not styled yet, or no longer (unmounted while the app shuts down)
            return Style.null()

    def apply_frame(self, widget: Widget, component: str) -> bool:
        """Copy a `pane--frame-*` component's frame into `widget`'s inline styles; False when
        this widget has no styles (yet, or any more)."""
        try:
            frame = self.get_component_styles(component)
        except KeyError:
            return False
        styles = widget.styles
        styles.border_top, styles.border_right = frame.border_top, frame.border_right
        styles.border_bottom, styles.border_left = frame.border_bottom, frame.border_left
        styles.background = frame.background
        styles.border_title_color = frame.border_title_color
        styles.border_title_style = frame.border_title_style
        styles.border_subtitle_color = frame.border_subtitle_color
        styles.border_subtitle_style = frame.border_subtitle_style
        return True


class JobPane(Widget, can_focus=True):
    """One job: its containers and target images, revision, progress, latest events."""

    BINDINGS = [
        Binding("enter", "open_log", "Events"),
        Binding("j,down", "app.focus_next", "Next pane", group=_MOVE),
        Binding("k,up", "app.focus_previous", "Previous pane", group=_MOVE),
    ]

    class OpenLog(Message):
        """The user asked for this job's full event log."""

        def __init__(self, pane: JobPane) -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, job: JobState, clock: Clock, styles: PaneStyles) -> None:
        super().__init__()
        self.job = job
        self.view = JobView()
        self._clock = clock
        self._styles = styles
        self._group = "queued"
        self._collapsed = False
        self._frame = ""
        self.stale = False  # changed while off screen, not repainted yet
        self._shown_elapsed = ""
        self._shown_deployment = ""  # where ECS's service deployment stands, as last painted
        self._subtitle = ""
        lines = job.image_lines()
        self._container_width = max(len(container) for container, _ in lines)
        target = job.target
        names = [target.cluster, target.service, job.name, target.account or "", target.region or ""]
        names += [f"{job.name}/{container}" for container, _ in lines] + [image for _, image in lines]
        self.search_text = "\n".join(names).lower()  # what `/` matches against

    @property
    def group(self) -> str:
        """`queued`, `active`, `ok` or `failed`: the phase group the pane is styled for."""
        return self._group

    @property
    def collapsed(self) -> bool:
        return self._collapsed

    def on_mount(self) -> None:
        self.border_title = Content(self.job.name)
        self._update_subtitle()
        self.restyle(collapsed=False)

    def watch_has_focus(self, has_focus: bool) -> None:
        # Not on_focus/on_blur: those run before Textual sets `has_focus`, so the frame lagged
        # one move behind and stayed on the pane left.
        super().watch_has_focus(has_focus)
        self.restyle(self._collapsed)

    def sync(self, on_screen: bool) -> bool:
        """The job changed: read its new events, and repaint if on screen (else at `reveal`).
        True when its phase group moved and the pane wants `restyle`."""
        self.view.absorb(self.job)
        if on_screen:
            self._paint()
        else:  # a repaint request costs messages and a compositor pass: not for hidden panes
            self.stale = True
        return phase_group(self.job.phase) != self._group

    def reveal(self) -> None:
        """The pane came on screen: repaint it if it changed while hidden."""
        if self.stale:
            self._paint()

    def _paint(self) -> None:
        self.stale = False
        self._update_subtitle()
        self.refresh()

    def restyle(self, collapsed: bool) -> None:
        """Frame the pane for its job's phase group, collapsed or not, focused or not."""
        self._group, self._collapsed = phase_group(self.job.phase), collapsed
        if collapsed:
            name = "collapsed-focus" if self.has_focus else "collapsed"
        elif self.has_focus:
            name = "failed-focus" if self._group == "failed" else "focus"
        else:
            name = self._group
        frame = f"pane--frame-{name}"
        if frame != self._frame and self._styles.apply_frame(self, frame):
            self._frame = frame
            self.refresh()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        # Known without rendering: layout passes over 200 panes must not render them all.
        return 1 if self._collapsed else len(self.job.image_lines()) + 1 + EVENT_LINES

    def tick(self, on_screen: bool) -> None:
        """Time passed: repaint only if the elapsed time shown (or the time a hook has held
        the deployment, the bake time left) would change."""
        if self._elapsed() != self._shown_elapsed:
            if on_screen:
                self._update_subtitle()
            else:
                self.stale = True
        if self._deployment() != self._shown_deployment:
            if on_screen:
                self.refresh()
            else:
                self.stale = True

    def _now(self) -> float:
        """The time the pane shows: the clock's, or the job's end (then its times stand still)."""
        return self.job.ended_at or self._clock()

    def _elapsed(self) -> str:
        job = self.job
        if job.started_at is None:
            return elapsed_text(None)
        return elapsed_text(self._now() - job.started_at)

    def _deployment(self) -> str:
        return self.view.deployment_text(self._now())

    def _update_subtitle(self) -> None:
        self._shown_elapsed = self._elapsed()
        phase = self.job.phase
        subtitle = f"{phase_icon(phase)} {phase.value} · {self._shown_elapsed}"
        if subtitle != self._subtitle:  # setting it repaints the pane
            self._subtitle = subtitle
            self.border_subtitle = Content(subtitle)

    def action_open_log(self) -> None:
        self.post_message(self.OpenLog(self))

    def render(self) -> Content:
        if self._collapsed:
            return self._render_collapsed()
        style = self._styles.style
        parts: list[_Part] = []
        for container, image in self.job.image_lines():
            parts += [
                (container.ljust(self._container_width), style("pane--container")),
                (" → ", style("pane--arrow")),
                (image, style("pane--image")),
                "\n",
            ]
        parts += [*self._progress_parts(), "\n"]
        event_style = style("pane--event-failed" if self._group == "failed" else "pane--event")
        # Following ECS's service deployment: where it stands takes the older event's line.
        self._shown_deployment = deployment = self._deployment()
        lines = event_lines(self.job, EVENT_LINES - bool(deployment))
        lines = [("", "")] * (EVENT_LINES - bool(deployment) - len(lines)) + lines
        for offset, message in lines:
            parts += [(offset.ljust(6), style("pane--offset")), (message, event_style), "\n"]
        if deployment:
            held = self.view.deployment.hook is not None and not self.job.terminal
            parts += [("ECS".ljust(6), style("pane--offset"))]
            parts += [(deployment, style("pane--hook" if held else "pane--deployment")), "\n"]
        return Content.assemble(*parts[:-1])

    def _progress_parts(self) -> list[_Part]:
        style = self._styles.style
        phase = self.job.phase
        done = round(self.view.progress(phase) * BAR_WIDTH)
        parts: list[_Part] = [
            (self.view.revision_text(phase).ljust(22), style("pane--revision")),
            " ",
            ("━" * done, style(f"pane--bar-{self._group}")),
            ("━" * (BAR_WIDTH - done), style("pane--bar-todo")),
            " ",
            (self.view.counts_text(), style("pane--counts")),
        ]
        if self.view.failed_tasks:
            parts.append((f" · {self.view.failed_tasks} failed", style("pane--bad")))
        return parts

    def _render_collapsed(self) -> Content:
        style = self._styles.style
        phase = self.job.phase
        return Content.assemble(
            (f"{phase_icon(phase)} ", style(f"pane--phase-{self._group}")),
            (self.job.name, style("pane--name")),
            (f"  {phase.value} · {self.view.revision_text(phase)} · {self._shown_elapsed}", ""),
        )


_STATUS_CLASS = re.compile(r"[^a-z0-9_-]+")


class SetupPane(Widget):
    """One set-up step of the executor: its name, status and latest message."""

    COMPONENT_CLASSES = {"setup--step", "setup--status"}

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step
        self.status = ""
        self.message = ""

    def set_status(self, status: str, message: str) -> None:
        """`status` (`running`, `done`, `failed`, ...) also names a CSS class: `-done`."""
        self.remove_class(*self._status_class(self.status))
        self.status, self.message = status, message
        self.add_class(*self._status_class(status))
        self.refresh()

    @staticmethod
    def _status_class(status: str) -> list[str]:
        name = _STATUS_CLASS.sub("-", status.lower()).strip("-")
        return [f"-{name}"] if name else []

    def render(self) -> Content:
        style = self.get_visual_style
        return Content.assemble(
            (self.step, style("setup--step")), " ", (self.status, style("setup--status")), " ", self.message
        )
