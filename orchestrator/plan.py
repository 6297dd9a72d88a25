"""From a validated spec to the jobs to send: one `DeployJob` per service. Pure.

Each target (account, region, cluster, service: `worker.target.Target`) becomes exactly one
job carrying all of its changed containers, so that a service gets one new task-definition
revision and one deployment, not one per container. Services and containers keep the order
in which the spec first names them, and a container listed twice with the same image is sent
once.

Options are layered, most specific last: the spec's top-level defaults, then the
per-entry overrides of the service (timeout, rollback, done_when), then the arguments of
`plan_jobs` (the CLI flags). A job whose timeout nobody gave (no `--timeout`, no `timeout` in
the spec) has the default one, which the worker lengthens by the service's configured bake
times (`JobOptions.extend_for_bake`): a blue/green service that bakes 30 minutes is not timed
out after 15.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from orchestrator.errors import ConfigError
from orchestrator.spec import DeployEntry, Spec
from orchestrator.spec_access import access_of, region_of
from worker.access import Access
from worker.contract import ContainerChange, DeployJob, DoneWhen, Follow, JobOptions
from worker.target import Target

__all__ = ["MAX_JOB_ID_LENGTH", "PlannedJob", "job_id_for", "new_run_id", "plan_jobs"]

MAX_JOB_ID_LENGTH = 80
"""Job ids double as SQS deduplication ids (at most 128 characters); we stay well below."""

_T = TypeVar("_T")
_HASH_LENGTH = 12
_MAX_RUN_ID_LENGTH = MAX_JOB_ID_LENGTH - _HASH_LENGTH - 1
_SQS_ID_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)
_POLL_MAX_S = JobOptions().poll_max_s
_HEARTBEATS_PER_SILENCE = 3  # the worker speaks at least every heartbeat_s / 3 while following
_Overrides = tuple[float | None, bool | None, DoneWhen | None]  # an entry's timeout, rollback, done_when


class PlannedJob(BaseModel):
    """A job to send, as the run saves it in its plan (what `attach` and `rollback` read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: DeployJob
    wave: str | None = None  # the wave it is deployed in (orchestrator.waves); None: no waves

    @property
    def target(self) -> Target:
        return self.job.target


def new_run_id(now: datetime | None = None) -> str:
    """A fresh run id that sorts by start time, e.g. ``20261129T015900Z-ab12cd``."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{stamp:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def job_id_for(run_id: str, target: Target) -> str:
    """The deterministic id of the job of `target` in run `run_id`."""
    _check_run_id(run_id)
    return _job_id(run_id, target)


def _job_id(run_id: str, target: Target) -> str:
    digest = hashlib.sha1(target.key.encode(), usedforsecurity=False).hexdigest()
    return f"{run_id}:{digest[:_HASH_LENGTH]}"


def plan_jobs(
    spec: Spec,
    run_id: str,
    *,
    timeout_s: float | None = None,
    rollback: bool | None = None,
    region: str | None = None,
    default_region: str | None = None,
    accounts: Mapping[Access, str] | None = None,
    wait: bool = True,
    follow: Follow | None = None,
) -> list[PlannedJob]:
    """One job per target of `spec`, in the order the spec first names them.

    `timeout_s`, `rollback` and `region`, when given, win over the spec (defaults and
    per-entry overrides alike); `default_region` (the environment's) is for entries the spec
    gives none. `accounts` says which account each way in reaches (`orchestrator.identity`);
    without it only a role's account is known. `wait` False (`--no-wait`): a job whose service
    another run is deploying fails at once, changing nothing, instead of waiting for that run
    to finish it. `follow` is how jobs follow when the spec does not say (`Follow.EVENTS` only
    where ECS's events reach the run). Raises ConfigError for a run id that cannot make job ids
    or a non-positive timeout.
    """
    _check_run_id(run_id)
    if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ConfigError(f"timeout must be a positive number of seconds, got {timeout_s!r}")
    # by key and way in: an ARN and a name agree; two ways into one account the spec refused
    services: dict[tuple[str, Access], tuple[Target, Access, list[DeployEntry]]] = {}
    for entry in spec.deploy:
        access = access_of(entry, spec)
        account = accounts[access] if accounts is not None else access.account
        target = Target(
            cluster=entry.cluster,
            service=entry.service,
            region=region or region_of(entry, spec.region) or default_region,
            account=account,
        )
        services.setdefault((target.key, access), (target, access, []))[2].append(entry)
    options: dict[_Overrides, JobOptions] = {}  # one per distinct override
    planned: list[PlannedJob] = []
    for target, access, entries in services.values():
        # the spec refused entries of one service that disagree: the first one set applies
        overrides = (
            next((e.timeout for e in entries if e.timeout is not None), None),
            next((e.rollback for e in entries if e.rollback is not None), None),
            next((e.done_when for e in entries if e.done_when is not None), None),
        )
        if overrides not in options:
            options[overrides] = _options(spec, *overrides, timeout_s, rollback, wait, follow)
        planned.append(_planned(run_id, target, access, entries, options[overrides]))
    return planned


def _planned(
    run_id: str, target: Target, access: Access, entries: list[DeployEntry], options: JobOptions
) -> PlannedJob:
    images: dict[str, str] = {}
    for entry in entries:  # the spec refused one container with two images: keep the first
        images.setdefault(entry.container, entry.reference)
    job = DeployJob(
        run_id=run_id,
        job_id=_job_id(run_id, target),  # the run id was checked once, in plan_jobs
        target=target,
        access=access,
        changes=tuple(ContainerChange(container=name, image=image) for name, image in images.items()),
        options=options,
    )
    return PlannedJob(job=job, wave=entries[0].wave)  # the spec put a service in one wave


def _options(
    spec: Spec,
    entry_timeout: float | None,
    entry_rollback: bool | None,
    entry_done_when: DoneWhen | None,
    timeout_s: float | None,
    rollback: bool | None,
    wait: bool,
    follow: Follow | None = None,
) -> JobOptions:
    poll_min_s = spec.poll_interval
    timeout_given = timeout_s is not None or entry_timeout is not None or "timeout" in spec.model_fields_set
    return JobOptions(
        timeout_s=_first(timeout_s, entry_timeout, spec.timeout),
        extend_for_bake=not timeout_given,
        done_when=_first(entry_done_when, spec.done_when),
        rollback=_first(rollback, entry_rollback, spec.rollback),
        poll_min_s=poll_min_s,
        # Short enough that a heartbeat still comes in time, never below the first wait.
        poll_max_s=max(poll_min_s, min(_POLL_MAX_S, spec.heartbeat / _HEARTBEATS_PER_SILENCE)),
        heartbeat_s=spec.heartbeat,
        api_budget=spec.api_budget,
        keep_revisions=spec.keep_revisions,
        wait_for_target=wait,
        follow=_first(follow, spec.follow),
    )


def _first(*values: _T | None) -> _T:
    return next(value for value in values if value is not None)


def _check_run_id(run_id: str) -> None:
    if not run_id or len(run_id) > _MAX_RUN_ID_LENGTH or not set(run_id) <= _SQS_ID_CHARS:
        raise ConfigError(
            f"invalid run id {run_id!r}: 1 to {_MAX_RUN_ID_LENGTH} ASCII letters, digits or punctuation"
        )
