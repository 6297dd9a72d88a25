"""Fleets to roll out: N services on two clusters, one of them maybe on a bad image, seeded in the emulator.

The `fleet` fixture (conftest.py) hands a test `Fleets` bound to its tmp_path and the emulator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio

from orchestrator.feed import read_stream
from orchestrator.gate_events import GateEvent
from orchestrator.local import LocalExecutor
from orchestrator.plan import PlannedJob
from orchestrator.run import Executor, Renderer, run_jobs
from orchestrator.sandbox import seed_services
from orchestrator.sandbox.session import sandbox_services
from orchestrator.spec import Spec, load_spec
from orchestrator.state import JobState, RunState
from orchestrator.wave_state import WaveState
from worker.aws import AwsAccess
from worker.contract import Phase, WorkerEvent
from worker.publisher import connect_redis

REGION = "us-east-1"
CLUSTERS = ("c0", "c1")


@dataclass(frozen=True)
class Fleet:
    path: Path  # the spec file
    spec: Spec

    def services_by_cluster(self) -> dict[str, list[str]]:
        services: dict[str, list[str]] = {}
        for entry in self.spec.deploy:
            if entry.service not in services.setdefault(entry.cluster, []):
                services[entry.cluster].append(entry.service)
        return services


class Fleets:
    """Writes a fleet's spec to `directory`/spec.toml (anew each call); given `seed_at` (the emulator's
    URL), seeds its services there too."""

    def __init__(self, directory: Path, seed_at: str | None = None) -> None:
        self._directory = directory
        self._seed_at = seed_at

    def __call__(
        self,
        count: int,
        *,
        bad: int | None = None,
        heartbeat: str | None = "10s",
        proxied: Sequence[int] = (),
    ) -> Fleet:
        """Services s0…s`count-1`, on c0 and c1 in turn, their container `app` (registry.example.com/sI)
        going to tag 2.0.0, but s`bad`'s to bad-1, which never starts (the scenario's "*:bad*").
        The `proxied` services also have a container `proxy` (proxy.example.com/envoy), to the same tag.
        Polls every 100ms, times out after 60s; `heartbeat` None keeps the spec's default."""
        assert bad is None or 0 <= bad < count, f"no service s{bad} in a fleet of {count}"
        lines = ['poll_interval = "100ms"', 'timeout = "60s"']
        if heartbeat is not None:
            lines.append(f'heartbeat = "{heartbeat}"')
        for i in range(count):
            containers = [("app", f"registry.example.com/s{i}")]
            if i in proxied:
                containers.append(("proxy", "proxy.example.com/envoy"))
            for container, image in containers:
                lines += [
                    "[[deploy]]",
                    f'cluster = "{CLUSTERS[i % len(CLUSTERS)]}"',
                    f'service = "s{i}"',
                    f'container = "{container}"',
                    f'image = "{image}"',
                    f'tag = "{"bad-1" if i == bad else "2.0.0"}"',
                ]
        path = self._directory / "spec.toml"
        path.write_text("\n".join(lines) + "\n")
        spec = load_spec(path)
        if self._seed_at is not None:
            seed_services(self._seed_at, REGION, sandbox_services(spec))
        return Fleet(path, spec)


class Silent:
    """A renderer that shows nothing: a base for those that watch one thing."""

    def started(self, state: RunState) -> None:
        pass

    def setup_changed(self, step: str, status: str, message: str) -> None:
        pass

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        pass

    def gate_changed(self, wave: WaveState, event: GateEvent) -> None:
        pass

    def finished(self, state: RunState) -> None:
        pass


async def run_planned(
    state: RunState,
    planned: Sequence[PlannedJob],
    redis_url: str,
    renderer: Renderer,
    *,
    heartbeat_s: float,
    max_parallel: int = 10,
    executor: Callable[[redis.asyncio.Redis], Executor] | None = None,
) -> None:
    """Runs the jobs to their end over a Redis client of its own, with `executor` (given that client)
    or else the local executor: real workers, in this process."""
    client = connect_redis(redis_url)
    try:
        if executor is None:
            chosen: Executor = LocalExecutor(client, max_parallel=max_parallel, aws=AwsAccess())
        else:
            chosen = executor(client)
        await run_jobs(state, planned, client, chosen, renderer, heartbeat_s=heartbeat_s)
    finally:
        await client.aclose()


class Recorder(Silent):
    """A renderer that keeps the sequence numbers it was shown, per job."""

    def __init__(self) -> None:
        self.seen: dict[str, list[int]] = {}

    def changed(self, job: JobState, event: WorkerEvent | None) -> None:
        if event is not None and event.phase is not Phase.DUPLICATE:
            self.seen.setdefault(job.job_id, []).append(event.seq)


async def published_seqs(redis_url: str, run_id: str) -> dict[str, list[int]]:
    """The sequence numbers each job published to the run's stream (duplicates aside)."""
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        entries = await read_stream(client, run_id)
    finally:
        await client.aclose()
    seqs: dict[str, list[int]] = {}
    for _, event in entries:
        if event.phase is not Phase.DUPLICATE:
            seqs.setdefault(event.job_id, []).append(event.seq)
    return seqs
