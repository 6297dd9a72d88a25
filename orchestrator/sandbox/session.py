"""`--sandbox`: the whole product against an embedded AWS and a local Redis, no account needed.

Starts the emulator (moto + rollout simulator, ECS throttling emulated), seeds every cluster and
service the spec names, running an older image of each named container plus a log-router
sidecar that the spec does not touch, points this process's AWS configuration at the emulator,
and uses `REDIS_URL` or a `redis-server` of its own. Then the run takes the real code path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import boto3
from moto.backends import get_backend

from orchestrator.errors import ConfigError
from orchestrator.job_queue import JobQueue
from orchestrator.sandbox.emulator import AwsEmulator, sandbox_aws_env
from orchestrator.sandbox.esm import EventSourceMappingEmulator
from orchestrator.sandbox.redis_server import RedisServer, RedisServerNotFound
from orchestrator.sandbox.seed import SeededService, seed_images, seed_services
from orchestrator.sandbox.simulator import RolloutScenario
from orchestrator.settings import LambdaSettings
from orchestrator.spec import Spec
from worker.handler import handler
from worker.images import parse_image

__all__ = ["SANDBOX_SCENARIO", "Sandbox", "sandbox_services", "start_sandbox"]

# A few seconds per rollout, and any image tagged "broken..." fails its health checks.
SANDBOX_SCENARIO = RolloutScenario(rollout_s=4.0, failure_s=3.0, bad_images=("*:broken*",))
SEEDED_TAG = "1.0.0"
SANDBOX_ROLE = "ecs-fanout-worker"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
SIDECAR = ("log-router", "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32")


@dataclass(frozen=True)
class Sandbox:
    endpoint_url: str
    redis_url: str
    region: str
    stack: ExitStack

    def prepare_lambda(self, settings: LambdaSettings) -> LambdaSettings:
        """A worker role in the emulator's IAM (Lambda refuses a role it cannot find)."""
        iam = boto3.client("iam", region_name=self.region, endpoint_url=self.endpoint_url)
        role = iam.create_role(RoleName=SANDBOX_ROLE, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
        return settings.model_copy(update={"role_arn": role["Role"]["Arn"]})

    def on_queue_ready(self, queue: JobQueue) -> None:
        """Run the queue's Lambda here: our event-source-mapping emulator calls the real handler.

        moto's own mapping would try to run the function in Docker on every send and, failing,
        receive the messages over and over until they land in the dead-letter queue: the
        emulator takes the queue over from it.
        """
        _, _, _, region, account, name = queue.arn.split(":")
        get_backend("sqs")[account][region].queues[name].lambda_event_source_mappings.clear()
        emulator = EventSourceMappingEmulator(
            queue.url, handler, region=self.region, endpoint_url=self.endpoint_url, max_concurrency=5
        )
        self.stack.enter_context(emulator)


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
        emulator = stack.enter_context(AwsEmulator(scenario))
        services = sandbox_services(spec)
        seed_services(emulator.endpoint_url, region, services)
        seed_images(
            emulator.endpoint_url,
            region,
            [entry.reference for entry in spec.deploy] + [i for _, _, c in services for i in c.values()],
        )
        # Throttle from here on, with full buckets: seeding is not part of the deploy.
        emulator.set_throttling(True)
        stack.enter_context(_environment(sandbox_aws_env(emulator.endpoint_url, region)))
        if redis_url is None:
            try:
                redis_url = stack.enter_context(RedisServer()).url
            except RedisServerNotFound as exc:
                raise ConfigError(str(exc)) from exc
        # The lambda executor's workers run in this process and read REDIS_URL as on Lambda.
        stack.enter_context(_environment({"REDIS_URL": redis_url}))
        yield Sandbox(emulator.endpoint_url, redis_url, region, stack)
