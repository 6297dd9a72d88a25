"""SIGTERM (CI runners, container stops) and SIGHUP (a closed terminal) stop a run as Ctrl-C does.

Each test sends the real signal to a real `python -m orchestrator` mid-rollout: the exit code is
143 for SIGTERM and 130 for SIGHUP, stderr names the run and the deployments ECS is still
rolling out, without a traceback, and no child process (the private redis-server) is left.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from orchestrator.exits import ExitCode
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from tests import fault_tally
from tests.cli import CliInTerminal, spawn_cli
from tests.fleet import REGION, Fleets

STOPS = [
    pytest.param(signal.SIGTERM, ExitCode.TERMINATED, "terminated (SIGTERM)", id="SIGTERM"),
    pytest.param(signal.SIGHUP, ExitCode.INTERRUPTED, "hung up (SIGHUP)", id="SIGHUP"),
]
PRIVATE_REDIS = re.compile(r"events in a private Redis at redis://127\.0\.0\.1:(\d+)/0")


def under_way(lines: list[str], services: int, out: subprocess.Popen[str]) -> None:
    """Reads `out`'s stdout into `lines` until `services` rollouts are in progress."""
    assert out.stdout is not None
    seen: set[str] = set()
    deadline = time.monotonic() + 90
    for line in out.stdout:
        lines.append(line)
        if line.startswith("{"):  # --json
            event = json.loads(line)
            if event.get("phase") == "in_progress":
                seen.add(event["service"])
        elif "in_progress" in line:  # --plain: `12:00:00 c0/s0  in_progress ...`
            seen.add(line.split()[1])
        if len(seen) == services:
            return
        assert time.monotonic() < deadline, lines
    raise AssertionError(f"the run ended before {services} rollouts were under way: {lines}")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stopped_report(stderr: str, reason: str, services: list[str]) -> None:
    assert "Traceback" not in stderr, stderr
    assert re.search(rf"ecs-fanout: {re.escape(reason)}; run \d{{8}}T\d{{6}}Z-[0-9a-f]{{6}}", stderr), stderr
    for name in services:
        assert f"{name}: deployment ecs-svc/" in stderr, stderr


@pytest.mark.parametrize(("signum", "code", "reason"), STOPS)
@pytest.mark.parametrize("output", ["--plain", "--json"])
def test_a_signal_stops_a_headless_run_like_ctrl_c(
    aws: AwsEmulator,
    fleet: Fleets,
    redis_url: str,
    signum: signal.Signals,
    code: ExitCode,
    reason: str,
    output: str,
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    two = fleet(2)
    process = spawn_cli(str(two.path), output, redis_url=redis_url)
    under_way([], 2, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == code, stderr
    stopped_report(stderr, reason, ["c0/s0", "c1/s1"])
    fault_tally.record(
        f"{signum.name} to a {output} run mid-rollout",
        faults=1,
        jobs=2,
        duplicate_registrations=fault_tally.duplicate_registrations(["s0", "s1"], REGION),
    )


@pytest.mark.parametrize(("signum", "code", "reason"), STOPS)
def test_a_signal_stops_a_sandbox_run_and_its_private_redis(
    tmp_path: Path, signum: signal.Signals, code: ExitCode, reason: str
) -> None:
    """No REDIS_URL: the run starts its own redis-server; the signal must not orphan it."""
    two = Fleets(tmp_path)(2)  # the sandbox seeds its own emulator; its rollouts take seconds
    process = spawn_cli(str(two.path), "--sandbox", "--plain", redis_url="")
    assert process.stderr is not None
    announced = PRIVATE_REDIS.search(process.stderr.readline())
    assert announced, "no private Redis announced"
    servers = [
        pid for pid in children(process.pid) if "redis-server" in Path(f"/proc/{pid}/cmdline").read_text()
    ]
    assert len(servers) == 1
    try:
        under_way([], 2, process)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == code, stderr
        stopped_report(stderr, reason, ["c0/s0", "c1/s1"])
        assert not running(servers[0]), "the private redis-server was left running"
    finally:
        for pid in servers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_stops_the_live_view_and_restores_the_terminal(
    aws: AwsEmulator, fleet: Fleets, redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    two = fleet(2)
    env = {**os.environ, "REDIS_URL": redis_url, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    terminal = CliInTerminal(str(two.path), env=env)
    terminal.read(60, until=lambda shown: shown.count(b"in_progress") >= 2)
    time.sleep(0.5)
    terminal.process.send_signal(signal.SIGTERM)
    text = terminal.finish(60)

    assert terminal.process.returncode == ExitCode.TERMINATED, text[-2000:]
    assert "\x1b[?1049h" in text and "\x1b[?1049l" in text  # the alternate screen, entered and left
    after = text.rsplit("\x1b[?1049l", 1)[-1]  # what stays in the scrollback
    stopped_report(after, "terminated (SIGTERM)", ["c0/s0", "c1/s1"])
    fault_tally.record(
        "SIGTERM to the live view mid-rollout",
        faults=1,
        jobs=2,
        duplicate_registrations=fault_tally.duplicate_registrations(["s0", "s1"], REGION),
    )
