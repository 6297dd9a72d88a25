"""Folding gate events into the state of a run's waves. Pure: no I/O, no clock of its own.

Each wave goes `pending` -> `deploying` (its jobs were started) -> `gating` (its jobs ended,
its gate's steps run) -> `passed`, or `stopped` (its gate stopped the run); waves after a
stopped one are `not_started`. A `WaveBoard` holds every wave of a run, in order, with the
latest word of each gate step, and says what the run core, `attach` and the renderers ask:
whether a wave started, which one waits for a person, whether every wave is decided.
A run without waves has an empty board, which is decided from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from orchestrator.gate_events import GateDetails, GateEvent, GateName, GateStatus
from orchestrator.waves import Gate, WavePlan

__all__ = ["GateView", "WaveBoard", "WaveState", "WaveStatus"]

WaveStatus = Literal["pending", "deploying", "gating", "passed", "stopped", "not_started"]
DECIDED: frozenset[WaveStatus] = frozenset({"passed", "stopped", "not_started"})
_WAVE_STATUS: dict[str, WaveStatus] = {"started": "deploying", "passed": "passed", "stopped": "stopped"}


@dataclass
class GateView:
    """The latest word of one gate step."""

    state: GateStatus
    message: str
    until: float | None = None
    details: GateDetails = field(default_factory=GateDetails)


@dataclass
class WaveState:
    name: str
    job_ids: tuple[str, ...]
    gate: Gate
    status: WaveStatus = "pending"
    message: str = ""
    steps: dict[GateName, GateView] = field(default_factory=dict)  # in the order they spoke
    current: GateName | None = None  # the step that spoke last

    @property
    def decided(self) -> bool:
        return self.status in DECIDED

    @property
    def started(self) -> bool:
        return self.status != "pending" and self.status != "not_started"

    @property
    def awaiting_approval(self) -> bool:
        step = self.steps.get("approve")
        return self.status == "gating" and step is not None and step.state == "waiting"

    @property
    def now(self) -> GateView | None:
        """What the wave's gate does now: its latest step's word."""
        return None if self.current is None else self.steps[self.current]


@dataclass
class WaveBoard:
    waves: dict[str, WaveState] = field(default_factory=dict)
    stopped_by: str | None = None  # the wave whose gate stopped the run

    @classmethod
    def from_plan(cls, plan: WavePlan | None) -> WaveBoard:
        if plan is None:
            return cls()
        return cls({w.name: WaveState(w.name, w.job_ids, w.gate) for w in plan.waves})

    def __bool__(self) -> bool:
        return bool(self.waves)

    @property
    def finished(self) -> bool:
        """Every wave decided: passed, stopped the run, or never started."""
        return all(wave.decided for wave in self.waves.values())

    def started(self, name: str | None) -> bool:
        """Whether the wave `name` was started (None, a run without waves: always)."""
        return name is None or name not in self.waves or self.waves[name].started

    def awaiting(self) -> WaveState | None:
        """The wave whose gate waits for a person's approval, if one does."""
        return next((w for w in self.waves.values() if w.awaiting_approval), None)

    def apply(self, event: GateEvent) -> WaveState | None:
        """Fold one gate event in; the wave it changed, or None (not a wave of this run)."""
        wave = self.waves.get(event.wave)
        if wave is None:
            return None
        wave.message = event.message
        if event.gate == "wave":
            wave.status = _WAVE_STATUS.get(event.state, wave.status)
            if event.state == "stopped":
                self._stopped(wave.name)
            return wave
        wave.status = "gating"
        wave.current = event.gate
        wave.steps[event.gate] = GateView(event.state, event.message, event.until, event.details)
        return wave

    def _stopped(self, name: str) -> None:
        self.stopped_by = self.stopped_by or name
        for wave in self.waves.values():
            if wave.status == "pending":
                wave.status = "not_started"
                wave.message = f"wave {name} stopped the run"
