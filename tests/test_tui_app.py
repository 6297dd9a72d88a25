"""The live view driving real runs (moto + rollout simulator + Redis, local executor), piloted."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from collections.abc import Sequence

import anyio
import pytest
from textual.widgets import DataTable, Footer, Static

from orchestrator.exits import ExitCode
from orchestrator.gate_events import GateEvent
from orchestrator.options import choose_output
from orchestrator.plan import PlannedJob, plan_jobs
from orchestrator.render import JsonRenderer
from orchestrator.renderer import Renderer
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.state import JobState, RunState
from orchestrator.wave_state import WaveState
from tests.cli import CliInTerminal
from tests.fleet import Fleet, Fleets, run_planned
from tui import FanoutApp
from tui.header import RunHeader, RunSummary
from tui.pane import JobPane
from tui.screens import EventLogScreen, QuitScreen
from worker.contract import Phase, WorkerEvent

RUN_ID = "tui-run"
SIZE = (160, 60)


class FanOut:
    """Shows one run through several renderers: the TUI and `--json` see the same calls."""

    def __init__(self, *renderers: Renderer) -> None:
        self._renderers = renderers

    def started(self, state: RunState) -> None:
        for renderer in self._renderers:
            renderer.started(state)

    def setup_changed(self, step: str, status: str, message: str) -> None:
        for renderer in self._renderers:
            renderer.setup_changed(step, status, message)

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        for renderer in self._renderers:
            renderer.changed(job, event)

    def gate_changed(self, wave: WaveState, event: GateEvent) -> None:
        for renderer in self._renderers:
            renderer.gate_changed(wave, event)

    def finished(self, state: RunState) -> None:
        for renderer in self._renderers:
            renderer.finished(state)


def live_app(
    fleet: Fleet,
    planned: Sequence[PlannedJob],
    redis_url: str,
    json_out: io.StringIO,
    *,
    max_parallel: int = 10,
) -> FanoutApp:
    """The app running the real run core, with a JsonRenderer watching the same run."""
    state = RunState.from_plan(RUN_ID, planned)
    spec_path = str(fleet.path)

    async def runner(renderer: Renderer) -> None:
        both = FanOut(renderer, JsonRenderer(json_out, spec_path=spec_path))
        await run_planned(
            state, planned, redis_url, both, heartbeat_s=fleet.spec.heartbeat, max_parallel=max_parallel
        )

    return FanoutApp(state, runner, spec_path=spec_path)


def subtitle(pane: JobPane) -> str:
    title = pane.border_subtitle
    return "" if title is None else str(title)


def focus_framed(app: FanoutApp) -> list[int]:
    """Which panes (by position) are drawn with the focus frame: app.tcss's double border."""
    return [i for i, pane in enumerate(app.panes) if pane.styles.border_top[0] == "double"]


def footer_text(app: FanoutApp) -> str:
    """The key list at the bottom of the screen, as shown: keys and their descriptions."""
    items = app.screen.query_one(Footer).query("FooterKey, FooterLabel")
    return " ".join(" ".join(str(item.render()).split()) for item in items)


def quit_question(app: FanoutApp) -> str:
    """The quit dialog's first line, or "" when no dialog is up."""
    if not isinstance(app.screen, QuitScreen):
        return ""
    return str(app.screen.query_one("#quit-title", Static).content)


