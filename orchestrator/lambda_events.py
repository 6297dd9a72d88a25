"""The lambda executor's ECS events: the timer queue, the rule and queue per account and region.

A parked Lambda job (`worker.park`) is resumed by ECS's event on its deployment or by its timer.
For a run whose jobs follow events (`follow = "events"`) this makes sure of, side by side and
idempotently:

- the timer queue `ecs-fanout-timers` (standard: FIFO has no per-message delay) beside the
  function, whose ARN the function gets as `ECS_FANOUT_TIMER_QUEUE_ARN`;
- per account and region of the run's jobs, with that scope's access, the rule and the queue
  `ecs-fanout-ecs-events` (`orchestrator.event_rules`); a queue of another account lets the
  worker role read it (Lambda reads it with the function's role).

An event-source mapping reads queues of its own region only. With `events_role` (a role name,
the same in every account), a scope in another region forwards its events to its account's
default bus in the function's region (`event_rules.forward_events`), whose rule and queue that
account's jobs then share; without it, that scope polls. A scope whose rule or queue is refused
(AccessDenied) polls too: said once, never a failure; its jobs are sent with `follow = "poll"`
so they follow in their invocation. The queues the function must read (timer, events) are
returned for the caller to map.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from botocore.exceptions import ClientError

from orchestrator.event_rules import EVENTS_QUEUE, EventsQueue, NoEvents, ensure_events, forward_events
from worker.access import Access
from worker.contract import DeployJob, Follow
from worker.credentials import Clients

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

__all__ = ["TIMER_QUEUE", "LambdaEvents", "ensure_timer_queue", "poll_where_no_events"]

TIMER_QUEUE = "ecs-fanout-timers"
TIMER_RETENTION_S = 24 * 3600  # a timer is due within 900 s: a day is plenty
MAX_VISIBILITY_S = 12 * 3600


def visibility_s(function_timeout_s: int) -> int:
    """Lambda refuses to map a queue whose visibility timeout is below the function's timeout;
    AWS advises 6x (as for the job queue)."""
    return min(MAX_VISIBILITY_S, 6 * function_timeout_s)


async def ensure_timer_queue(sqs: SQSClient, function_timeout_s: int) -> tuple[str, str]:
    """The timer queue's (URL, ARN), made or brought up to date."""
    attributes: dict[Any, str] = {
        "VisibilityTimeout": str(visibility_s(function_timeout_s)),
        "MessageRetentionPeriod": str(TIMER_RETENTION_S),
    }
    try:
        url = (await sqs.get_queue_url(QueueName=TIMER_QUEUE))["QueueUrl"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            raise
        url = (await sqs.create_queue(QueueName=TIMER_QUEUE, Attributes=attributes))["QueueUrl"]
    else:
        await sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    got = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(url), str(got["Attributes"]["QueueArn"])


@dataclass
class LambdaEvents:
    """What the set-up found: the queues to map, and the scopes that poll (with why)."""

    timer_arn: str | None = None
    queues: dict[str, EventsQueue] = field(default_factory=dict)  # scope -> its events queue
    polling: dict[str, str] = field(default_factory=dict)  # scope -> why it polls

    async def set_up(
        self,
        clients: Clients,
        sqs: SQSClient,
        jobs: Sequence[DeployJob],
        *,
        function_timeout_s: int,
        worker_role_arn: str | None,
        on_note: Callable[[str], None],
        events_role: str | None = None,
    ) -> None:
        """The timer queue beside the function (`sqs`: the function's region), then every scope's
        rule and queue (or forwarding), side by side. Jobs that poll need none of it."""
        scopes = {job.target.scope: job for job in jobs if job.options.follow is Follow.EVENTS}
        if not scopes:
            return
        _, self.timer_arn = await ensure_timer_queue(sqs, function_timeout_s)
        _, partition, _, region, account, _ = self.timer_arn.split(":")
        home: dict[str, EventsQueue | NoEvents] = {}  # account -> its rule and queue in `region`
        locks: dict[str, anyio.Lock] = {}

        async def at_home(owner: str, access: Access) -> EventsQueue | NoEvents:
            """`owner`'s rule and queue in the function's region, made once for all its scopes."""
            async with locks.setdefault(owner, anyio.Lock()):
                if owner not in home:
                    home[owner] = await ensure_events(
                        f"{owner}/{region}",
                        await clients.get("sqs", region, access),
                        await clients.get("events", region, access),
                        queue=EVENTS_QUEUE,
                        visibility_s=visibility_s(function_timeout_s),
                        readers=(worker_role_arn,) if worker_role_arn and owner != account else (),
                    )
                return home[owner]

        async def one(scope: str, job: DeployJob) -> None:
            where, owner = job.target.region or region, job.target.account or account
            if where != region and events_role is None:
                got: EventsQueue | NoEvents = NoEvents(
                    scope,
                    f"ECS's events of {where} cannot reach the function in {region} (a mapping reads "
                    f"its own region's queues; ECS_FANOUT_LAMBDA_EVENTS_ROLE forwards them)",
                )
            else:
                got = await at_home(owner, job.access)
            if where != region and events_role is not None and isinstance(got, EventsQueue):
                forwarded = await forward_events(
                    scope,
                    await clients.get("events", where, job.access),
                    bus_arn=f"arn:{partition}:events:{region}:{owner}:event-bus/default",
                    role_arn=f"arn:{partition}:iam::{owner}:role/{events_role}",
                )
                got = forwarded or got
            if isinstance(got, NoEvents):
                self.polling[scope] = got.reason
                on_note(f"{scope}: {got.reason}; following by polling there")
            else:
                self.queues[scope] = got

        async with anyio.create_task_group() as tg:
            for scope, job in scopes.items():
                tg.start_soon(one, scope, job)


def poll_where_no_events(jobs: Sequence[DeployJob], polling: dict[str, str]) -> list[DeployJob]:
    """The jobs as sent: those of a scope without ECS's events follow by polling (pure)."""
    return [
        job.model_copy(update={"options": job.options.model_copy(update={"follow": Follow.POLL})})
        if job.target.scope in polling and job.options.follow is Follow.EVENTS
        else job
        for job in jobs
    ]
