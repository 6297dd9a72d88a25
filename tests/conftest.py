"""Shared fixtures: one AWS emulator and one Redis per session, reset before every test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from redis.asyncio import Redis

from orchestrator.redis_server import RedisServer
from orchestrator.sandbox import AwsEmulator, RolloutScenario, sandbox_aws_env
from tests.fleet import REGION, Fleets
from worker.aws import AwsAccess
from worker.engine import Deployer
from worker.ledger import JobLedger
from worker.publisher import EventPublisher, connect_redis

# Sub-second rollouts keep the suite fast; "*:bad*" images never start.
FAST_SCENARIO = RolloutScenario(rollout_s=0.6, bad_images=("*:bad*",))


@pytest.fixture(scope="session")
def aws_emulator() -> Iterator[AwsEmulator]:
    with AwsEmulator(FAST_SCENARIO) as emulator:
        yield emulator


@pytest.fixture
def aws(aws_emulator: AwsEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEmulator]:
    """The emulator, emptied, with the fast scenario, and the AWS_* environment pointing at it."""
    aws_emulator.reset()
    aws_emulator.set_scenario(FAST_SCENARIO)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):  # a developer's own AWS setup must not leak in
        monkeypatch.delenv(name, raising=False)
    for name, value in sandbox_aws_env(aws_emulator.endpoint_url).items():
        monkeypatch.setenv(name, value)
    yield aws_emulator


@pytest.fixture
def fleet(aws: AwsEmulator, tmp_path: Path) -> Fleets:
    """Writes fleet specs into the test's tmp_path and seeds their services in the emulator."""
    return Fleets(tmp_path, seed_at=aws.endpoint_url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of the session's Redis: `REDIS_URL` if set, else a redis-server of our own."""
    url = os.environ.get("REDIS_URL") or None  # empty counts as unset
    if url is not None:
        yield url
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied (FLUSHALL) before the test."""
    client = redis_sync.Redis.from_url(redis_server)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault-injection suite's figures, when any of its tests ran (tests/fault_tally.py)."""
    from tests.fault_tally import summary

    for line in summary():
        terminalreporter.write_line(line)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the session's Redis, closed after the test."""
    client = connect_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def deployer(aws: AwsEmulator, redis: Redis) -> AsyncIterator[Deployer]:
    """The workers' engine on the emulator's ECS and the session's Redis (a lease of 1 s)."""
    async with AwsAccess().ecs(REGION) as client:
        yield Deployer(client, JobLedger(redis), EventPublisher(redis), min_lease_s=1.0)
