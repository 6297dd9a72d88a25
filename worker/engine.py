"""The deploy steps of one job: describe, edit, register, update, follow, roll back.

The same code runs inside Lambda and in the orchestrator's local executor. Every step is
reported as a `WorkerEvent`, and every job ends in exactly one terminal phase: nothing is
left half-done silently. Decisions are made by the pure modules (`taskdef`, `rollout`,
`revisions`), the ECS calls themselves live in `ecs_calls`; this module only sequences
them, records each step in the ledger and reports it.

A Lambda invocation lasts at most 900 s, a rollout may last longer: given `hand_over_at`,
`run` stops following before that instant, says so (`Phase.HANDED_OVER`, not terminal) and
gives up its lease, so that a continuation of the job (same job, next delivery) resumes
following the recorded deployment at once; it never registers or updates again.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from worker.aws_errors import aws_failure_message
from worker.budget import ECS_BUCKETS, ApiBudget
from worker.contract import DeployJob, EventDetails, Phase, WorkerEvent
from worker.ecs_calls import JobAborted, Registration, ServiceCalls
from worker.ledger import JobLedger, JobRecord
from worker.publisher import EventPublisher
from worker.reporter import Reporter, rollout_details
from worker.rollout import Rollout, RolloutState, evaluate_rollout

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from types_aiobotocore_ecs import ECSClient

__all__ = ["Deployer", "JobAborted"]

BACKOFF_FACTOR = 1.5
# Jobs started together would poll together: their describe_services answers would be parsed
# in one burst (on one loop, with the local executor), delaying every event behind it, and
# would reach DescribeServices' bucket at once. Each wait is shortened by up to a quarter.
POLL_JITTER = 0.25


class _HandOver(Exception):
    """The next poll would pass the hand-over instant: stop following, a continuation goes on."""

    def __init__(self, details: EventDetails) -> None:
        super().__init__("handing over")
        self.details = details


class Deployer:
    """Runs jobs against one ECS client, one Redis ledger and one publisher."""

    def __init__(
        self,
        ecs: ECSClient,
        ledger: JobLedger,
        publisher: EventPublisher,
        *,
        budget: ApiBudget | None = None,
        allowed_registries: Sequence[str] = (),
        min_lease_s: float = 60.0,
    ) -> None:
        self._calls = ServiceCalls(ecs, budget=budget, allowed_registries=allowed_registries)
        self._ledger = ledger
        self._publisher = publisher
        # How long a silent owner keeps the job before a redelivery may take over.
        self._min_lease_s = min_lease_s

    @classmethod
    def on_redis(
        cls, ecs: ECSClient, redis: Redis, *, scope: str, allowed_registries: Sequence[str] = ()
    ) -> Deployer:
        """A deployer whose ledger, events and throttling budget (ECS's buckets of `scope`, a
        `Target.scope`: one account and region) all live in `redis`: how the local executor and
        the Lambda handler make theirs."""
        return cls(
            ecs,
            JobLedger(redis),
            EventPublisher(redis),
            budget=ApiBudget(redis, scope, ECS_BUCKETS),
            allowed_registries=allowed_registries,
        )

    async def run(self, job: DeployJob, *, hand_over_at: float | None = None) -> Phase | None:
        """Run `job` to a terminal phase; None when another worker owns it (a duplicate).

        A delivery of a job that already ended reports itself (`Phase.DUPLICATE`) and returns
        that end, without taking the job's lease. Duplicates' events never disturb the job's
        sequence: the publisher numbers them after the job's last event.

        With `hand_over_at` (a `time.time()` instant), following stops before the poll that
        would pass it: the job is then `Phase.HANDED_OVER`, its lease released, and the caller
        must deliver its continuation. A rollback of ours is never handed over: it is followed
        until `hand_over_at` at most and reported as unfinished if it runs past it.
        """
        owner = uuid.uuid4().hex
        lease_s = max(self._min_lease_s, 3 * job.options.poll_max_s, 2 * job.options.heartbeat_s)
        record = await self._ledger.acquire(job, owner, lease_s)
        if record is None:
            await self._duplicate(job, "duplicate delivery: another worker is running this job")
            return None
        if record.terminal is not None:  # ended: no lease was taken, nothing to release
            await self._duplicate(job, f"duplicate delivery: job already ended {record.terminal}")
            return record.terminal
        reporter = Reporter(job, self._publisher, self._ledger, owner, lease_s, record.seq, hand_over_at)
        try:
            phase, message, details = await self._drive(job, record, reporter)
        except _HandOver as handing:
            await reporter.emit(
                Phase.HANDED_OVER,
                f"handing over to continuation {job.continuation + 1}: the worker's time is running out",
                handing.details,
            )
            await self._ledger.release(job, owner)  # the continuation may take it at once
            return Phase.HANDED_OVER
        except JobAborted as aborted:
            phase, message, details = aborted.phase, str(aborted), aborted.details
        except (ClientError, BotoCoreError) as exc:
            # Retries are spent (or the call cannot succeed): end the job visibly, saying
            # whether anything may still be moving on the AWS side.
            phase, details = Phase.FAILED, EventDetails()
            message = aws_failure_message(exc, record, await self._ledger.read(job))
        await reporter.emit(phase, message, details)
        await self._ledger.release(job, owner)
        return phase

    async def _duplicate(self, job: DeployJob, message: str) -> None:
        """Report a delivery that does nothing; the publisher gives it the job's next number."""
        await self._publisher.publish(
            WorkerEvent(run_id=job.run_id, job_id=job.job_id, seq=0, phase=Phase.DUPLICATE, message=message)
        )

    async def _drive(
        self, job: DeployJob, record: JobRecord, reporter: Reporter
    ) -> tuple[Phase, str, EventDetails]:
        if record.deployment_id and record.task_definition_arn:
            how = f"continuing (hand-over {job.continuation})" if job.continuation else "resuming"
            await reporter.emit(
                Phase.STARTED,
                f"{how}: following deployment {record.deployment_id}",
                EventDetails(
                    deployment_id=record.deployment_id, task_definition_arn=record.task_definition_arn
                ),
            )
            return await self._follow_and_settle(
                job,
                reporter,
                record.deployment_id,
                record.task_definition_arn,
                record.previous_task_definition_arn,
                record.deadline,
            )
        self._calls.check_registries(job)
        service = await self._calls.describe_service(job)
        await reporter.emit(Phase.STARTED, f"{job.target} runs {service['taskDefinition']}")
        previous = str(service["taskDefinition"])
        if record.task_definition_arn is None and job.revision is not None:
            if previous == job.revision:
                return Phase.SKIPPED, "already on that revision", EventDetails(task_definition_arn=previous)
            new_arn = job.revision
            await self._ledger.record(job, task_definition_arn=new_arn, previous_task_definition_arn=previous)
        elif record.task_definition_arn is None:
            registered = await self._register(job, reporter, previous, record.deadline)
            if registered.arn is None:
                return (
                    Phase.SKIPPED,
                    "already running the target image",
                    EventDetails(task_definition_arn=previous, images=registered.images),
                )
            new_arn = registered.arn
        else:
            new_arn = record.task_definition_arn
            previous = record.previous_task_definition_arn or previous
        deployment_id = await self._calls.update(job, new_arn)
        await self._ledger.record(job, deployment_id=deployment_id)
        await reporter.emit(
            Phase.UPDATED,
            f"deployment {deployment_id} started",
            EventDetails(
                deployment_id=deployment_id,
                task_definition_arn=new_arn,
                previous_task_definition_arn=previous,
            ),
        )
        return await self._follow_and_settle(job, reporter, deployment_id, new_arn, previous, record.deadline)

    async def _register(
        self, job: DeployJob, reporter: Reporter, current_arn: str, deadline: float
    ) -> Registration:
        """Register the edited revision, record and report it (unless nothing needs a change)."""
        registered = await self._calls.register(
            job,
            current_arn,
            deadline,
            heartbeat=lambda: reporter.emit(
                Phase.STARTED, "waiting for ECS to accept RegisterTaskDefinition (throttled)"
            ),
        )
        if registered.arn is None:
            return registered
        new_arn = registered.arn
        await self._ledger.record(job, task_definition_arn=new_arn, previous_task_definition_arn=current_arn)
        changed = ", ".join(f"{name} -> {image}" for name, image in registered.changed.items())
        await reporter.emit(
            Phase.REGISTERED,
            f"registered {new_arn.rsplit('/', 1)[-1]}: {changed}",
            EventDetails(
                task_definition_arn=new_arn,
                previous_task_definition_arn=current_arn,
                images=registered.images,
            ),
        )
        return registered

    async def _follow(
        self,
        job: DeployJob,
        reporter: Reporter,
        deployment_id: str,
        arn: str,
        previous: str | None,
        deadline: float,
        hand_over_at: float | None = None,
    ) -> Rollout | None:
        """Poll until our deployment is terminal; None when the deadline passes first.

        Raises `_HandOver` instead of sleeping past `hand_over_at`.
        """
        wait = job.options.poll_min_s
        last_reported: tuple[int, int, int, int] | None = None
        last_emit = time.monotonic()
        while True:
            now = time.time()
            remaining = deadline - now
            if remaining <= 0:
                return None
            pause = min(wait * random.uniform(1 - POLL_JITTER, 1.0), remaining)
            if hand_over_at is not None and now + pause > hand_over_at:
                raise _HandOver(
                    EventDetails(
                        deployment_id=deployment_id,
                        task_definition_arn=arn,
                        previous_task_definition_arn=previous,
                    )
                )
            await anyio.sleep(pause)
            wait = min(wait * BACKOFF_FACTOR, job.options.poll_max_s)
            service = await self._calls.poll(job)
            if service is None:
                return Rollout(RolloutState.INACTIVE, reason="service disappeared")
            rollout = evaluate_rollout(service, deployment_id, arn)
            if rollout.terminal:
                return rollout
            counts = (rollout.running, rollout.desired, rollout.pending, rollout.failed_tasks)
            # An event on every change, and a heartbeat while nothing moves.
            if counts != last_reported or time.monotonic() - last_emit >= job.options.heartbeat_s / 3:
                last_reported, last_emit = counts, time.monotonic()
                await reporter.emit(
                    Phase.IN_PROGRESS,
                    f"{rollout.running}/{rollout.desired} running, {rollout.pending} pending, "
                    f"{rollout.failed_tasks} failed",
                    rollout_details(rollout, deployment_id, arn, previous),
                )

    async def _follow_and_settle(
        self,
        job: DeployJob,
        reporter: Reporter,
        deployment_id: str,
        arn: str,
        previous: str | None,
        deadline: float,
    ) -> tuple[Phase, str, EventDetails]:
        rollout = await self._follow(
            job, reporter, deployment_id, arn, previous, deadline, reporter.hand_over_at
        )
        if rollout is None:
            details = EventDetails(deployment_id=deployment_id, task_definition_arn=arn)
            note = (
                await self._roll_back(job, reporter, previous) if job.options.rollback else "rollback is off"
            )
            return Phase.TIMED_OUT, f"deadline of {job.options.timeout_s:g}s passed; {note}", details
        details = rollout_details(rollout, deployment_id, arn, previous)
        if rollout.state is RolloutState.COMPLETED:
            message = f"{rollout.running}/{rollout.desired} running {arn.rsplit('/', 1)[-1]}"
            if job.options.keep_revisions is not None and job.changes:
                message += f"; {await self._calls.prune(job, arn, previous)}"
            return Phase.SUCCEEDED, message, details
        if rollout.state is RolloutState.ROLLED_BACK:
            return (
                Phase.ROLLED_BACK,
                f"ECS rolled back to {rollout.primary_task_definition}: {rollout.reason}",
                details,
            )
        if rollout.state is RolloutState.FAILED and job.options.rollback:
            note = await self._roll_back(job, reporter, previous)
            phase = Phase.ROLLED_BACK if note.startswith("rolled back") else Phase.FAILED
            return phase, f"{rollout.reason}; {note}", details
        return Phase.FAILED, rollout.reason or f"rollout ended {rollout.state}", details

    async def _roll_back(self, job: DeployJob, reporter: Reporter, previous: str | None) -> str:
        """Put the previous revision back and follow that; a sentence saying how it went."""
        if previous is None:
            return "no previous revision is known, nothing rolled back"
        await reporter.emit(
            Phase.ROLLING_BACK, f"rolling back to {previous}", EventDetails(task_definition_arn=previous)
        )
        try:
            deployment_id = await self._calls.update(job, previous)
        except JobAborted as exc:
            return f"rollback to {previous} failed: {exc}"
        # The rollback gets its own budget: the job's deadline may already be spent. It is not
        # handed over (a continuation would resume our failed deployment, not the rollback), so
        # it ends, unfinished if need be, before the worker's time does.
        rollback_deadline = time.time() + max(job.options.timeout_s, 60.0)
        if reporter.hand_over_at is not None:
            rollback_deadline = min(rollback_deadline, reporter.hand_over_at)
        rollout = await self._follow(job, reporter, deployment_id, previous, None, rollback_deadline)
        if rollout is not None and rollout.state is RolloutState.COMPLETED:
            return f"rolled back to {previous}"
        state = "did not finish in time" if rollout is None else f"ended {rollout.state}: {rollout.reason}"
        return f"rollback to {previous} (deployment {deployment_id}) {state}"
