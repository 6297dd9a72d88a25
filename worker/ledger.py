"""Idempotency: which worker owns a job, and how far the job got.

SQS and Lambda's event-source mappings deliver at least once, so the same job can reach two
workers. A worker must hold the job's lease (SET NX PX, renewed while it works) to act on it,
and records each step in the job's hash before going on. A later delivery therefore either
finds the lease held (another worker is on it: report the duplicate and stop) or takes over
from the recorded step: follow the recorded deployment, never register or update again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from worker.contract import DeployJob, Phase
from worker.keys import job_hash, job_lease

__all__ = ["JobLedger", "JobRecord"]

# Renew (PEXPIRE) only if we still own the lease: a worker that stalled past its lease must
# not take the job back from the one that took over.
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class JobRecord:
    """What the ledger knows of a job when a worker takes it."""

    seq: int = 0
    deadline: float = 0.0
    task_definition_arn: str | None = None
    previous_task_definition_arn: str | None = None
    deployment_id: str | None = None
    terminal: Phase | None = None

    @property
    def fresh(self) -> bool:
        return self.task_definition_arn is None and self.terminal is None


def _text(raw: dict[bytes, bytes], name: str) -> str | None:
    value = raw.get(name.encode())
    return value.decode() if value is not None else None


class JobLedger:
    def __init__(self, redis: Redis, *, ttl_s: float = 7 * 24 * 3600) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_s * 1000)
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    async def acquire(self, job: DeployJob, owner: str, lease_s: float) -> JobRecord | None:
        """Take the job's lease; None when another live worker holds it."""
        lease = job_lease(job.run_id, job.job_id)
        if not await self._redis.set(lease, owner, nx=True, px=int(lease_s * 1000)):
            return None
        key = job_hash(job.run_id, job.job_id)
        # The deadline is fixed by the first delivery: a hand-over must not extend it.
        await self._redis.hsetnx(key, "deadline", repr(time.time() + job.options.timeout_s))
        await self._redis.pexpire(key, self._ttl_ms)
        raw = cast("dict[bytes, bytes]", await self._redis.hgetall(key))
        terminal = _text(raw, "terminal")
        return JobRecord(
            seq=int(_text(raw, "seq") or 0),
            deadline=float(_text(raw, "deadline") or 0),
            task_definition_arn=_text(raw, "task_definition_arn"),
            previous_task_definition_arn=_text(raw, "previous_task_definition_arn"),
            deployment_id=_text(raw, "deployment_id"),
            terminal=Phase(terminal) if terminal else None,
        )

    async def renew(self, job: DeployJob, owner: str, lease_s: float) -> bool:
        renewed = await self._renew(
            keys=[job_lease(job.run_id, job.job_id)], args=[owner, int(lease_s * 1000)]
        )
        return bool(renewed)

    async def record(self, job: DeployJob, **fields: str) -> None:
        await self._redis.hset(job_hash(job.run_id, job.job_id), mapping=cast("dict[Any, Any]", fields))

    async def release(self, job: DeployJob, owner: str) -> None:
        """Give the lease up at once (a terminal phase is recorded; nobody needs to wait)."""
        await self._release(keys=[job_lease(job.run_id, job.job_id)], args=[owner])
