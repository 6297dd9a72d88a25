"""The worker's settings: read from its environment once, in one place.

A Lambda worker is configured by its function's environment (set by the orchestrator); the
local executor and the sandbox build a `WorkerSettings` directly. Only plain pydantic here:
the Lambda zip ships pydantic, not pydantic-settings. Empty variables count as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from worker.registries import ALLOWED_REGISTRIES_ENV, allowed_from_env

__all__ = ["TIMER_QUEUE_ENV", "WorkerSettings"]

TIMER_QUEUE_ENV = "ECS_FANOUT_TIMER_QUEUE_ARN"


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = None  # where events, the ledger and the budget live
    region: str | None = None  # a job without a region runs here
    allowed_registries: tuple[str, ...] = ()  # empty: every registry allowed
    # Lambda: the standard queue of parked jobs' timers (`worker.park`); unset: jobs never park
    timer_queue_arn: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if environ is None else environ
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            allowed_registries=allowed_from_env(env),
            timer_queue_arn=env.get(TIMER_QUEUE_ENV) or None,
        )

    def environment(self) -> dict[str, str]:
        """The variables that give a Lambda worker these settings."""
        env = {"REDIS_URL": self.redis_url} if self.redis_url else {}
        if self.allowed_registries:
            env[ALLOWED_REGISTRIES_ENV] = ",".join(self.allowed_registries)
        if self.timer_queue_arn:
            env[TIMER_QUEUE_ENV] = self.timer_queue_arn
        return env
