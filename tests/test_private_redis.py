"""Events without `REDIS_URL`: a local run brings its own Redis, announces it, and takes it away.

The CLI runs as a user runs it (a subprocess) against the moto server of the test session, with
`REDIS_URL=` (empty, which counts as unset) and moto made unimportable in it: the product's own
path needs no moto. The announced URL is good for `ecs-fanout attach` while the run goes on, and
nothing of the private `redis-server` is left once the run has ended.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from orchestrator.sandbox import AwsEmulator, RolloutScenario
from tests.cli import ROOT, run_cli
from tests.fleet import Fleets

ANNOUNCEMENT = re.compile(
    r"^ecs-fanout: events in a private Redis at (?P<url>redis://127\.0\.0\.1:(?P<port>\d+)/0) "
    r"\(REDIS_URL=(?P=url) ecs-fanout attach (?P<run>\S+) while it runs\)$"
)
STARTED_WITHIN_S = 60.0


def _without_moto(tmp_path: Path) -> dict[str, str]:
    """This process's environment (AWS_* point at the emulator), `REDIS_URL=`, moto unimportable."""
    fake = tmp_path / "no-moto" / "moto"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'moto'\", name='moto')\n")
    return {**os.environ, "REDIS_URL": "", "PYTHONPATH": str(fake.parent)}


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _redis_processes_on(port: int) -> list[str]:
    """Command lines of live redis-server processes serving `port` (redis titles itself `host:port`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "redis-server" in cmdline and f":{port}" in cmdline:
            found.append(cmdline.strip())
    return found


def test_local_run_without_redis_url_brings_announces_and_stops_a_private_redis(
    aws: AwsEmulator, fleet: Fleets, tmp_path: Path
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=4.0))  # long enough to attach while it runs
    spec = fleet(4)
    run = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", str(spec.path), "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_without_moto(tmp_path),
        cwd=ROOT,
    )
    try:
        assert run.stderr is not None
        first = run.stderr.readline().rstrip("\n")  # the announcement comes before any event
        announced = ANNOUNCEMENT.match(first)
        assert announced, f"no private Redis announced: {first!r}"
        url, port, run_id = announced["url"], int(announced["port"]), announced["run"]
        attached = run_cli("attach", run_id, "--plain", redis_url=url, timeout=STARTED_WITHIN_S)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, f"exit {run.returncode}\n{out}\n{first}\n{err}"
    assert f"run {run_id}: 4 succeeded" in out, out
    assert "private Redis" not in err, "announced more than once"
    # the announced URL was good: attach followed the same run to its end
    assert attached.returncode == 0, (
        f"attach exit {attached.returncode}\n{attached.stdout}\n{attached.stderr}"
    )
    assert f"run {run_id}: 4 succeeded" in attached.stdout, attached.stdout
    # and the run took its Redis away
    deadline = time.monotonic() + 5
    while (_listening(port) or _redis_processes_on(port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _listening(port), f"something still listens on the private Redis's port {port}"
    assert _redis_processes_on(port) == []


def test_lambda_executor_without_redis_url_asks_for_a_shared_one(
    aws: AwsEmulator, fleet: Fleets, tmp_path: Path
) -> None:
    """Its workers run on AWS: a Redis on this machine would not reach them. Exit 2, before any set-up."""
    spec = fleet(2)
    before = aws.request_counts()
    proc = run_cli(str(spec.path), "--plain", "--executor", "lambda", redis_url="", timeout=60)
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and "private Redis" not in proc.stderr, proc.stderr
    [line] = proc.stderr.splitlines()
    assert "REDIS_URL" in line and "lambda executor" in line and "workers" in line, line
    after = aws.request_counts()
    writes = [name for name in after if not name.startswith(("Describe", "List", "Get"))]
    assert all(after[name] == before.get(name) for name in writes), (before, after)
