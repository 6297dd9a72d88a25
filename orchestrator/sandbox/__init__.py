"""The sandbox: an in-process AWS (moto + our ECS rollout simulator) and a local Redis.

Why a package of product code: `ecs-fanout --sandbox` gives a new user a real run in one
command, and the tests and benchmarks run against exactly the same emulator, so what the tests
prove is what the sandbox shows.
"""

from __future__ import annotations

from orchestrator.sandbox.emulator import DEFAULT_ECS_BUCKETS, AwsEmulator, sandbox_aws_env
from orchestrator.sandbox.redis_server import RedisServer, RedisServerNotFound
from orchestrator.sandbox.seed import SeededService, seed_images, seed_services
from orchestrator.sandbox.simulator import RolloutScenario, RolloutSimulator

__all__ = [
    "DEFAULT_ECS_BUCKETS",
    "AwsEmulator",
    "RedisServer",
    "RedisServerNotFound",
    "RolloutScenario",
    "RolloutSimulator",
    "SeededService",
    "sandbox_aws_env",
    "seed_images",
    "seed_services",
]