async def test_live_view_follows_a_real_run(aws: AwsEmulator, fleet: Fleets, redis_url: str) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=1.5, bad_images=("*:bad*",)))
    six = fleet(6, bad=2, proxied=(0,))
    planned = plan_jobs(six.spec, RUN_ID)
    json_out = io.StringIO()
    app = live_app(six, planned, redis_url, json_out)
    shown_phases: dict[str, list[str]] = {}

    async with app.run_test(size=SIZE) as pilot:
        panes = {pane.job.target.service: pane for pane in app.panes}
        # Every cluster/service/container is on screen, with its target image.
        assert len(panes) == len(planned)
        for planned_job in planned:
            pane = panes[planned_job.target.service]
            assert str(pane.border_title) == f"{planned_job.target.cluster}/{planned_job.target.service}"
            text = pane.render().plain
            for change in planned_job.job.changes:
                assert change.container in text and change.image in text

        def sample() -> None:
            for service, pane in panes.items():
                phase = subtitle(pane).split()[1]
                if not shown_phases.get(service) or shown_phases[service][-1] != phase:
                    shown_phases.setdefault(service, []).append(phase)

        with anyio.fail_after(60):
            while not app.finished:
                sample()
                await pilot.pause(0.02)
        await pilot.pause()
        sample()

        # Phases changed on screen, in order, up to the final one.
        for service, phases in shown_phases.items():
            assert phases[0] in {"queued", "started", "registered", "updated"}, phases
            assert phases[-1] == ("rolled_back" if service == "s2" else "succeeded"), (service, phases)
        assert any("in_progress" in phases for phases in shown_phases.values())
        # The rolled-back pane stands out; the others do not.
        assert panes["s2"].group == "failed"
        assert panes["s2"].styles.border_top[0] == "heavy"  # app.tcss: pane--frame-failed
        assert all(pane.group == "ok" for service, pane in panes.items() if service != "s2")
        assert "s1:1 → s1:2" in panes["s1"].render().plain  # the revision change
        assert "s2:1 → s2:2" in panes["s2"].render().plain
        # The summary on screen matches what --json printed for the same run.
        summary = json.loads(json_out.getvalue().splitlines()[-1])
        assert summary["type"] == "summary"
        assert summary["results"] == [r.model_dump(mode="json") for r in app.state.results()]
        assert app.query_one(RunSummary).has_class("-finished")
        assert "exit code 1" in app.query_one(RunSummary).render().plain

        # f: failures only, and back.
        await pilot.press("f")
        await pilot.pause()
        assert [s for s, pane in panes.items() if pane.display] == ["s2"]
        # enter: the failed job's full event log.
        assert app.focused is panes["s2"]
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EventLogScreen)
        job = panes["s2"].job
        table = app.screen.query_one("#log", DataTable)
        logged = [table.get_row_at(i)[2] for i in range(table.row_count)]
        assert [p for p in logged if p != "ecs"] == [e.phase.value for e in job.recent]
        assert logged[-1] == "ecs" or logged[-1] == "rolled_back"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, EventLogScreen)
        await pilot.press("f")
        await pilot.pause()
        assert all(pane.display for pane in panes.values())

        # c: finished successes collapse to one line; the failure stays open.
        await pilot.press("c")
        await pilot.pause()
        assert panes["s1"].collapsed and not panes["s2"].collapsed
        assert panes["s1"].size.height == 1

        # q after the end: no question, the run's exit code.
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == 1


