"""Where a run's AWS and Redis are: the one seam through which a test bed enters the product.

The product builds `Endpoints` from its settings (the standard AWS chain, `REDIS_URL`); the
sandbox builds one that points at its emulator and its own Redis and adds two hooks for its
Lambda emulation. Nothing else (no environment writes, no callbacks threaded elsewhere)
tells the product that it runs against a test bed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from worker.aws import AwsAccess

if TYPE_CHECKING:
    from orchestrator.job_queue import JobQueue
    from orchestrator.settings import LambdaSettings

__all__ = ["Endpoints"]


@dataclass(frozen=True)
class Endpoints:
    aws: AwsAccess = field(default_factory=AwsAccess)
    redis_url: str | None = None
    region: str | None = None
    # The lambda executor's hooks: complete its settings (a role the test bed made) ...
    prepare_lambda: Callable[[LambdaSettings], LambdaSettings] | None = None
    # ... and run the queue's consumer once the queue exists (the test bed's Lambda).
    on_queue_ready: Callable[[JobQueue], None] | None = None
