"""The sandbox: an in-process AWS (moto + our ECS rollout simulator), for `--sandbox` and the tests.

Why shipped (as the `[sandbox]` extra, `pip install 'ecs-fanout[sandbox]'`): `ecs-fanout
--sandbox` gives a new user a real run in one command, and the tests and benchmarks run against
exactly the same emulator, so what the tests prove is what the sandbox shows. It is a test bed,
not the product's runtime: it depends on the product, never the other way round, and it reaches
the product only through `orchestrator.endpoints.Endpoints`. Only this package imports moto.
`RedisServer` lives in the product (`orchestrator.redis_server`); it is re-exported here for
the tests and benchmarks.
"""

from __future__ import annotations

from orchestrator.redis_server import RedisServer, RedisServerNotFound
from orchestrator.sandbox.emulator import DEFAULT_ECS_BUCKETS, AwsEmulator, sandbox_aws_env
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
