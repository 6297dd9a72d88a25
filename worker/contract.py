"""The wire contract between the orchestrator and its workers.

A `DeployJob` travels orchestrator -> worker (SQS message body or an in-process call); a
`WorkerEvent` travels worker -> orchestrator (Redis PUBLISH + XADD). Both are strict
(`extra="forbid"`) so that a version skew between the two sides fails loudly instead of
silently dropping a field.
"""

from __future__ import annotations

import hashlib
import string
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from worker.access import CALLER, Access
from worker.target import Target

__all__ = [
    "SQS_ID_MAX_LENGTH",
    "TERMINAL_PHASES",
    "ContainerChange",
    "DeployJob",
    "DoneWhen",
    "EventDetails",
    "Follow",
    "JobOptions",
    "Phase",
    "WorkerEvent",
    "dedup_id",
    "group_id",
    "job_from_message",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phase(StrEnum):
    """Where a job is. A job reports exactly one of the terminal ones (`TERMINAL_PHASES`)."""

    QUEUED = "queued"  # sent by the orchestrator, not picked up yet
    STARTED = "started"  # a worker owns the job
    REGISTERED = "registered"  # the new task-definition revision exists
    UPDATED = "updated"  # update_service accepted; details carry the deployment id
    IN_PROGRESS = "in_progress"  # following our deployment; details carry the counts
    ROLLING_BACK = "rolling_back"  # we asked ECS to go back to the previous revision
    DUPLICATE = "duplicate"  # a second delivery of a job that another worker owns
    HANDED_OVER = "handed_over"  # the worker's time ran out; a continuation follows on
    SUCCEEDED = "succeeded"
    # `done_when = "traffic_shifted"`: production traffic is all on the new revision and we
    # stopped following; ECS is still baking (and may yet roll back). A success, qualified.
    BAKING = "baking"
    SKIPPED = "skipped"  # every named container already runs the target image
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    TIMED_OUT = "timed_out"
    LOST = "lost"  # decided by the orchestrator: the job went silent
    NOT_STARTED = "not_started"  # decided by the orchestrator: a gate stopped the run before its wave

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset(
    {
        Phase.SUCCEEDED,
        Phase.BAKING,
        Phase.SKIPPED,
        Phase.FAILED,
        Phase.ROLLED_BACK,
        Phase.TIMED_OUT,
        Phase.LOST,
        Phase.NOT_STARTED,
    }
)


class ContainerChange(_Strict):
    """One container of the service and the full image reference it must run."""

    container: str = Field(min_length=1)
    image: str = Field(min_length=1)


class DoneWhen(StrEnum):
    """When following a deployment ends with success (spec key `done_when`)."""

    BAKED = "baked"  # ECS's service deployment is SUCCESSFUL: through the bake and clean-up
    TRAFFIC_SHIFTED = "traffic_shifted"  # production traffic fully on the new revision


class Follow(StrEnum):
    """How a job learns that its deployment moved on (spec key `follow`)."""

    EVENTS = "events"  # ECS's events wake the follower; a slow safety poll stays on
    POLL = "poll"  # looks as often as the account's DescribeServices budget allows


class JobOptions(_Strict):
    timeout_s: float = Field(default=900.0, gt=0, description="Deadline of the whole rollout.")
    rollback: bool = Field(default=True, description="Roll back a failed rollout ourselves.")
    poll_min_s: float = Field(default=1.0, gt=0, description="Shortest wait between two looks.")
    poll_max_s: float = Field(
        default=15.0, gt=0, description="Longest wait between looks of a worker looking alone (Lambda)."
    )
    heartbeat_s: float = Field(default=30.0, gt=0, description="Longest silence while following.")
    api_budget: bool = Field(default=True, description="Draw ECS calls from the shared token buckets.")
    keep_revisions: int | None = Field(
        default=None, ge=1, description="After a success, deregister older revisions beyond this many."
    )
    done_when: DoneWhen = Field(default=DoneWhen.BAKED, description="When following ends with success.")
    extend_for_bake: bool = Field(
        default=False,
        description="The timeout is the default one: add the service's configured bake times to it.",
    )
    follow: Follow = Field(
        default=Follow.EVENTS,
        description="ECS's events wake the job (a slow safety poll stays), or polling the budget paces.",
    )
    wait_for_target: bool = Field(
        default=True,
        description="Wait while another run deploys the same service; False: fail at once, nothing changed.",
    )


class DeployJob(_Strict):
    """Everything one worker needs to roll one service forward: all its changed containers."""

    run_id: str = Field(min_length=1)
    job_id: str = Field(min_length=1)
    target: Target
    # How to reach the target's account: a role to assume (never credentials), or the caller's.
    access: Access = CALLER
    changes: tuple[ContainerChange, ...] = ()
    # A revert: put the service on exactly this existing revision (`changes` stay empty).
    revision: str | None = None
    options: JobOptions = JobOptions()
    # How many times a worker handed this job over to a continuation (Lambda's 900 s limit).
    continuation: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _changes_or_revision(self) -> DeployJob:
        if bool(self.changes) == (self.revision is not None):
            raise ValueError("a job either changes containers or puts back a revision, exactly one of them")
        return self


class EventDetails(_Strict):
    running: int | None = None
    desired: int | None = None
    pending: int | None = None
    failed_tasks: int | None = None
    deployment_id: str | None = None
    task_definition_arn: str | None = None  # the revision the job registered (or runs, when skipped)
    # The named containers' images in that revision, as ECS returned it.
    images: tuple[ContainerChange, ...] = ()
    previous_task_definition_arn: str | None = None
    rollout_state_reason: str | None = None
    service_events: tuple[str, ...] = ()
    # ECS's service deployment (where the service-deployments API answers): see worker.strategy.
    following: str | None = None  # "service_deployment", or "rollout_state" (the fallback)
    service_deployment_arn: str | None = None
    service_deployment_status: str | None = None  # ECS's word: IN_PROGRESS, ROLLBACK_SUCCESSFUL...
    strategy: str | None = None  # ROLLING, BLUE_GREEN, LINEAR, CANARY
    lifecycle_stage: str | None = None  # SCALE_UP, TEST_TRAFFIC_SHIFT, BAKE_TIME...
    traffic_percent: float | None = None  # production traffic on the new revision, 0-100
    bake_left_s: float | None = None  # while the stage is BAKE_TIME
    hook: str | None = None  # the lifecycle hook (its target ARN) the current stage waits for
    hook_since: float | None = None  # epoch seconds: since when that stage has been waiting


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


# SQS's MessageGroupId and MessageDeduplicationId: at most 128 of these characters.
SQS_ID_MAX_LENGTH = 128
_SQS_ID_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)
_SQS_ID_HASH_LENGTH = 20


def _sqs_id(raw: str) -> str:
    """`raw` when SQS accepts it as an id, else a readable prefix plus a hash of all of it."""
    if raw and len(raw) <= SQS_ID_MAX_LENGTH and set(raw) <= _SQS_ID_CHARS:
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:_SQS_ID_HASH_LENGTH]
    readable = "".join(c if c in _SQS_ID_CHARS else "_" for c in raw)
    return f"{readable[: SQS_ID_MAX_LENGTH - _SQS_ID_HASH_LENGTH - 1]}#{digest}"


def group_id(job: DeployJob) -> str:
    """The FIFO message group of a job: one per target, so two deploys of it never overlap.

    A cluster or service given as an ARN counts as its name, so both spellings share a group.
    """
    return _sqs_id(job.target.key)


def dedup_id(job: DeployJob) -> str:
    """The FIFO deduplication id: a redelivered send is dropped, a continuation is not."""
    return _sqs_id(f"{job.job_id}:{job.continuation}")
