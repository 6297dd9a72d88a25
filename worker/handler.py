"""The Lambda entry point: one SQS FIFO batch in, the records to deliver again out.

Why a module of its own: the deploy itself is the `Deployer` the local executor runs; what
Lambda adds is the queue's rules. Records of one message group (one service) run in order,
groups run side by side. A record whose processing raised is reported in `batchItemFailures`,
and on a FIFO queue so is every record after it in the batch (AWS's rule; the ledger makes the
redelivery harmless). A malformed record goes to the dead-letter queue at once instead of
blocking its group for `maxReceiveCount` deliveries. A job still following its rollout when
the invocation's time runs out is handed over: its continuation (the same job, `continuation
+ 1`) is sent to the back of its group and resumes following; it never deploys twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError
from redis.asyncio import Redis

from worker.access import Access
from worker.aws import AwsAccess
from worker.contract import DeployJob, Follow, Phase, WorkerEvent, dedup_id, group_id, job_from_message
from worker.credentials import Clients
from worker.deployment_map import first_sight, owner_of
from worker.ecs_events import is_envelope, parse_deployment_change
from worker.engine import Deployer
from worker.park import ParkingWakeups, TimerMessage, is_timer, resume, run_parked
from worker.publisher import EventPublisher, connect_redis
from worker.settings import WorkerSettings

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

__all__ = [
    "MALFORMED_SEQ",
    "Handler",
    "Record",
    "batch_item_failures",
    "hand_over_at",
    "handler",
    "make_handler",
    "ordered_groups",
    "recover_ids",
    "safety_margin_s",
]

log = logging.getLogger(__name__)

Record = dict[str, Any]  # one SQS record of a Lambda event
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]  # (event, context) -> response

SAFETY_MARGIN_S = 10.0  # to publish the hand-over and send the continuation, with room to spare
PER_RECORD_MARGIN_S = 0.5  # each record of the batch may have to hand over
MAX_MARGIN_SHARE = 0.25  # a short invocation keeps at least 3/4 of its time for work
DEFAULT_REMAINING_MS = 900_000  # Lambda's maximum, when called without a context
MALFORMED_SEQ = 1 << 40  # above any real job's sequence: the verdict on a malformed job is final
ERRORS_SHOWN = 3


# --- pure -------------------------------------------------------------------------------------


def safety_margin_s(remaining_s: float, records: int) -> float:
    """How long before the invocation's end the jobs must have handed over."""
    return min(SAFETY_MARGIN_S + PER_RECORD_MARGIN_S * records, remaining_s * MAX_MARGIN_SHARE)


def hand_over_at(now: float, remaining_s: float, records: int) -> float:
    return now + remaining_s - safety_margin_s(remaining_s, records)


def batch_item_failures(message_ids: Sequence[str], failed: Collection[str]) -> list[dict[str, str]]:
    """The response entries: the first failed record and every record after it (FIFO)."""
    first = next((i for i, message_id in enumerate(message_ids) if message_id in failed), None)
    if first is None:
        return []
    return [{"itemIdentifier": message_id} for message_id in message_ids[first:]]


def ordered_groups(records: Sequence[Record]) -> list[list[int]]:
    """Record indices per message group, in batch order; without a group a record is alone."""
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        group = (record.get("attributes") or {}).get("MessageGroupId")
        groups.setdefault(f"g:{group}" if group else f"m:{index}", []).append(index)
    return list(groups.values())


def recover_ids(body: object) -> tuple[str, str] | None:
    """(run_id, job_id) of a malformed job body when they can still be read from it."""
    try:
        data = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    run_id, job_id = data.get("run_id"), data.get("job_id")
    if isinstance(run_id, str) and run_id and isinstance(job_id, str) and job_id:
        return run_id, job_id
    return None