async def test_filter_and_quit_question_while_running(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    four = fleet(4, proxied=(0,))
    app = live_app(four, plan_jobs(four.spec, RUN_ID), redis_url, io.StringIO())

    async with app.run_test(size=SIZE) as pilot:
        panes = {pane.job.target.service: pane for pane in app.panes}
        with anyio.fail_after(30):
            while not all(pane.job.phase is Phase.IN_PROGRESS for pane in panes.values()):
                await pilot.pause(0.05)

        # /: filter panes by name; enter keeps the filter, escape clears it.
        await pilot.press("slash", "s", "3")
        await pilot.pause()
        assert [s for s, pane in panes.items() if pane.display] == ["s3"]
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is panes["s3"]
        assert [s for s, pane in panes.items() if pane.display] == ["s3"]
        assert 'filter "s3"' in app.query_one(RunHeader).render().plain
        await pilot.press("escape")
        await pilot.pause()
        assert all(pane.display for pane in panes.values())

        # q while jobs run: a question; keep waiting, then detach.
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("w")
        await pilot.pause()
        assert not isinstance(app.screen, QuitScreen) and app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
    assert app.return_value == ExitCode.INTERRUPTED
    assert not app.state.done


async def test_focus_frame_moves_with_j_and_k_and_enter_opens_that_pane(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    """One pane, and only one, wears the focus frame; it moves on the keypress itself, and
    `enter` opens the log of the pane that wears it."""
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    four = fleet(4)
    app = live_app(four, plan_jobs(four.spec, RUN_ID), redis_url, io.StringIO())

    async with app.run_test(size=SIZE) as pilot:
        with anyio.fail_after(30):  # phase changes restyle the panes: the frame must survive them
            while not all(pane.job.phase is Phase.IN_PROGRESS for pane in app.panes):
                await pilot.pause(0.05)
        assert focus_framed(app) == [0]
        for key, framed in (("j", 1), ("j", 2), ("j", 3), ("k", 2), ("down", 3), ("up", 2)):
            await pilot.press(key)
            assert focus_framed(app) == [framed], key
            assert app.focused is app.panes[framed]

        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EventLogScreen)
        assert app.screen.job is app.panes[2].job
        title = str(app.screen.query_one("#log-title", Static).content)
        assert title.startswith(app.panes[2].job.name)

        await pilot.press("escape")  # back: the frame is still on that pane, and only there
        await pilot.pause()
        assert focus_framed(app) == [2]


async def test_footer_lists_the_keys_that_move_between_panes(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    two = fleet(2)
    app = live_app(two, plan_jobs(two.spec, RUN_ID), redis_url, io.StringIO())

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        shown = footer_text(app)
        assert "j k Move between panes" in shown, shown
        assert "⏎ Events" in shown and "q Quit" in shown, shown


async def test_run_ending_under_the_quit_question_dismisses_it(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    """`q` while jobs run asks; the question follows the jobs as they end, and goes when the
    run ends: the summary stays until `q`, which then quits with the run's exit code."""
    aws.set_scenario(RolloutScenario(rollout_s=2.0))
    two = fleet(2)
    app = live_app(two, plan_jobs(two.spec, RUN_ID), redis_url, io.StringIO(), max_parallel=1)

    async with app.run_test(size=SIZE) as pilot:
        first, second = app.panes
        with anyio.fail_after(30):
            while first.job.phase is not Phase.IN_PROGRESS:
                await pilot.pause(0.02)
        await pilot.press("q")
        await pilot.pause()
        assert quit_question(app) == "2 job(s) are still running."

        with anyio.fail_after(30):  # one at a time: the first ends, the second still rolls out
            while quit_question(app) != "1 job(s) are still running.":
                assert not second.job.terminal, "the dialog never counted the first job's end"
                await pilot.pause(0.02)
            while not app.finished:
                await pilot.pause(0.02)
        await pilot.pause()
        assert not any(isinstance(screen, QuitScreen) for screen in app.screen_stack)
        assert app.query_one(RunSummary).has_class("-finished")
        assert "exit code 0" in app.query_one(RunSummary).render().plain
        assert app.is_running  # the summary stays on screen until `q`

        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == 0


async def test_exit_on_done_leaves_by_itself(fleet: Fleets, redis_url: str) -> None:
    two = fleet(2, proxied=(0,))
    planned = plan_jobs(two.spec, RUN_ID)
    state = RunState.from_plan(RUN_ID, planned)

    async def runner(renderer: Renderer) -> None:
        await run_planned(state, planned, redis_url, renderer, heartbeat_s=two.spec.heartbeat)

    app = FanoutApp(state, runner, spec_path=str(two.path), exit_on_done=True)
    async with app.run_test(size=SIZE) as pilot:
        with anyio.fail_after(30):
            while app.is_running:
                await pilot.pause(0.05)
    assert app.return_value == 0
    assert state.done


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_live_view_and_pipes_get_lines() -> None:
    assert choose_output(None, _Terminal()) == "tui"
    assert choose_output(None, io.StringIO()) == "plain"
    assert choose_output("plain", _Terminal()) == "plain"
    assert choose_output("json", _Terminal()) == "json"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_cli_in_a_terminal_runs_the_live_view(fleet: Fleets, redis_url: str) -> None:
    """`python -m orchestrator SPEC --exit-on-done` with a terminal on stdout: the TUI, then
    the summary table left in the scrollback, and the run's exit code."""
    two = fleet(2, bad=1, proxied=(0,))
    env = {**os.environ, "REDIS_URL": redis_url, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    terminal = CliInTerminal(str(two.path), "--exit-on-done", env=env)
    text = terminal.finish(90)

    assert terminal.process.returncode == 1, text[-2000:]
    assert "\x1b[?1049h" in text  # the alternate screen: Textual ran
    assert "c1/s1" in text  # a pane's title
    after = text.rsplit("\x1b[?1049l", 1)[-1]  # what stays in the scrollback
    assert "c0/s0/app" in after and "rolled_back" in after
    assert "Traceback" not in text


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_sigint_to_the_live_view_is_an_interruption(aws: AwsEmulator, fleet: Fleets, redis_url: str) -> None:
    """`docker stop` and `kill -INT` send SIGINT: exit 130 and say what ECS still rolls out."""
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    two = fleet(2, proxied=(0,))
    env = {**os.environ, "REDIS_URL": redis_url, "TERM": "xterm-256color"}
    terminal = CliInTerminal(str(two.path), env=env)
    terminal.read(60, until=lambda shown: shown.count(b"in_progress") >= 2)
    time.sleep(0.5)
    terminal.process.send_signal(signal.SIGINT)
    text = terminal.finish(60)

    assert terminal.process.returncode == 130, text[-2000:]
    after = text.rsplit("\x1b[?1049l", 1)[-1]
    assert "interrupted; run " in after and "deployment ecs-svc/" in after
    assert "Traceback" not in text
