"""ECS's events, set up: a rule on the default bus and its SQS queue, per account and region.

ECS publishes its events on the default EventBridge bus of the account and region a service
lives in. For each account and region a run touches (with `follow = "events"`), this makes sure
of, side by side and idempotently (create-or-update, like the job queue and its mapping):

- a standard SQS queue (`ecs-fanout-ecs-events` for the lambda executor's function,
  `ecs-fanout-ecs-events-local` for local runs; each a target of the rule; retention 1 h,
  long polls) whose policy lets `events.amazonaws.com` send to it for our rule only;
- a rule `ecs-fanout-ecs-events` (source aws.ecs, the three ECS detail types) targeting it.

A Lambda function maps queues of its own region only: an account's events of another region
are forwarded (`forward_events`) by the same rule there to that account's default bus in the
function's region, through a role EventBridge assumes (cross-region bus targets need one).

A refusal (no permission to create the rule or the queue) is not a failure: that account and
region falls back to polling, said once by the caller (docs/design.md, 'ECS's events').

`events_in_place` only reads: whether the rule and queue are already as `ensure_events` would
leave them. The local executor looks while preflight runs (nothing may change before the run's
checks passed) and writes afterwards only where something is missing or differs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from botocore.exceptions import BotoCoreError, ClientError

from worker.ecs_events import EVENT_PATTERN

__all__ = [
    "EVENTS_QUEUE",
    "LOCAL_EVENTS_QUEUE",
    "RULE_NAME",
    "EventsQueue",
    "NoEvents",
    "ensure_events",
    "events_in_place",
    "forward_events",
    "queue_policy",
]

log = logging.getLogger(__name__)

RULE_NAME = "ecs-fanout-ecs-events"
EVENTS_QUEUE = "ecs-fanout-ecs-events"
LOCAL_EVENTS_QUEUE = "ecs-fanout-ecs-events-local"  # the local executor's: its runs share it
RETENTION_S = 3600
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError")


@dataclass(frozen=True)
class EventsQueue:
    """Where ECS's events of one account and region (`scope`) arrive."""

    scope: str
    url: str
    arn: str
    rule_arn: str


@dataclass(frozen=True)
class NoEvents:
    """ECS's events cannot be set up there: its jobs poll. `reason` says why, in one line."""

    scope: str
    reason: str


READ_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
]


def queue_policy(queue_arn: str, rule_arn: str, readers: Sequence[str] = ()) -> str:
    """The events queue's policy: EventBridge may send to it, for our rule only; `readers`
    (roles of another account: the Lambda worker's) may read it (pure)."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "EcsFanoutEcsEvents",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }
    ]
    if readers:
        statements.append(
            {
                "Sid": "EcsFanoutWorkerReads",
                "Effect": "Allow",
                "Principal": {"AWS": list(readers)},
                "Action": READ_ACTIONS,
                "Resource": queue_arn,
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _attributes(visibility_s: int) -> dict[str, str]:
    return {
        "MessageRetentionPeriod": str(RETENTION_S),
        "ReceiveMessageWaitTimeSeconds": "20",
        "VisibilityTimeout": str(visibility_s),
    }


async def _queue(sqs: Any, name: str, visibility_s: int) -> tuple[str, str]:
    attributes = _attributes(visibility_s)
    try:
        url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            raise
        url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
    else:
        await sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    return str(url), str(arn)


async def _put_rule(events: Any) -> str:
    answer = await events.put_rule(
        Name=RULE_NAME,
        EventPattern=json.dumps(EVENT_PATTERN),
        State="ENABLED",
        Description="ecs-fanout: ECS's deployment events, to its queue (see docs/aws.md)",
    )
    return str(answer["RuleArn"])


async def _set_up(
    sqs: Any, events: Any, name: str, visibility_s: int, readers: Sequence[str]
) -> tuple[str, str, str]:
    found: dict[str, Any] = {}

    async def queue() -> None:
        found["queue"] = await _queue(sqs, name, visibility_s)

    async def rule() -> None:
        found["rule"] = await _put_rule(events)

    async with anyio.create_task_group() as tg:
        tg.start_soon(queue)
        tg.start_soon(rule)
    url, arn = found["queue"]
    rule_arn: str = found["rule"]

    async def policy() -> None:
        policy = queue_policy(arn, rule_arn, readers)
        await sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})

    async def target() -> None:
        await events.put_targets(Rule=RULE_NAME, Targets=[{"Id": name, "Arn": arn}])

    async with anyio.create_task_group() as tg:
        tg.start_soon(policy)
        tg.start_soon(target)
    return url, arn, rule_arn


async def events_in_place(
    scope: str,
    sqs: Any,
    events: Any,
    *,
    queue: str = EVENTS_QUEUE,
    visibility_s: int = 30,
    readers: Sequence[str] = (),
) -> EventsQueue | None:
    """The rule and queue of `scope` if they are already as `ensure_events` would make them (reads
    only); None when anything is missing or differs, or a read is refused."""
    try:
        url = str((await sqs.get_queue_url(QueueName=queue))["QueueUrl"])
        found = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))["Attributes"]
        rule = await events.describe_rule(Name=RULE_NAME)
        targets = (await events.list_targets_by_rule(Rule=RULE_NAME))["Targets"]
    except (ClientError, BotoCoreError):
        return None
    arn, rule_arn = str(found.get("QueueArn", "")), str(rule.get("Arn", ""))
    policy = json.loads(queue_policy(arn, rule_arn, readers))
    in_place = (
        all(found.get(name) == value for name, value in _attributes(visibility_s).items())
        and _json(found.get("Policy")) == policy
        and rule.get("State") == "ENABLED"
        and _json(rule.get("EventPattern")) == EVENT_PATTERN
        and any(target.get("Id") == queue and target.get("Arn") == arn for target in targets)
    )
    return EventsQueue(scope, url, arn, rule_arn) if in_place else None


def _json(text: object) -> object:
    try:
        return json.loads(str(text))
    except ValueError:
        return None


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def ensure_events(
    scope: str,
    sqs: Any,
    events: Any,
    *,
    queue: str = EVENTS_QUEUE,
    visibility_s: int = 30,
    readers: Sequence[str] = (),
) -> EventsQueue | NoEvents:
    """The rule and queue of `scope` (an account/region), made or brought up to date; or why not."""
    try:
        url, arn, rule_arn = await _set_up(sqs, events, queue, visibility_s, readers)
    except Exception as exc:  # an ExceptionGroup from the side-by-side steps, or a call's error
        return NoEvents(scope, _why_not(exc))
    return EventsQueue(scope, url, arn, rule_arn)


async def forward_events(scope: str, events: Any, *, bus_arn: str, role_arn: str) -> NoEvents | None:
    """`scope`'s rule (`events`: its account and region) sends ECS's events on to `bus_arn`, the
    default bus of its account in another region, as `role_arn`; None when done, else why not."""
    try:
        await _put_rule(events)
        target = {"Id": "ecs-fanout-forward", "Arn": bus_arn, "RoleArn": role_arn}
        await events.put_targets(Rule=RULE_NAME, Targets=[target])
    except Exception as exc:
        return NoEvents(scope, _why_not(exc))
    return None


def _why_not(exc: Exception) -> str:
    """Why ECS's events could not be set up, in one line; other errors are raised again."""
    error = _first(exc)
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        message = error.response.get("Error", {}).get("Message", "")
        why = "no permission to set up ECS's events" if code in DENIED else "ECS's events could not be set up"
        return f"{why} ({code}: {message})"
    if isinstance(error, BotoCoreError):
        return f"ECS's events could not be set up ({error})"
    raise exc