def _queue_of(arn: str) -> tuple[str, str, str]:
    """(region, account, name) of an SQS queue ARN."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return parts[3], parts[4], parts[5]


def _summary(exc: ValidationError) -> str:
    """The validation errors without the input values: short, and the log needs no body."""
    errors = exc.errors(include_input=False, include_url=False)
    shown = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors[:ERRORS_SHOWN])
    more = f" (+{len(errors) - ERRORS_SHOWN} more)" if len(errors) > ERRORS_SHOWN else ""
    return f"{shown}{more}"


async def _send(sqs: SQSClient, queue_url: str, body: str, group: str, dedup: str) -> None:
    """Send `body`; a FIFO queue needs the group and deduplication ids, a standard one refuses them."""
    if queue_url.endswith(".fifo"):
        await sqs.send_message(
            QueueUrl=queue_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup
        )
    else:
        await sqs.send_message(QueueUrl=queue_url, MessageBody=body)


# --- I/O --------------------------------------------------------------------------------------


class _Batch:
    """What one invocation shares between its records: Redis, clients, queue URLs."""

    def __init__(self, hand_over_at: float, settings: WorkerSettings, aws: AwsAccess) -> None:
        self.hand_over_at = hand_over_at
        self._settings = settings
        self._aws = aws
        self._stack = AsyncExitStack()
        self._lock = anyio.Lock()
        self._redis: Redis | None = None
        self._deployers: dict[tuple[str, Access], Deployer] = {}
        self._clients: Clients | None = None
        self._sqs: dict[str, SQSClient] = {}
        self._urls: dict[str, str] = {}  # queue ARN -> URL
        self._dlqs: dict[str, str | None] = {}  # source queue ARN -> DLQ URL
        self._timer_arn = settings.timer_queue_arn

    async def __aenter__(self) -> _Batch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._stack.aclose()
        finally:
            if self._redis is not None:
                await self._redis.aclose()

    async def warm_up(self, source_arn: str) -> None:
        """Make the SQS client and resolve the queue's URL while the jobs run, so that a hand-over
        near the invocation's end costs one SendMessage, not a client's set-up as well."""
        try:
            await self._queue_url(source_arn)
        except Exception:  # only a head start: the hand-over makes the same calls again if need be
            log.warning("could not prepare hand-overs to %s", source_arn, exc_info=True)

    async def process(self, record: Record) -> None:
        """Handle one record; raises when SQS must deliver it again."""
        if is_envelope(record["body"]) or is_timer(record["body"]):
            if is_timer(record["body"]) and self._timer_arn is None:  # set by an earlier run: keep on
                self._timer_arn = str(record["eventSourceARN"])
            await self._resume(record["body"])  # ECS's event, or a parked job's timer
            return
        try:
            job = job_from_message(record["body"])
        except ValidationError as exc:
            await self._reject(record, _summary(exc))
            return
        if time.time() >= self.hand_over_at:  # no time left even to start: pass it on untouched
            await self._continue(record, job)
            return
        if self._parks(job):
            deployer, wakeups = await self._parking(job)
            phase = await run_parked(deployer, wakeups, job, self.hand_over_at, self._send_timer)
        else:
            phase = await (await self._deployer(job)).run(job, hand_over_at=self.hand_over_at)
        log.info("record %s: job %s %s", record["messageId"], job.job_id, phase or "owned elsewhere")
        if phase is Phase.HANDED_OVER:
            await self._continue(record, job)

    def _parks(self, job: DeployJob) -> bool:
        return self._timer_arn is not None and job.options.follow is Follow.EVENTS

    async def _parking(self, job: DeployJob) -> tuple[Deployer, ParkingWakeups]:
        """A deployer of its own for a job that parks (`worker.park`): its wakeups are its."""
        region = job.target.region or self._settings.region
        scope = job.target.model_copy(update={"region": region}).scope
        async with self._lock:
            if self._clients is None:
                self._clients = Clients(self._stack, self._aws, job.run_id)
            ecs = await self._clients.get("ecs", region, job.access)
        redis = self._redis_client()
        deployer = Deployer.on_redis(
            ecs, redis, scope=scope, allowed_registries=self._settings.allowed_registries
        )
        deployer.wakeups = wakeups = ParkingWakeups(redis, job)
        return deployer, wakeups

    async def _resume(self, body: str) -> None:
        """Resume the parked job ECS's event names (once per event), or whose timer this is."""
        redis = self._redis_client()
        if is_timer(body):
            timer = TimerMessage.model_validate_json(body)
            job, deployment_id, said, due = timer.job, timer.deployment_id, "", timer.due
        else:
            change = parse_deployment_change(body)
            if change is None or change.end is None:
                return  # not about a deployment's end
            owner = await owner_of(redis, change.deployment_id)
            if owner is None or not owner.parked or not self._parks(owner.job):
                return  # nobody's we know, or a job that follows in its own process (the local feed's)
            if not await first_sight(redis, change.event_id):
                return  # a redelivery: done already
            job, deployment_id, said, due = owner.job, change.deployment_id, change.said, None
        deployer, wakeups = await self._parking(job)
        phase = await resume(
            deployer,
            wakeups,
            job,
            deployment_id,
            self.hand_over_at,
            self._send_timer,
            said=said,
            timer_due=due,
        )
        log.info("job %s resumed for %s: %s", job.job_id, "its timer" if due else said, phase or "parked")

    async def _send_timer(self, body: str, delay_s: int) -> None:
        arn = self._timer_arn
        assert arn is not None, "only parking jobs set timers"
        sqs = await self._sqs_client(_queue_of(arn)[0])
        await sqs.send_message(QueueUrl=await self._queue_url(arn), MessageBody=body, DelaySeconds=delay_s)

    async def _continue(self, record: Record, job: DeployJob) -> None:
        following = job.model_copy(update={"continuation": job.continuation + 1})
        arn = str(record["eventSourceARN"])
        url = await self._queue_url(arn)
        group = (record.get("attributes") or {}).get("MessageGroupId") or group_id(following)
        sqs = await self._sqs_client(_queue_of(arn)[0])
        await _send(sqs, url, following.model_dump_json(), group, dedup_id(following))
        log.info("job %s: continuation %d sent", job.job_id, following.continuation)

    async def _reject(self, record: Record, reason: str) -> None:
        """A body that is no job: to the dead-letter queue, and say so on the job if we can."""
        message_id = str(record["messageId"])
        log.error("record %s is not a valid job (%s)", message_id, reason)
        arn = str(record["eventSourceARN"])
        dlq = await self._dlq_url(arn)
        if dlq is not None:
            group = (record.get("attributes") or {}).get("MessageGroupId") or "malformed"
            sqs = await self._sqs_client(_queue_of(arn)[0])
            await _send(sqs, dlq, str(record["body"]), group, message_id)
            where = "set aside in the dead-letter queue"
        else:
            where = "no dead-letter queue is configured, so SQS will deliver it again"
        await self._report_malformed(
            record.get("body"), f"the job's message is malformed ({reason}); {where}"
        )
        if dlq is None:
            raise ValueError(f"record {message_id} is not a valid job and has no dead-letter queue")

    async def _report_malformed(self, body: object, message: str) -> None:
        ids = recover_ids(body)
        if ids is None:
            return
        event = WorkerEvent(
            run_id=ids[0], job_id=ids[1], seq=MALFORMED_SEQ, phase=Phase.FAILED, message=message
        )
        try:
            await EventPublisher(self._redis_client()).publish(event)
        except Exception:  # the record is dealt with; a lost event only costs the job a `lost` verdict
            log.exception("could not report malformed job %s", ids[1])

    def _redis_client(self) -> Redis:
        if self._redis is None:
            url = self._settings.redis_url
            if not url:
                raise RuntimeError("REDIS_URL is not set: the worker cannot record or report jobs")
            self._redis = connect_redis(url)
        return self._redis

    async def _deployer(self, job: DeployJob) -> Deployer:
        """One deployer per account and region (and access): the job's role, assumed here with
        the function's own credentials and refreshed while the batch runs."""
        region = job.target.region or self._settings.region
        scope = job.target.model_copy(update={"region": region}).scope
        async with self._lock:
            deployer = self._deployers.get((scope, job.access))
            if deployer is None:
                if self._clients is None:
                    self._clients = Clients(self._stack, self._aws, job.run_id)
                ecs = await self._clients.get("ecs", region, job.access)
                deployer = self._deployers[scope, job.access] = Deployer.on_redis(
                    ecs,
                    self._redis_client(),
                    scope=scope,
                    allowed_registries=self._settings.allowed_registries,
                )
            return deployer

    async def _sqs_client(self, region: str) -> SQSClient:
        async with self._lock:
            if region not in self._sqs:
                created: SQSClient = await self._stack.enter_async_context(self._aws.sqs(region))
                self._sqs[region] = created
            return self._sqs[region]

    async def _queue_url(self, arn: str) -> str:
        url = self._urls.get(arn)
        if url is None:
            region, account, name = _queue_of(arn)
            sqs = await self._sqs_client(region)
            response = await sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
            url = self._urls[arn] = response["QueueUrl"]
        return url

    async def _dlq_url(self, source_arn: str) -> str | None:
        """The dead-letter queue of the source queue, from its RedrivePolicy."""
        if source_arn not in self._dlqs:
            sqs = await self._sqs_client(_queue_of(source_arn)[0])
            url = await self._queue_url(source_arn)
            attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
            policy = attributes.get("Attributes", {}).get("RedrivePolicy")
            target = json.loads(policy).get("deadLetterTargetArn") if policy else None
            self._dlqs[source_arn] = await self._queue_url(target) if target else None
        return self._dlqs[source_arn]


