"""ecs-fanout's live view: a Textual app that shows every rollout of a run as it happens.

Design notes:

- Same input as `--json`. The app never calls AWS: it shows a `RunState` that the run core
  (or `attach`'s replay of a run's Redis stream) folds events into, and hears about changes
  through `TuiRenderer`, an `orchestrator.renderer.Renderer`. The run core itself runs inside the
  app as a Textual worker (`@work`) on the app's asyncio loop; anyio runs on asyncio.
- Fluid at 200 panes and thousands of events a second: the renderer only marks jobs dirty
  and posts one wake-up message per batch; the app repaints just the dirty panes, at once
  after a quiet spell and then at most every 1/20 s. A pane is one widget that renders its
  own lines, with a fixed height, so a change costs one repaint and no layout pass. Elapsed
  times tick once a second, for running panes only.
- One pane per job (a service), listing each of its containers with its target image: the
  containers of one service share one revision and one deployment, so one state. The pane
  remembers what the latest event may not carry (`view.JobView`): the revision change
  `api:1 → api:2` and the last task counts.
- Keys: `q` quits (asks first while jobs run: detach or keep waiting), `f` failures only,
  `/` filter by name, `c` collapse finished panes, `j`/`k` (down/up) move between panes,
  `enter` a job's full event log.
- Deterministic when asked: an injectable clock drives every elapsed time, so snapshot tests
  of a synthetic run are stable.
- Styles live in one file, `app.tcss`; widgets only set CSS classes and component classes.

- Grouped by account and region: a run over several shows its panes under a header per
  (account, region) with that group's counts (`group.PaneGroup`); a run in one shows none. The
  header names the caller when the CLI knows it.
- A run with waves shows a section per wave (`wave_section.WaveSection`) over its groups, its
  header the wave's counts and what its gate does now; when a gate waits for approval the run's
  own view asks (`a`: approve or stop), `attach`'s only shows the wait.

Modules: `app` (the App), `run` (`run_tui`), `renderer`, `layout` (which pane goes where), `pane` (job
and set-up panes), `group` (the panes of one account and region), `wave_section` (a wave and
its gate), `header` (header and summary), `screens` (event log, quit question, approval),
`view` (pure pane state), `held_logs`.
Nothing outside this package imports it except the CLI's session and `attach`, lazily, so
that `--json` and `--help` never pay for importing Textual.
"""

from __future__ import annotations

from tui.app import FanoutApp, Runner
from tui.renderer import TuiRenderer
from tui.run import run_tui

__all__ = ["FanoutApp", "Runner", "TuiRenderer", "run_tui"]
