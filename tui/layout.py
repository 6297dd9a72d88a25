"""Where each job's pane goes: grouped by account and region, and, in a run with waves, by wave.

Built once from the run's state when the app starts: a pane per job, a `PaneGroup` per account
and region (its header shown only when the run spans several), and in a run with waves a
`WaveSection` per wave holding that wave's groups, in the spec's order.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.render import scopes
from orchestrator.state import JobState, RunState
from tui.group import PaneGroup, pane_groups
from tui.pane import Clock, JobPane, PaneStyles
from tui.wave_section import WaveSection, WaveSections

__all__ = ["PaneLayout"]


class PaneLayout:
    def __init__(self, state: RunState, clock: Clock, styles: PaneStyles, can_decide: bool) -> None:
        """`can_decide`: the view takes approvals (the wave headers say how)."""
        self._clock = clock
        self._styles = styles
        self.groups: list[PaneGroup] = []
        self.panes: dict[str, JobPane] = {}  # in the order shown: group by group
        self.group_of: dict[str, PaneGroup] = {}
        self.sections = WaveSections()  # a run with waves: one per wave, in order
        single = len(scopes(state)) == 1
        for wave in state.waves.waves.values():
            jobs = state.wave_jobs(wave)
            self.sections.add(WaveSection(wave, jobs, self._groups(jobs, single), clock, can_decide))
        if not state.waves:
            self._groups(state.jobs.values(), single)

    def _groups(self, jobs: Iterable[JobState], single: bool) -> list[PaneGroup]:
        groups = pane_groups(jobs, lambda job: JobPane(job, self._clock, self._styles), single)
        for group in groups:
            for pane in group.panes:
                self.panes[pane.job.job_id] = pane
                self.group_of[pane.job.job_id] = group
        self.groups += groups
        return groups
