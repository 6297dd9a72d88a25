"""The wire contract between the orchestrator and its workers.

A `DeployJob` travels orchestrator -> worker (SQS message body or an in-process call); a
`WorkerEvent` travels worker -> orchestrator (Redis PUBLISH + XADD). Both are strict
(`extra="forbid"`) so that a version skew between the two sides fails loudly instead of
silently dropping a field.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "TERMINAL_PHASES",
    "ContainerChange",
    "DeployJob",
    "EventDetails",
    "JobOptions",
    "Phase",
    "WorkerEvent",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phase(StrEnum):
    """Where a job is. The last six are terminal: a job reports exactly one of them."""

    QUEUED = "queued"  # sent by the orchestrator, not picked up yet
    STARTED = "started"  # a worker owns the job
    REGISTERED = "registered"  # the new task-definition revision exists
    UPDATED = "updated"  # update_service accepted; details carry the deployment id
    IN_PROGRESS = "in_progress"  # following our deployment; details carry the counts
    ROLLING_BACK = "rolling_back"  # we asked ECS to go back to the previous revision
    DUPLICATE = "duplicate"  # a second delivery of a job that another worker owns
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"  # every named container already runs the target image
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    TIMED_OUT = "timed_out"
    LOST = "lost"  # decided by the orchestrator: the job went silent

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset(
    {Phase.SUCCEEDED, Phase.SKIPPED, Phase.FAILED, Phase.ROLLED_BACK, Phase.TIMED_OUT, Phase.LOST}
)


class ContainerChange(_Strict):
    """One container of the service and the full image reference it must run."""

    container: str = Field(min_length=1)
    image: str = Field(min_length=1)


class JobOptions(_Strict):
    timeout_s: float = Field(default=900.0, gt=0, description="Deadline of the whole rollout.")
    rollback: bool = Field(default=True, description="Roll back a failed rollout ourselves.")
    poll_min_s: float = Field(default=2.0, gt=0, description="First wait between describe_services.")
    poll_max_s: float = Field(default=15.0, gt=0, description="Longest wait between describe_services.")
    heartbeat_s: float = Field(default=30.0, gt=0, description="Longest silence while following.")


class DeployJob(_Strict):
    """Everything one worker needs to roll one service forward: all its changed containers."""

    run_id: str = Field(min_length=1)
    job_id: str = Field(min_length=1)
    cluster: str = Field(min_length=1)
    service: str = Field(min_length=1)
    region: str | None = None
    changes: tuple[ContainerChange, ...] = Field(min_length=1)
    options: JobOptions = JobOptions()


class EventDetails(_Strict):
    running: int | None = None
    desired: int | None = None
    pending: int | None = None
    failed_tasks: int | None = None
    deployment_id: str | None = None
    task_definition_arn: str | None = None  # the revision the job registered (or runs, when skipped)
    previous_task_definition_arn: str | None = None
    rollout_state_reason: str | None = None
    service_events: tuple[str, ...] = ()


class WorkerEvent(_Strict):
    run_id: str
    job_id: str
    seq: int = Field(ge=0, description="Per-job, strictly increasing, survives a worker hand-over.")
    ts: float = Field(default_factory=time.time)
    phase: Phase
    message: str = ""
    details: EventDetails = EventDetails()

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkerEvent:
        return cls.model_validate_json(raw)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)


def job_from_message(body: str | bytes | dict[str, Any]) -> DeployJob:
    """Parse a job from an SQS body or an already decoded dict."""
    if isinstance(body, dict):
        return DeployJob.model_validate(body)
    return DeployJob.model_validate_json(body)
