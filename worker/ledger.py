"""Idempotency: which worker owns a job, and how far the job got.

SQS and Lambda's event-source mappings deliver at least once, so the same job can reach two
workers. A worker must hold the job's lease (SET NX PX, renewed while it works) to act on it,
and records each step in the job's hash before going on. A later delivery therefore either
finds the job ended (report the duplicate and stop, without taking the lease: nobody has
anything left to do), finds the lease held (another worker is on it: report the duplicate
and stop) or takes over from the recorded step: follow the recorded deployment, never
register or update again.

Redis may go away while a job runs (a crash, a failover) and come back, with or without what it
had. The ledger keeps, per job it holds, what it wrote (and read when it took the job) and
writes all of it with every write: a write that failed while Redis was away is made again with
the next one, and a Redis that came back empty gets the whole record back. Taking a job waits
for Redis (for a while: nobody may act on a job without its lease); renewing and releasing the
lease never fail the job (a lease Redis lost is taken again at the next renewal, unless the job
ended meanwhile); the terminal phase waits for Redis (the Reporter says how long).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from worker.contract import DeployJob, Phase
from worker.keys import job_hash, job_lease, target_lease
from worker.redis_outage import REDIS_DOWN, retry_while_down

__all__ = ["ACQUIRE_PATIENCE_S", "JobLedger", "JobRecord", "TargetHolder", "TargetLeases"]

log = logging.getLogger(__name__)

ACQUIRE_PATIENCE_S = 60.0  # how long taking a job waits for Redis before the delivery fails

# KEYS: lease, job hash. ARGV: owner, lease ms.
# Renew (PEXPIRE) only if we still own the lease: a worker that stalled past its lease must
# not take the job back from the one that took over. A lease nobody holds (it expired, or a
# restarted Redis lost it) is taken again, unless the job ended meanwhile.
_RENEW_LUA = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not owner and redis.call('HEXISTS', KEYS[2], 'terminal') == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# KEYS: job hash. ARGV: ttl ms, then field, value, field, value...
_RECORD_LUA = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# KEYS: lease, job hash. ARGV: owner, lease ms, deadline, hash ttl ms.
# Returns the job's hash (HGETALL), or nil when another worker holds the lease (a lease of our own
# owner id is ours: a retry after a lost answer must not find itself a rival). A job that already
# ended is answered without taking its lease: a duplicate delivery of it must not hold the job
# (every later delivery would be told "another worker is running it"). One script, so that
# "ended" and "leased" are read together: a job ending meanwhile cannot slip between them.
_ACQUIRE_LUA = """
if redis.call('HEXISTS', KEYS[2], 'terminal') == 1 then
  return redis.call('HGETALL', KEYS[2])
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return nil
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
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
    service_deployment_arn: str | None = None  # ECS's service deployment of `deployment_id`
    bake_extended: bool = False  # the deadline already holds the service's bake times
    terminal: Phase | None = None  # set: the job ended, and its reader holds no lease

    @property
    def fresh(self) -> bool:
        return self.task_definition_arn is None and self.terminal is None


def _text(raw: dict[bytes, bytes], name: str) -> str | None:
    value = raw.get(name.encode())
    return value.decode() if value is not None else None


def _written(raw: dict[bytes, bytes]) -> dict[str, str]:
    """The fields of a job's hash the ledger writes (`seq` is the publisher's)."""
    return {key.decode(): value.decode() for key, value in raw.items() if key != b"seq"}


def _record(raw: dict[bytes, bytes]) -> JobRecord:
    terminal = _text(raw, "terminal")
    return JobRecord(
        seq=int(_text(raw, "seq") or 0),
        deadline=float(_text(raw, "deadline") or 0),
        task_definition_arn=_text(raw, "task_definition_arn"),
        previous_task_definition_arn=_text(raw, "previous_task_definition_arn"),
        deployment_id=_text(raw, "deployment_id"),
        service_deployment_arn=_text(raw, "service_deployment_arn") or None,
        bake_extended=_text(raw, "bake_extended") == "1",
        terminal=Phase(terminal) if terminal else None,
    )


