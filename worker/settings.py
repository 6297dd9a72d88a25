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

__all__ = ["WorkerSettings"]


class WorkerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = None  # where events, the ledger and the budget live
    region: str | None = None  # a job without a region runs here
    allowed_registries: tuple[str, ...] = ()  # empty: every registry allowed

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if environ is None else environ
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            allowed_registries=allowed_from_env(env),
        )

    def environment(self) -> dict[str, str]:
        """The variables that give a Lambda worker these settings."""
        env = {"REDIS_URL": self.redis_url} if self.redis_url else {}
        if self.allowed_registries:
            env[ALLOWED_REGISTRIES_ENV] = ",".join(self.allowed_registries)
        return env
