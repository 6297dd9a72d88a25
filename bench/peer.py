"""The peer tool: fabfuel's ecs-deploy (`ecs deploy`), installed and run over the services.

Why: it is what ecs-fanout is compared with. It is installed from PyPI into a virtual
environment of its own (created once, then cached), so that it does not share the project's
dependencies; it deploys one service a command, so a scenario runs it once per service, either
one after another, as a user's shell loop would (`peer_loop`), or all at once, as a user's
`ecs deploy ... &` per service then `wait` would (`peer_all_at_once`).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.measure import Spawner
from bench.progress import log
from bench.results import Row
from bench.scenario import NEW_TAG, REGION, REPO

__all__ = ["PEER_VENV", "ensure_peer", "peer_all_at_once", "peer_loop", "peer_version"]

PEER_PACKAGE = "ecs-deploy"
PEER_VENV = Path.home() / ".cache" / "ecs-fanout" / "bench" / "ecs-deploy-venv"


def ensure_peer(venv: Path = PEER_VENV) -> Path:
    """`ecs` of PyPI's ecs-deploy in a virtual environment of its own (created once, then cached)."""
    ecs = venv / "bin" / "ecs"
    if ecs.is_file():
        return ecs
    log(f"installing {PEER_PACKAGE} into {venv}")
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", PEER_PACKAGE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not ecs.is_file():
        raise RuntimeError(f"{PEER_PACKAGE} installed no `ecs` command in {venv}")
    return ecs


def peer_version(venv: Path = PEER_VENV) -> str:
    proc = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('ecs-deploy'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "unknown"


def _deploy_command(ecs: Path, cluster: str, service: str) -> list[str]:
    image = f"{REPO}/{service}:{NEW_TAG}"
    return [
        str(ecs),
        "deploy",
        cluster,
        service,
        "--image",
        "app",
        image,
        "--timeout",
        "600",
        "--region",
        REGION,
    ]


def _fill(row: Row, wall_s: float, cpu_s: float, rss_mb: float, failed: Sequence[str]) -> None:
    """`row`'s figures from one of the two ways to run the peer; `failed` names what did not end
    with exit 0 (service, and why where known)."""
    row.wall_s, row.cpu_s, row.peak_rss_mb = wall_s, cpu_s, rss_mb
    row.targets = row.n
    row.succeeded = row.n - len(failed)
    row.exit_code = 1 if failed else 0
    if failed:
        row.note = f"{len(failed)} failed or unfinished, e.g. {failed[0]}"


def peer_all_at_once(
    spawner: Spawner,
    env: Mapping[str, str],
    row: Row,
    services: Sequence[tuple[str, str]],
    timeout_s: float,
) -> None:
    """Every service's `ecs deploy` started at once by one shell (`&` each, then `wait`), each
    printing its exit code; fill `row`: the shell's wall time, the CPU of all of them, the
    peak RSS of the largest (wait4 of the shell covers its reaped children)."""
    ecs = ensure_peer()
    lines = [
        f"( {shlex.join(_deploy_command(ecs, cluster, service))} >/dev/null 2>&1; "
        f'echo "exit $? {service}" ) &'
        for cluster, service in services
    ]
    proc = spawner.run(["sh", "-c", "\n".join([*lines, "wait"])], env=env, timeout_s=timeout_s)
    codes = {
        parts[2]: parts[1] for parts in (line.split() for _, line in proc.lines) if parts[:1] == ["exit"]
    }
    failed = [
        f"{service}: exit {codes.get(service, '?')}" for _, service in services if codes.get(service) != "0"
    ]
    _fill(row, proc.wall_s, proc.cpu_s, proc.maxrss_mb, failed)


def peer_loop(
    spawner: Spawner,
    env: Mapping[str, str],
    row: Row,
    services: Sequence[tuple[str, str]],
    timeout_s: float,
) -> None:
    """`ecs deploy` once per service, one after another; fill `row` with the loop's figures."""
    ecs = ensure_peer()
    started = time.monotonic()
    cpu, rss = 0.0, 0.0
    failed: list[str] = []
    for cluster, service in services:
        remaining = timeout_s - (time.monotonic() - started)
        proc = spawner.run(_deploy_command(ecs, cluster, service), env=env, timeout_s=max(1.0, remaining))
        cpu, rss = cpu + proc.cpu_s, max(rss, proc.maxrss_mb)
        if proc.returncode != 0:
            why = (proc.stderr or (proc.lines[-1][1] if proc.lines else "")).strip()[-200:]
            failed.append(f"{service}: exit {proc.returncode}: {why}")
    _fill(row, time.monotonic() - started, cpu, rss, failed)