async def _process_batch(
    records: Sequence[Record], hand_over_at: float, settings: WorkerSettings, aws: AwsAccess
) -> set[str]:
    """Run every record (groups side by side, in order within one); the failed message ids."""
    failed: set[int] = set()

    async def run_group(batch: _Batch, indices: list[int]) -> None:
        for index in indices:
            # A record after a failed one is reported anyway: do not start it.
            if failed and min(failed) < index:
                failed.add(index)
                continue
            try:
                await batch.process(records[index])
            except Exception:
                log.exception("record %s failed; SQS will deliver it again", records[index]["messageId"])
                failed.add(index)
                return

    async with _Batch(hand_over_at, settings, aws) as batch, anyio.create_task_group() as tg:
        for source_arn in {str(r["eventSourceARN"]) for r in records if r.get("eventSourceARN")}:
            if source_arn.endswith(".fifo"):  # jobs' queue: hand-overs go there (not events, timers)
                tg.start_soon(batch.warm_up, source_arn)
        for indices in ordered_groups(records):
            tg.start_soon(run_group, batch, indices)
    return {str(records[index]["messageId"]) for index in failed}


def make_handler(settings: WorkerSettings, aws: AwsAccess) -> Handler:
    """A handler for SQS events (ReportBatchItemFailures) with these settings and this AWS.

    Lambda's own entry point is `handler` below; a test bed that plays Lambda (the sandbox's
    event-source-mapping emulator) makes one with its Redis and its emulator's endpoint.
    """

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records: list[Record] = list(event.get("Records") or [])
        remaining_ms = getattr(context, "get_remaining_time_in_millis", lambda: DEFAULT_REMAINING_MS)()
        until = hand_over_at(time.time(), remaining_ms / 1000, len(records))
        failed = anyio.run(_process_batch, records, until, settings, aws)
        message_ids = [str(record["messageId"]) for record in records]
        return {"batchItemFailures": batch_item_failures(message_ids, failed)}

    return handle


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda's entry point (`worker.handler.handler`): the function's environment, read per
    invocation (`WorkerSettings.from_environ`), and the standard AWS credential chain."""
    return make_handler(WorkerSettings.from_environ(), AwsAccess())(event, context)
