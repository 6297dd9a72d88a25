"""The `Renderer` protocol: what the run core tells whoever shows a run.

Its own module, with no dependencies but the run state, so that the renderers (`render`'s
`--json` and `--plain`, the TUI's `TuiRenderer`) and the code that drives them (`run`,
`attach`, `session`) all depend on it, and not on each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.gate_events import GateEvent
    from orchestrator.state import JobState, RunState
    from orchestrator.wave_state import WaveState
    from worker.contract import WorkerEvent

__all__ = ["Renderer"]


class Renderer(Protocol):
    def started(self, state: RunState) -> None: ...
    def setup_changed(self, step: str, status: str, message: str) -> None:
        """A set-up step of the executor (e.g. `lambda`, `queue`, `mapping`) moved on."""

    def changed(self, job: JobState, event: WorkerEvent | None) -> None: ...
    def gate_changed(self, wave: WaveState, event: GateEvent) -> None:
        """A wave started, its gate moved on, or it passed or stopped the run."""

    def finished(self, state: RunState) -> None: ...
