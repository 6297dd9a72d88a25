"""`--sandbox`: the whole product against an embedded AWS and a local Redis, no account needed.

Starts the emulator (moto + rollout simulator, ECS throttling emulated), seeds every cluster and
service the spec names, running an older image of each named container plus a log-router
sidecar that the spec does not touch, points this process's AWS configuration at the emulator,
and uses `REDIS_URL` or a `redis-server` of its own. Then the run takes the real code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from orchestrator.errors import ConfigError
from orchestrator.sandbox.emulator import AwsEmulator, sandbox_aws_env
from orchestrator.sandbox.redis_server import RedisServer, RedisServerNotFound
from orchestrator.sandbox.seed import SeededService, seed_services
from orchestrator.sandbox.simulator import RolloutScenario
from orchestrator.spec import Spec
from worker.images import parse_image

__all__ = ["SANDBOX_SCENARIO", "Sandbox", "sandbox_services", "start_sandbox"]

# A few seconds per rollout, and any image tagged "broken..." fails its health checks.
SANDBOX_SCENARIO = RolloutScenario(rollout_s=4.0, failure_s=3.0, bad_images=("*:broken*",))
SEEDED_TAG = "1.0.0"
SIDECAR = ("log-router", "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32")


@dataclass(frozen=True)
class Sandbox:
    endpoint_url: str
    redis_url: str
    region: str


def sandbox_services(spec: Spec) -> list[SeededService]:
    """What to seed: each named container on `SEEDED_TAG` of its repository, plus a sidecar."""
    services: dict[tuple[str, str], dict[str, str]] = {}
    for entry in spec.deploy:
        containers = services.setdefault((entry.cluster, entry.service), {})
        containers[entry.container] = f"{parse_image(entry.reference).name}:{SEEDED_TAG}"
    for containers in services.values():
        containers.setdefault(*SIDECAR)
    return [(cluster, service, containers) for (cluster, service), containers in services.items()]


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def start_sandbox(
    spec: Spec, region: str, *, redis_url: str | None = None, scenario: RolloutScenario = SANDBOX_SCENARIO
) -> Iterator[Sandbox]:
    with ExitStack() as stack:
        emulator = stack.enter_context(AwsEmulator(scenario, throttling=True))
        seed_services(emulator.endpoint_url, region, sandbox_services(spec))
        stack.enter_context(_environment(sandbox_aws_env(emulator.endpoint_url, region)))
        if redis_url is None:
            try:
                redis_url = stack.enter_context(RedisServer()).url
            except RedisServerNotFound as exc:
                raise ConfigError(str(exc)) from exc
        yield Sandbox(emulator.endpoint_url, redis_url, region)
