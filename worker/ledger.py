"""Idempotency: which worker owns a job, and how far the job got.

SQS and Lambda's event-source mappings deliver at least once, so the same job can reach two
workers. A worker must hold the job's lease (SET NX PX, renewed while it works) to act on it,
and records each step in the job's hash before going on. A later delivery therefore either
finds the job ended (report the duplicate and stop, without taking the lease: nobody has
anything left to do), finds the lease held (another worker is on it: report the duplicate
and stop) or takes over from the recorded step: follow the recorded deployment, never
register or update again.
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
# KEYS: lease, job hash. ARGV: owner, lease ms, deadline, hash ttl ms.
# Returns the job's hash (HGETALL), or nil when another worker holds the lease. A job that already
# ended is answered without taking its lease: a duplicate delivery of it must not hold the job
# (every later delivery would be told "another worker is running it"). One script, so that
# "ended" and "leased" are read together: a job ending meanwhile cannot slip between them.
_ACQUIRE_LUA = """
if redis.call('HEXISTS', KEYS[2], 'terminal') == 1 then
  return redis.call('HGETALL', KEYS[2])
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return nil
end
redis.call('HSETNX', KEYS[2], 'deadline', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return redis.call('HGETALL', KEYS[2])
"""


@dataclass(frozen=True)
class JobRecord:
    """What the ledger knows of a job when a worker takes it."""

    seq: int = 0
    deadline: float = 0.0
    task_definition_arn: str | None = None
    previous_task_definition_arn: str | None = None
    deployment_id: str | None = None
    terminal: Phase | None = None  # set: the job ended, and its reader holds no lease

    @property
    def fresh(self) -> bool:
        return self.task_definition_arn is None and self.terminal is None


def _text(raw: dict[bytes, bytes], name: str) -> str | None:
    value = raw.get(name.encode())
    return value.decode() if value is not None else None


def _record(raw: dict[bytes, bytes]) -> JobRecord:
    terminal = _text(raw, "terminal")
    return JobRecord(
        seq=int(_text(raw, "seq") or 0),
        deadline=float(_text(raw, "deadline") or 0),
        task_definition_arn=_text(raw, "task_definition_arn"),
        previous_task_definition_arn=_text(raw, "previous_task_definition_arn"),
        deployment_id=_text(raw, "deployment_id"),
        terminal=Phase(terminal) if terminal else None,
    )


class JobLedger:
    def __init__(self, redis: Redis, *, ttl_s: float = 7 * 24 * 3600) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_s * 1000)
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._acquire = redis.register_script(_ACQUIRE_LUA)

    async def acquire(self, job: DeployJob, owner: str, lease_s: float) -> JobRecord | None:
        """Take the job's lease and read its record; None when another live worker holds it.

        A job that already ended is read without taking its lease (`terminal` set): there is
        nothing to do and nothing to release afterwards.
        """
        answer = await self._acquire(
            keys=[job_lease(job.run_id, job.job_id), job_hash(job.run_id, job.job_id)],
            # The deadline is fixed by the first delivery: a hand-over must not extend it.
            args=[owner, int(lease_s * 1000), repr(time.time() + job.options.timeout_s), self._ttl_ms],
        )
        if answer is None:
            return None
        flat = cast("list[bytes]", answer)
        return _record(dict(zip(flat[::2], flat[1::2], strict=True)))

    async def read(self, job: DeployJob) -> JobRecord:
        """The job's record as it is now, lease or not (e.g. to tell how far a failed job got)."""
        raw = cast("dict[bytes, bytes]", await self._redis.hgetall(job_hash(job.run_id, job.job_id)))
        return _record(raw)

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
