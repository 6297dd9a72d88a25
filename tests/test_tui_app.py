"""The live view driving real runs (moto + rollout simulator + Redis, local executor), piloted."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest
from textual.widgets import DataTable

from orchestrator.cli import _choose_output
from orchestrator.local import LocalExecutor
from orchestrator.plan import PlannedJob, plan_jobs
from orchestrator.render import JsonRenderer
from orchestrator.run import Renderer, run_jobs
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.sandbox.session import sandbox_services
from orchestrator.spec import Spec, load_spec
from orchestrator.state import JobState, RunState
from tui import EXIT_INTERRUPTED, FanoutApp
from tui.header import RunHeader, RunSummary
from tui.pane import JobPane
from tui.screens import EventLogScreen, QuitScreen
from worker.contract import Phase, WorkerEvent
from worker.publisher import connect_redis

REGION = "us-east-1"
RUN_ID = "tui-run"
ROOT = Path(__file__).resolve().parent.parent
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

    def finished(self, state: RunState) -> None:
        for renderer in self._renderers:
            renderer.finished(state)


def write_spec(tmp_path: Path, services: int, *, bad: int) -> tuple[Path, Spec]:
    """`services` services on two clusters; s0 has two containers; s`bad` gets a bad image."""
    lines = ['poll_interval = "100ms"', 'heartbeat = "10s"', 'timeout = "60s"']
    for i in range(services):
        tag = "bad-1" if i == bad else "2.0.0"
        containers = [("app", f"registry.example.com/s{i}")] + (
            [("proxy", "proxy.example.com/envoy")] * (i == 0)
        )
        for container, image in containers:
            lines += [
                "[[deploy]]",
                f'cluster = "c{i % 2}"',
                f'service = "s{i}"',
                f'container = "{container}"',
                f'image = "{image}"',
                f'tag = "{tag}"',
            ]
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    spec = load_spec(path)
    seed_services(os.environ["AWS_ENDPOINT_URL"], REGION, sandbox_services(spec))
    return path, spec


def live_app(
    planned: Sequence[PlannedJob], spec: Spec, redis_url: str, json_out: io.StringIO, spec_path: str
) -> FanoutApp:
    """The app running the real run core, with a JsonRenderer watching the same run."""
    state = RunState.from_plan(RUN_ID, planned)

    async def runner(renderer: Renderer) -> None:
        client = connect_redis(redis_url)
        try:
            executor = LocalExecutor(client, max_parallel=10, region=REGION)
            both = FanOut(renderer, JsonRenderer(json_out, spec_path=spec_path))
            await run_jobs(state, planned, client, executor, both, heartbeat_s=spec.heartbeat)
        finally:
            await client.aclose()

    return FanoutApp(state, runner, spec_path=spec_path)


def subtitle(pane: JobPane) -> str:
    title = pane.border_subtitle
    return "" if title is None else str(title)


async def test_live_view_follows_a_real_run(aws: AwsEmulator, redis_url: str, tmp_path: Path) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=1.5, bad_images=("*:bad*",)))
    path, spec = write_spec(tmp_path, 6, bad=2)
    planned = plan_jobs(spec, RUN_ID)
    json_out = io.StringIO()
    app = live_app(planned, spec, redis_url, json_out, str(path))
    shown_phases: dict[str, list[str]] = {}

    async with app.run_test(size=SIZE) as pilot:
        panes = {pane.job.service: pane for pane in app.panes}
        # Every cluster/service/container is on screen, with its target image.
        assert len(panes) == len(planned)
        for planned_job in planned:
            pane = panes[planned_job.job.service]
            assert str(pane.border_title) == f"{planned_job.job.cluster}/{planned_job.job.service}"
            text = pane.render().plain
            for target in planned_job.targets:
                assert target.container in text and target.image in text

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
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    path, spec = write_spec(tmp_path, 4, bad=-1)
    planned = plan_jobs(spec, RUN_ID)
    app = live_app(planned, spec, redis_url, io.StringIO(), str(path))

    async with app.run_test(size=SIZE) as pilot:
        panes = {pane.job.service: pane for pane in app.panes}
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
    assert app.return_value == EXIT_INTERRUPTED
    assert not app.state.done


async def test_exit_on_done_leaves_by_itself(aws: AwsEmulator, redis_url: str, tmp_path: Path) -> None:
    path, spec = write_spec(tmp_path, 2, bad=-1)
    planned = plan_jobs(spec, RUN_ID)
    state = RunState.from_plan(RUN_ID, planned)

    async def runner(renderer: Renderer) -> None:
        client = connect_redis(redis_url)
        try:
            executor = LocalExecutor(client, max_parallel=10, region=REGION)
            await run_jobs(state, planned, client, executor, renderer, heartbeat_s=spec.heartbeat)
        finally:
            await client.aclose()

    app = FanoutApp(state, runner, spec_path=str(path), exit_on_done=True)
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
    assert _choose_output(None, _Terminal()) == "tui"
    assert _choose_output(None, io.StringIO()) == "plain"
    assert _choose_output("plain", _Terminal()) == "plain"
    assert _choose_output("json", _Terminal()) == "json"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_cli_in_a_terminal_runs_the_live_view(aws: AwsEmulator, redis_url: str, tmp_path: Path) -> None:
    """`python -m orchestrator SPEC --exit-on-done` with a terminal on stdout: the TUI, then
    the summary table left in the scrollback, and the run's exit code."""
    path, _ = write_spec(tmp_path, 2, bad=1)
    leader, follower = os.openpty()
    env = {**os.environ, "REDIS_URL": redis_url, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen(  # Textual draws on stderr: both go to the terminal
        [sys.executable, "-m", "orchestrator", str(path), "--exit-on-done"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=ROOT,
    )
    os.close(follower)
    output = bytearray()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    process.wait(timeout=30)

    text = output.decode(errors="replace")
    assert process.returncode == 1, text[-2000:]
    assert "\x1b[?1049h" in text  # the alternate screen: Textual ran
    assert "c1/s1" in text  # a pane's title
    after = text.rsplit("\x1b[?1049l", 1)[-1]  # what stays in the scrollback
    assert "c0/s0/app" in after and "rolled_back" in after
    assert "Traceback" not in text


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_sigint_to_the_live_view_is_an_interruption(aws: AwsEmulator, redis_url: str, tmp_path: Path) -> None:
    """`docker stop` and `kill -INT` send SIGINT: exit 130 and say what ECS still rolls out."""
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    path, _ = write_spec(tmp_path, 2, bad=-1)
    leader, follower = os.openpty()
    env = {**os.environ, "REDIS_URL": redis_url, "TERM": "xterm-256color"}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", str(path)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=ROOT,
    )
    os.close(follower)
    output = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and output.count(b"in_progress") < 2:
        output += os.read(leader, 65536)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    process.wait(timeout=30)

    text = output.decode(errors="replace")
    assert process.returncode == 130, text[-2000:]
    after = text.rsplit("\x1b[?1049l", 1)[-1]
    assert "interrupted; run " in after and "deployment ecs-svc/" in after
    assert "Traceback" not in text
