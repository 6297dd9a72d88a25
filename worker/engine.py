"""The deploy steps of one job: describe, edit, register, update, follow, roll back.

The same code runs inside Lambda and in the orchestrator's local executor. Every step is
reported as a `WorkerEvent`, and every job ends in exactly one terminal phase: nothing is
left half-done silently. Decisions are made by the pure modules (`taskdef`, `rollout`,
`revisions`, `verdict`), the ECS calls themselves live in `ecs_calls`; this module only
sequences them, records each step in the ledger and reports it.

A job's end is ECS's word: it holds its service against other runs (`target_lease`) from its
first call to its end, every ECS call fits inside its deadline (`patience`), and an end ECS did
not give (a deadline, an AWS error, a crash) is checked with ECS first (`confirm`).

A Lambda invocation lasts at most 900 s: given `hand_over_at`, `run` stops following before
then (`Phase.HANDED_OVER`, not terminal) and gives up its lease; a continuation of the job
resumes following the recorded deployment, never registering or updating again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from worker.beside import beside
from worker.budget import ECS_BUCKETS, ApiBudget
from worker.confirm import after_aws_error, ask_ecs, verdict_after
from worker.contract import ContainerChange, DeployJob, EventDetails, Follow, Phase, WorkerEvent
from worker.deployment_map import remember
from worker.ecs_calls import JobAborted, KnownRevisions, Registration, ServiceCalls
from worker.follow import Followed, HandOver, Parked, follow
from worker.ledger import JobLedger, JobRecord, TargetLeases
from worker.looker import Looker
from worker.outbox import Outbox
from worker.patience import NoAnswer, Patience
from worker.publisher import EventPublisher
from worker.reporter import Reporter, rollout_details
from worker.rollback import after_deadline, revert_by_stop, roll_back
from worker.rollout import Rollout, in_flight
from worker.strategy import bake_total_s
from worker.target_lease import TargetLease
from worker.verdict import Action, Silence, replaced, settle, unanswered
from worker.wakeups import Wakeups
from worker.watch import Watch, open_watch, replaced_or, still_rolling

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from types_aiobotocore_ecs import ECSClient

__all__ = ["Deployer", "JobAborted"]

Step = tuple[Phase, str, EventDetails]


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
        wakeups: Wakeups | None = None,
        known: KnownRevisions | None = None,
    ) -> None:
        self._calls = ServiceCalls(ecs, budget=budget, allowed_registries=allowed_registries, known=known)
        self._ledger = ledger
        self._outbox = Outbox(publisher)  # events wait there while Redis is away
        self._targets = TargetLeases(ledger.redis)  # one deploy of a service at a time, across runs
        # How long a silent owner keeps the job before a redelivery may take over.
        self._min_lease_s = min_lease_s
        self.wakeups = wakeups  # set: ECS's events wake this deployer's followers early
        self.looker: Looker | None = None  # set (`look_together`): its jobs' looks are batched

    def look_together(self) -> Looker:
        """Batch and pace this deployer's jobs' looks (`worker.looker`); its `run` must be served."""
        self.looker = Looker(self._calls)
        return self.looker

    @classmethod
    def on_redis(
        cls,
        ecs: ECSClient,
        redis: Redis,
        *,
        scope: str,
        allowed_registries: Sequence[str] = (),
        known: KnownRevisions | None = None,
    ) -> Deployer:
        """A deployer whose ledger, events and budget (ECS's buckets of `scope`: one account and
        region) live in `redis`, as both executors make theirs; `known`: what preflight read."""
        return cls(
            ecs,
            JobLedger(redis),
            EventPublisher(redis),
            budget=ApiBudget(redis, scope, ECS_BUCKETS),
            allowed_registries=allowed_registries,
            known=known,
        )

    async def run(self, job: DeployJob, *, hand_over_at: float | None = None) -> Phase | None:
        """Run `job` to a terminal phase; None when another worker owns it (a duplicate).

        A delivery of a job that already ended reports itself (`Phase.DUPLICATE`) and returns
        that end, without taking the job's lease. Duplicates' events never disturb the job's
        sequence: the publisher numbers them after the job's last event.

        With `hand_over_at` (a `time.time()` instant), following stops before the poll that
        would pass it (`Phase.HANDED_OVER`): the caller delivers the continuation. A rollback of
        ours is never handed over: past `hand_over_at` it is reported as unfinished.
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
        reporter = Reporter(job, self._outbox, self._ledger, owner, lease_s, record.seq, hand_over_at)
        patience = Patience(reporter, record.deadline, job.options.heartbeat_s / 3)
        target = TargetLease(self._targets, job, owner, lease_s)
        try:
            phase = await beside(
                lambda: target.hold(
                    patience,
                    lambda: self._run_to_end(job, record, patience, target),
                    resuming=record.deployment_id is not None,
                    hand_over_at=hand_over_at,
                ),
                reporter.keep_alive,  # a waiting job is never silent long enough to look lost
            )
        except Parked:  # Lambda: the job waits outside any invocation (`worker.park`)
            await self._ledger.release(job, owner)
            raise
        except HandOver as handing:
            await reporter.emit(
                Phase.HANDED_OVER,
                f"handing over to continuation {job.continuation + 1}: {handing.why}",
                handing.details,
            )
            await self._ledger.release(job, owner)  # the continuation may take it at once
            return Phase.HANDED_OVER
        except JobAborted as refused:  # while waiting for the service: --no-wait, or the deadline
            phase = refused.phase
            await reporter.emit(phase, str(refused), refused.details)
        await self._ledger.release(job, owner)
        return phase

    async def report_crash(self, job: DeployJob, error: BaseException) -> Phase:
        """End a job whose worker died of `error` (escaped from `run`) with ECS's word on what
        its deployment became; the end it had already reported, if any."""
        record = await self._ledger.read(job)
        if record.terminal is not None:
            return record.terminal
        fault = f"the worker crashed ({error!r})"
        verdict, details = await verdict_after(self._calls, self._targets, job, record, fault, cause=fault)
        reporter = Reporter(job, self._outbox, self._ledger, uuid.uuid4().hex, 0.0, record.seq)
        await reporter.emit(verdict.phase, verdict.message, details)
        return verdict.phase

    async def _duplicate(self, job: DeployJob, message: str) -> None:
        """Report a delivery that does nothing; the publisher gives it the job's next number."""
        await self._outbox.send(
            WorkerEvent(run_id=job.run_id, job_id=job.job_id, seq=0, phase=Phase.DUPLICATE, message=message)
        )
        await self._outbox.drain()

    async def _run_to_end(
        self, job: DeployJob, record: JobRecord, patience: Patience, target: TargetLease
    ) -> Phase:
        """Drive the job (holding its service) and report its end before giving the service up."""
        try:
            phase, message, details = await self._drive(job, record, patience, target)
        except JobAborted as aborted:
            phase, message, details = aborted.phase, str(aborted), aborted.details
        except NoAnswer as silent:  # before following: the deadline passed, ECS silent
            now = await self._ledger.read(job)
            phase = Phase.TIMED_OUT
            message = unanswered(
                job.options.timeout_s, silent.silence, now.deployment_id, now.task_definition_arn
            )
            details = EventDetails(
                deployment_id=now.deployment_id, task_definition_arn=now.task_definition_arn
            )
        except (ClientError, BotoCoreError) as exc:
            # Retries are spent (or the call cannot succeed): end the job visibly, with ECS's word
            # on what the job's deployment became when one may have started.
            now = await self._ledger.read(job)
            verdict, details = await after_aws_error(self._calls, self._targets, job, record, now, exc)
            phase, message = verdict.phase, verdict.message
        if self.wakeups is not None and details.deployment_id:  # ECS's event on it, said
            message = self.wakeups.quote(details.deployment_id, message)
        await patience.reporter.emit(phase, message, details)
        return phase

    async def _drive(
        self, job: DeployJob, record: JobRecord, patience: Patience, target: TargetLease
    ) -> Step:
        reporter = patience.reporter
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
                patience,
                target,
                record.deployment_id,
                record.task_definition_arn,
                record.previous_task_definition_arn,
            )
        self._calls.check_registries(job)
        service = await self._calls.describe_service(job, patience, self.looker)
        await reporter.emit(Phase.STARTED, f"{job.target} runs {service['taskDefinition']}")
        previous = str(service["taskDefinition"])
        if record.task_definition_arn is None and job.revision is not None:
            if previous == job.revision:
                return await self._already_there(job, patience, target, service, "already on that revision")
            if (stopped := await revert_by_stop(self._calls, job, service, patience)) is not None:
                return stopped
            new_arn = job.revision
            await self._ledger.record(job, task_definition_arn=new_arn, previous_task_definition_arn=previous)
        elif record.task_definition_arn is None:
            registered = await self._register(job, patience, previous)
            if registered.arn is None:
                return await self._already_there(
                    job, patience, target, service, "already running the target image", registered.images
                )
            new_arn = registered.arn
        else:
            new_arn = record.task_definition_arn
            previous = record.previous_task_definition_arn or previous
        deployment_id = await self._calls.update(job, new_arn, patience)
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
        return await self._follow_and_settle(job, patience, target, deployment_id, new_arn, previous)

    async def _already_there(
        self,
        job: DeployJob,
        patience: Patience,
        target: TargetLease,
        service: dict[str, object],
        said: str,
        images: tuple[ContainerChange, ...] = (),
    ) -> Step:
        """The service already has the job's revision: `skipped`, unless ECS is still rolling
        that revision out (it may yet fail): then that deployment is the job's, followed to its end."""
        flight = in_flight(service) or await still_rolling(self._calls, job, service, patience)
        if flight is None:
            skipped = EventDetails(task_definition_arn=str(service["taskDefinition"]), images=images)
            return Phase.SKIPPED, said, skipped
        await self._ledger.record(
            job, task_definition_arn=flight.task_definition, deployment_id=flight.deployment_id
        )
        if flight.replacing is not None:
            await self._ledger.record(job, previous_task_definition_arn=flight.replacing)
        await patience.reporter.emit(
            Phase.STARTED,
            f"{said}, but ECS is still rolling it out: following deployment {flight.deployment_id}",
            EventDetails(
                deployment_id=flight.deployment_id,
                task_definition_arn=flight.task_definition,
                previous_task_definition_arn=flight.replacing,
                images=images,
            ),
        )
        return await self._follow_and_settle(
            job, patience, target, flight.deployment_id, flight.task_definition, flight.replacing
        )

    async def _register(self, job: DeployJob, patience: Patience, current_arn: str) -> Registration:
        """Register the edited revision, record and report it (unless nothing needs a change)."""
        reporter = patience.reporter
        registered = await self._calls.register(
            job,
            current_arn,
            patience.deadline,
            heartbeat=lambda: reporter.emit(
                Phase.STARTED, "waiting for ECS to accept RegisterTaskDefinition (throttled)"
            ),
            patience=patience,
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

    async def _follow_and_settle(
        self,
        job: DeployJob,
        patience: Patience,
        target: TargetLease,
        deployment_id: str,
        arn: str,
        previous: str | None,
    ) -> Step:
        watch, patience = await self._watch(job, patience, deployment_id, arn, previous)
        followed = await follow(watch, patience.at(Phase.IN_PROGRESS), patience.reporter.hand_over_at)
        rollout, after = followed.rollout, None
        if rollout is None and followed.silence is None:  # the deadline, ECS answering: its word now
            sd_arn = watch.service_deployment_arn
            now = await ask_ecs(
                self._calls, job, deployment_id, arn, service_deployment_arn=sd_arn, previous=previous
            )
            if isinstance(now, Rollout) and now.terminal:
                rollout, after = now, "the deadline passed"
            else:
                last_seen = now if isinstance(now, Rollout) else followed.last_seen
                followed = Followed(None, last_seen, now if isinstance(now, Silence) else None)
        if rollout is None:
            message, details = await after_deadline(watch, patience, followed)
            return Phase.TIMED_OUT, message, details
        rollout = await replaced_or(self._calls, job, rollout, deployment_id, arn)
        verdict = settle(
            rollout,
            deployment_id,
            arn,
            rollback=job.options.rollback,
            prune=job.options.keep_revisions is not None and bool(job.changes),
            replaced_by=await target.replacer() if replaced(rollout, previous) else None,
            confirmed_after=after,
        )
        details = rollout_details(rollout, deployment_id, arn, previous)
        if verdict.action is Action.ROLL_BACK:
            note = await roll_back(watch, patience, stoppable=False)
            phase = Phase.ROLLED_BACK if note.startswith("rolled back") else Phase.FAILED
            return phase, f"{verdict.message}; {note}", details
        if verdict.action is Action.PRUNE:
            return verdict.phase, f"{verdict.message}; {await self._calls.prune(job, arn, previous)}", details
        return verdict.phase, verdict.message, details

    async def _watch(
        self, job: DeployJob, patience: Patience, deployment_id: str, arn: str, previous: str | None
    ) -> tuple[Watch, Patience]:
        """The job's watch on its deployment (recorded, and said), and its patience: with a
        default timeout, the deadline also holds the bake times the service deployment has."""
        if job.options.follow is Follow.EVENTS:  # ECS's events on it find this job
            parked = self.wakeups is not None and self.wakeups.parks
            await remember(self._ledger.redis, job, deployment_id, parked=parked)
        record = await self._ledger.read(job)
        known = record.service_deployment_arn if record.deployment_id == deployment_id else None
        watch = await open_watch(
            self._calls, job, patience, deployment_id, arn, previous, known, self.wakeups, self.looker
        )
        sd_arn = watch.service_deployment_arn
        if sd_arn is None:
            said = f"following deployment {deployment_id} by its rolloutState: {watch.note}"
        else:
            said = f"following ECS's service deployment {sd_arn.rsplit('/', 1)[-1]}"
        if known is None:
            await self._ledger.record(job, service_deployment_arn=sd_arn or "")
            await patience.reporter.emit(
                Phase.IN_PROGRESS,
                said,
                EventDetails(
                    deployment_id=deployment_id,
                    task_definition_arn=arn,
                    previous_task_definition_arn=previous,
                    following="rollout_state" if sd_arn is None else "service_deployment",
                    service_deployment_arn=sd_arn,
                ),
            )
        if sd_arn is None or not job.options.extend_for_bake or record.bake_extended:
            return watch, patience
        sd = await watch.ask(patience)  # with the looker: batched with the other jobs' looks
        extra = bake_total_s((sd or {}).get("deploymentConfiguration") or {})
        if extra <= 0:
            return watch, patience
        deadline = patience.deadline + extra
        await self._ledger.record(job, deadline=repr(deadline), bake_extended="1")
        return watch, patience.at(deadline=deadline)
