"""Putting services back: `rollback RUN_ID` and `--all-or-nothing`.

A revert is an ordinary run whose jobs name an existing revision instead of images: the
revision each service ran before the original run changed it, as the job ledger recorded it.
It goes through the same workers, events and output as any run, so it is just as observable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import cast

import anyio
from redis.asyncio import Redis

from orchestrator.errors import ConfigError
from orchestrator.plan import PlannedJob, job_id_for, new_run_id
from orchestrator.run import load_plan
from worker.contract import DeployJob
from worker.keys import job_hash
from worker.publisher import connect_redis

__all__ = ["load_reverts", "put_back", "revert_jobs"]


def _revert(planned: PlannedJob, previous: str, run_id: str, region: str | None) -> PlannedJob:
    job = planned.job
    target = job.target
    if target.region is None and region is not None:  # the run used the default region
        target = target.model_copy(update={"region": region})
    return PlannedJob(
        job=DeployJob(
            run_id=run_id,
            job_id=job_id_for(run_id, target),
            target=target,
            access=job.access,  # the same way into the same account as the run that changed it
            revision=previous,
            # Never "roll back the rollback": a failed revert is reported as it is.
            options=job.options.model_copy(update={"rollback": False}),
        )
    )


async def revert_jobs(
    redis: Redis,
    past_run_id: str,
    run_id: str,
    *,
    only: Iterable[str] | None = None,
    region: str | None = None,
) -> list[PlannedJob]:
    """Jobs that put back every service `past_run_id` changed (or only the job ids in `only`);
    `region` for targets the run recorded without one."""
    planned = await load_plan(redis, past_run_id)
    if planned is None:
        raise ConfigError(f"run {past_run_id!r} is unknown to this Redis (or older than its records)")
    wanted = set(only) if only is not None else None
    reverts = []
    for job in planned:
        if wanted is not None and job.job.job_id not in wanted:
            continue
        raw = cast("dict[bytes, bytes]", await redis.hgetall(job_hash(past_run_id, job.job.job_id)))
        previous = raw.get(b"previous_task_definition_arn")
        if previous is not None:  # never changed: nothing to put back
            reverts.append(_revert(job, previous.decode(), run_id, region))
    return reverts


def load_reverts(
    redis_url: str, past_run_id: str, run_id: str, region: str | None = None
) -> list[PlannedJob]:
    """`revert_jobs` from synchronous code (the CLI, between two runs)."""

    async def load() -> list[PlannedJob]:
        redis = connect_redis(redis_url)
        try:
            return await revert_jobs(redis, past_run_id, run_id, region=region)
        finally:
            await redis.aclose()

    return anyio.run(load)


def put_back(session: Callable[[list[PlannedJob], str], int], redis_url: str, run_id: str) -> None:
    """`--all-or-nothing`: a run (`session`: jobs, run id -> exit code) that puts every service
    `run_id` changed back, in every wave."""
    revert_run_id = new_run_id()
    print(
        f"ecs-fanout: --all-or-nothing: not every target succeeded; run {revert_run_id} puts back "
        f"every service run {run_id} changed",
        file=sys.stderr,
    )
    session(load_reverts(redis_url, run_id, revert_run_id), revert_run_id)
