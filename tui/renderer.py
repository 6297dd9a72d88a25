"""`TuiRenderer`: the run core's `Renderer`, speaking Textual messages to the app.

The run core calls a renderer synchronously for every event, thousands a second in a burst.
Posting a message per event would make the app's queue the bottleneck and re-render a pane
per event, so job changes are coalesced here: `changed` only marks the job dirty and posts
one `JobsChanged` wake-up per batch; the app drains the dirty set (`take_dirty`) when it
repaints, at most 20 times a second. Everything runs on the app's event loop (the run core
is a Textual worker on the same asyncio loop), so no locking is needed.
"""

from __future__ import annotations

from typing import Protocol

from textual.message import Message

from orchestrator.gate_events import GateEvent
from orchestrator.state import JobState, RunState
from orchestrator.wave_state import WaveState
from worker.contract import WorkerEvent

__all__ = ["MessageTarget", "TuiRenderer"]


class MessageTarget(Protocol):
    """Where the messages go: the app (any Textual message pump)."""

    def post_message(self, message: Message) -> bool: ...


class TuiRenderer:
    """Satisfies `orchestrator.renderer.Renderer`; posts to `target` (the app)."""

    class Started(Message):
        """The run began: its state now changes as events come in."""

        def __init__(self, state: RunState) -> None:
            super().__init__()
            self.state = state

    class SetupChanged(Message):
        """An executor set-up step (`lambda`, `queue`, `mapping`, ...) moved on."""

        def __init__(self, step: str, status: str, message: str) -> None:
            super().__init__()
            self.step = step
            self.status = status
            self.message = message

    class JobsChanged(Message):
        """Some jobs changed since the last `take_dirty`: a wake-up, not one per event."""

    class GateChanged(Message):
        """A wave started, its gate moved on, or it passed or stopped the run (rare: one each)."""

        def __init__(self, wave: WaveState, event: GateEvent) -> None:
            super().__init__()
            self.wave = wave
            self.event = event

    class Finished(Message):
        """Every job reached a terminal phase."""

        def __init__(self, state: RunState) -> None:
            super().__init__()
            self.state = state

    def __init__(self, target: MessageTarget) -> None:
        self._target = target
        self._dirty: dict[str, None] = {}  # an ordered set of job ids
        self._wake_posted = False

    def started(self, state: RunState) -> None:
        self._target.post_message(self.Started(state))

    def setup_changed(self, step: str, status: str, message: str) -> None:
        self._target.post_message(self.SetupChanged(step, status, message))

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        self._dirty[job.job_id] = None
        if not self._wake_posted:
            self._wake_posted = True
            self._target.post_message(self.JobsChanged())

    def gate_changed(self, wave: WaveState, event: GateEvent) -> None:
        self._target.post_message(self.GateChanged(wave, event))

    def finished(self, state: RunState) -> None:
        self._target.post_message(self.Finished(state))

    def take_dirty(self) -> list[str]:
        """The ids of the jobs changed since the last call, in order of first change."""
        dirty, self._dirty = list(self._dirty), {}
        self._wake_posted = False
        return dirty