class JobLedger:
    def __init__(self, redis: Redis, *, ttl_s: float = 7 * 24 * 3600) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl_s * 1000)
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)
        self._acquire = redis.register_script(_ACQUIRE_LUA)
        self._record = redis.register_script(_RECORD_LUA)
        self._known: dict[str, dict[str, str]] = {}  # job hash key -> its fields, as we wrote them

    async def acquire(self, job: DeployJob, owner: str, lease_s: float) -> JobRecord | None:
        """Take the job's lease and read its record; None when another live worker holds it.

        A job that already ended is read without taking its lease (`terminal` set): there is
        nothing to do and nothing to release afterwards. Waits for a Redis that is away for up
        to `ACQUIRE_PATIENCE_S`, then raises its error.
        """

        async def take() -> object:
            return await self._acquire(
                keys=[job_lease(job.run_id, job.job_id), job_hash(job.run_id, job.job_id)],
                # The deadline is fixed by the first delivery: a hand-over must not extend it.
                args=[owner, int(lease_s * 1000), repr(time.time() + job.options.timeout_s), self._ttl_ms],
            )

        answer = await retry_while_down(take, patience_s=ACQUIRE_PATIENCE_S, what=f"take job {job.job_id}")
        if answer is None:
            return None
        flat = cast("list[bytes]", answer)
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        record = _record(raw)
        if record.terminal is None:  # ours now: remember what the record holds
            self._known[job_hash(job.run_id, job.job_id)] = _written(raw)
        return record

    async def read(self, job: DeployJob) -> JobRecord:
        """The job's record as it is now, lease or not (e.g. to tell how far a failed job got);
        while Redis is away, what this ledger wrote of it."""
        key = job_hash(job.run_id, job.job_id)
        try:
            raw = cast("dict[bytes, bytes]", await self._redis.hgetall(key))
        except REDIS_DOWN:
            raw = {k.encode(): v.encode() for k, v in self._known.get(key, {}).items()}
        return _record(raw)

    async def renew(self, job: DeployJob, owner: str, lease_s: float) -> bool:
        """Keep the lease; False when it is another's, the job ended, or Redis is away."""
        try:
            renewed = await self._renew(
                keys=[job_lease(job.run_id, job.job_id), job_hash(job.run_id, job.job_id)],
                args=[owner, int(lease_s * 1000)],
            )
        except REDIS_DOWN as exc:
            log.debug("lease of %s not renewed, Redis is unreachable (%s)", job.job_id, exc)
            return False
        return bool(renewed)

    async def record(self, job: DeployJob, *, wait_s: float = 0.0, **fields: str) -> None:
        """Record steps of the job. While Redis is away they are kept and written with the
        job's next write; given `wait_s`, this write waits that long for Redis."""
        key = job_hash(job.run_id, job.job_id)
        known = self._known.setdefault(key, {})
        known.update(fields)
        flat = [part for pair in known.items() for part in pair]

        async def write() -> object:
            return await self._record(keys=[key], args=[self._ttl_ms, *flat])

        try:
            await retry_while_down(write, patience_s=wait_s, what=f"record job {job.job_id}")
        except REDIS_DOWN as exc:
            level = logging.WARNING if wait_s else logging.INFO
            log.log(
                level,
                "job %s: %s not recorded yet, Redis is unreachable (%s)",
                job.job_id,
                sorted(fields),
                exc,
            )

    async def release(self, job: DeployJob, owner: str) -> None:
        """Give the lease up at once (a terminal phase is recorded; nobody needs to wait).
        While Redis is away the lease is left to expire."""
        self._known.pop(job_hash(job.run_id, job.job_id), None)
        try:
            await self._release(keys=[job_lease(job.run_id, job.job_id)], args=[owner])
        except REDIS_DOWN as exc:
            log.info("lease of %s left to expire, Redis is unreachable (%s)", job.job_id, exc)

    @property
    def redis(self) -> Redis:
        """The Redis this ledger lives in (the per-target leases live there too)."""
        return self._redis


