"""Judging a run's silent jobs once its orchestrator is gone: `attach`'s side of liveness.

While a run's orchestrator lives (its key in Redis, `orchestrator.liveness`) it alone judges
silence, and `attach` only follows. Once the key is gone (the orchestrator ended, was killed,
or lost Redis for three refreshes), and stays gone longer than a refresh (`GONE_FOR_S`: a Redis
that restarted empty has it back by then), the `Judge` applies the run core's own rule to what it
folds (`RunState.silent_jobs` and `mark_lost`, with the run's heartbeat and queued window
from its meta): a job that said nothing for `heartbeat` is `lost`. Jobs that never said
anything are judged by where the workers ran:

- in the orchestrator's process (local executor): they died with it, so a job with no event
  never started and never will: `lost` at once, "never started: the orchestrator stopped
  before sending it";
- elsewhere (Lambda): a job may still wait in its queue; it gets the queued window from the
  moment the orchestrator was found gone, then is `lost` as never started.

Silence is measured on Redis's clock (the stream id of each event, `stream_time`), so a run
attached days after its orchestrator died is judged at once instead of after a heartbeat of
replay. A worker's own terminal verdict still beats a `lost` (`RunState.apply`). A run that
saved no meta (older than liveness, or run by a harness) is judged with its jobs' heartbeat,
and a job with no event gets a heartbeat too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from orchestrator.feed import stream_id_key
from orchestrator.gate_events import GateEvent
from orchestrator.liveness import REFRESH_S, RunMeta
from orchestrator.plan import PlannedJob
from orchestrator.state import JobState, RunState
from orchestrator.wave_state import WaveState
from worker.contract import Phase

__all__ = ["GONE_FOR_S", "NEVER_STARTED", "Judge", "local_time", "stream_time"]

log = logging.getLogger(__name__)

NEVER_STARTED = "never started: the orchestrator stopped before sending it"
GONE_FOR_S = REFRESH_S + 0.5  # a key missing this long is gone: not a Redis that came back empty
ORCHESTRATOR_GONE = "nobody started the waves after it"


def stream_time(stream_id: str) -> float:
    """When Redis received an event (seconds), from its stream id."""
    return stream_id_key(stream_id)[0] / 1000


class Judge:
    """The run core's silence rule, applied by a follower once the orchestrator is gone."""

    def __init__(self, state: RunState, planned: Sequence[PlannedJob], meta: RunMeta | None) -> None:
        self.state = state
        self.meta = meta
        self.heartbeat_s = (
            meta.heartbeat_s
            if meta is not None
            else max((p.job.options.heartbeat_s for p in planned), default=60.0)
        )
        self.queued_window_s = None if meta is None else meta.queued_window_s
        self.orphaned_at: float | None = None
        self._missing_since: float | None = None

    @property
    def judging(self) -> bool:
        return self.orphaned_at is not None

    def orchestrator_seen(
        self,
        alive: bool,
        now: float,
        changed: Callable[[JobState], None],
        gate_changed: Callable[[WaveState, GateEvent], None] | None = None,
    ) -> None:
        """What the liveness key said. Missing for `GONE_FOR_S` (a Redis that restarted empty has
        it back within a refresh), the orchestrator is gone: judge the jobs that never spoke, and
        the waves nobody will start (unless one waits for a person: `approve` takes the run over)."""
        if alive:
            self.orphaned_at = self._missing_since = None  # it is there: it judges
            return
        if self._missing_since is None:
            self._missing_since = now
        if self.orphaned_at is not None or now - self._missing_since < GONE_FOR_S:
            return
        self.orphaned_at = now
        waves = self.state.waves
        unstarted = [
            j
            for j in self.state.jobs.values()
            if not j.terminal and j.last_event_at is None and waves.started(j.wave)
        ]
        if not self.state.done:
            log.warning(
                "run %s: its orchestrator%s is gone (%s); judging its silent jobs here (heartbeat %.0fs)",
                self.state.run_id,
                f" ({self.meta.orchestrator})" if self.meta and self.meta.orchestrator else "",
                self._how_it_ended(),
                self.heartbeat_s,
            )
        for job in unstarted:
            if self.meta is not None and self.meta.workers == "in-process":
                lost = self.state.mark_lost(job.job_id, now)
                lost.message = NEVER_STARTED
                changed(lost)
            else:  # a remote worker may still take it: it gets its window from now
                self.state.mark_started(job.job_id, now)
        self._end_waves(now, changed, gate_changed)

    def _end_waves(
        self,
        now: float,
        changed: Callable[[JobState], None],
        gate_changed: Callable[[WaveState, GateEvent], None] | None,
    ) -> None:
        """Nobody will start the waves the gone orchestrator had not decided: the first stops the
        run here, the later ones and their jobs are `not_started`. Not while a wave waits for a
        person: `ecs-fanout approve` (or `stop`) takes the run over and decides them."""
        waves = self.state.waves
        undecided = next((w for w in waves.waves.values() if not w.decided), None)
        if undecided is None or waves.awaiting() is not None:
            if undecided is not None:
                log.warning(
                    "run %s waits for approval of wave %s and its orchestrator is gone: "
                    "`ecs-fanout approve %s` (or `stop`) takes the run over",
                    self.state.run_id,
                    undecided.name,
                    self.state.run_id,
                )
            return
        event = GateEvent(
            run_id=self.state.run_id,
            wave=undecided.name,
            gate="wave",
            state="stopped",
            message=f"its orchestrator stopped ({ORCHESTRATOR_GONE})",
            ts=now,
        )
        wave = self.state.apply_gate(event)
        if wave is not None and gate_changed is not None:
            gate_changed(wave, event)
        wave_name = undecided.name
        for job in self.state.jobs.values():
            if not job.terminal and not waves.started(job.wave):
                changed(
                    self.state.mark_not_started(
                        job.job_id, now, f"wave {wave_name} stopped the run: {event.message}"
                    )
                )

    def _how_it_ended(self) -> str:
        if self.meta is None:
            return "the run saved no liveness"
        if self.meta.ended == "finished":
            return "it ended"
        if self.meta.ended is not None:
            return "it was stopped with jobs unfinished"
        return "it stopped refreshing its liveness: killed, or cut off"

    def next_deadline(self) -> float | None:
        if not self.judging:
            return None
        return self.state.next_silence_deadline(self.heartbeat_s, self.queued_window_s)

    def judge(self, now: float, changed: Callable[[JobState], None]) -> None:
        """Mark `lost` every job silent past its window (the run core's rule)."""
        if not self.judging:
            return
        for job in self.state.silent_jobs(now, self.heartbeat_s, self.queued_window_s):
            queued = job.phase is Phase.QUEUED and job.last_seq < 0
            lost = self.state.mark_lost(job.job_id, now)
            if queued:
                lost.message = (
                    f"never started: no worker took it within {now - (self.orphaned_at or now):.0f}s "
                    "of the orchestrator stopping"
                )
            else:
                lost.message = (
                    f"{lost.message}; its orchestrator had stopped "
                    f"(`ecs-fanout status {self.state.run_id}` shows what ECS runs)"
                )
            changed(lost)


def local_time(redis_time: tuple[int, int]) -> Callable[[str], float]:
    """Stream ids to this machine's clock, given Redis's TIME now: silence is compared with
    `time.time()`, and the two clocks may differ."""
    skew = redis_time[0] + redis_time[1] / 1e6 - time.time()
    return lambda stream_id: stream_time(stream_id) - skew