# --- one deploy of a service at a time, across runs -------------------------------------------

# The target's lease holds "RUN_ID JOB_ID OWNER" (ids have no spaces). KEYS: the target's lease.
# ARGV: our value, the job's prefix of it ("RUN_ID JOB_ID "), lease ms. Returns the holder's value
# after the call: ours when we hold it now. The same job (a redelivery, a continuation) takes it
# over from an owner of its own that died or handed over: the job's own lease makes it the only one.
_TAKE_TARGET_LUA = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, string.len(ARGV[2])) ~= ARGV[2] then
  return held
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[1]
"""
# KEYS: the target's lease. ARGV: our value, lease ms. 1 while ours. A lease nobody holds (it
# expired, or a Redis restarted without its data lost it) is ours again: nobody else deploys it.
_RENEW_TARGET_LUA = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class TargetHolder:
    """Who deploys a service now: a job of some run (the value of the target's lease)."""

    run_id: str
    job_id: str
    owner: str

    @classmethod
    def of(cls, job: DeployJob, owner: str) -> TargetHolder:
        return cls(job.run_id, job.job_id, owner)

    @classmethod
    def parse(cls, value: bytes | str) -> TargetHolder:
        text = value.decode() if isinstance(value, bytes) else value
        run_id, job_id, owner = [*text.split(" ", 2), "", ""][:3]
        return cls(run_id, job_id, owner)

    @property
    def value(self) -> str:
        return f"{self.run_id} {self.job_id} {self.owner}"


class TargetLeases:
    """The per-target lease (`worker.keys.target_lease`): SET NX PX, renewed by its owner,
    released by its owner only (Lua checks), like a job's lease but shared by every run."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE_TARGET_LUA)
        self._renew = redis.register_script(_RENEW_TARGET_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    async def take(self, job: DeployJob, owner: str, lease_s: float) -> TargetHolder:
        """Take the target's lease for `job` (from nobody, or from an earlier owner of the same
        job); the holder after the call: ours, or the job of another run that deploys it now."""
        mine = TargetHolder.of(job, owner)

        async def take() -> object:
            return await self._take(
                keys=[target_lease(job.target.key)],
                args=[mine.value, f"{job.run_id} {job.job_id} ", int(lease_s * 1000)],
            )

        answer = await retry_while_down(take, patience_s=ACQUIRE_PATIENCE_S, what=f"take {job.target}")
        return TargetHolder.parse(cast("bytes | str", answer))

    async def renew(self, job: DeployJob, owner: str, lease_s: float) -> bool:
        """Keep it; False when it is not ours any more or Redis is away."""
        try:
            renewed = await self._renew(
                keys=[target_lease(job.target.key)],
                args=[TargetHolder.of(job, owner).value, int(lease_s * 1000)],
            )
        except REDIS_DOWN as exc:
            log.debug("lease of %s not renewed, Redis is unreachable (%s)", job.target, exc)
            return False
        return bool(renewed)

    async def release(self, job: DeployJob, owner: str) -> None:
        """Give it up (ours only); while Redis is away it is left to expire."""
        try:
            await self._release(keys=[target_lease(job.target.key)], args=[TargetHolder.of(job, owner).value])
        except REDIS_DOWN as exc:
            log.info("lease of %s left to expire, Redis is unreachable (%s)", job.target, exc)

    async def holder(self, job: DeployJob) -> TargetHolder | None:
        """Who holds the target's lease now (None: nobody, or Redis cannot say)."""
        try:
            value = await self._redis.get(target_lease(job.target.key))
        except REDIS_DOWN:
            return None
        return None if value is None else TargetHolder.parse(value)
