"""The local executor's ECS events: set up per account and region, consumed, turned into wakes.

For each account and region of a run's jobs (`follow = "events"`), the rule and queue are made
sure of (`orchestrator.event_rules`, side by side, with that scope's access): first looked at
(`look`, reads only: it may run before the run's checks passed), then written where missing
(`set_up`); a scope where that is refused polls, and the run says so once (`on_note`). Then
`POLLERS` consumers per queue long-poll it (ReceiveMessage), read each message
(`worker.ecs_events`), and for a deployment of one of this run's jobs
(`worker.deployment_map`) that says it ended wake its follower, once per ECS event (a
redelivered event does nothing): on COMPLETED a follower that has seen its deployment ends, else
it looks at once (`worker.wakeups`); the messages are deleted after handling. Local
runs share the queue: an event of another live run's job is given back at once (visibility 0)
for that run to take; one of nobody's is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from botocore.exceptions import BotoCoreError, ClientError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from orchestrator.event_rules import LOCAL_EVENTS_QUEUE, EventsQueue, NoEvents, ensure_events, events_in_place
from worker.contract import DeployJob, Follow
from worker.credentials import Clients
from worker.deployment_map import first_sight, owner_of
from worker.ecs_events import DeploymentChange, parse_deployment_change
from worker.keys import run_alive

__all__ = ["EcsEventFeed", "Wake"]

log = logging.getLogger(__name__)

Wake = Callable[[DeploymentChange], None]  # ECS said that deployment ended
WAIT_S = 2  # long poll: short enough that a cancelled run stops at once anyway
# Long polls at once per queue: a long poll returns with the first messages there, often one,
# so rollouts ending together would otherwise be received one poll after another.
POLLERS = 4
ERROR_PAUSE_S = 2.0


def _following(jobs: Sequence[DeployJob]) -> dict[str, DeployJob]:
    """A job of each scope whose jobs follow ECS's events."""
    return {job.target.scope: job for job in jobs if job.options.follow is Follow.EVENTS}


# What the feed rides out: the run goes on meanwhile, its jobs' safety polls still look.
OUTAGES = (ClientError, BotoCoreError, RedisError, OSError)


def _said_outage(queue: EventsQueue, exc: Exception) -> None:
    # Redis away is said with -v only, like every outage the run rides out
    level = logging.INFO if isinstance(exc, RedisError | OSError) else logging.WARNING
    log.log(level, "ECS events of %s: %s; polling goes on meanwhile", queue.scope, exc)


class EcsEventFeed:
    def __init__(self, clients: Clients, redis: Redis, run_id: str, on_note: Callable[[str], None]) -> None:
        self._clients = clients
        self._redis = redis
        self._run_id = run_id
        self._on_note = on_note
        self.queues: dict[str, EventsQueue] = {}  # scope -> its events queue
        self.handled = 0  # ECS events that woke a follower of this run

    async def look(self, jobs: Sequence[DeployJob]) -> None:
        """Reads only: the scopes of `jobs` whose rule and queue are already in place are ready."""

        async def one(scope: str, job: DeployJob) -> None:
            sqs, events = await self._clients_of(job)
            found = await events_in_place(scope, sqs, events, queue=LOCAL_EVENTS_QUEUE)
            if found is not None:
                self.queues[scope] = found

        async with anyio.create_task_group() as tg:
            for scope, job in _following(jobs).items():
                tg.start_soon(one, scope, job)

    async def set_up(self, jobs: Sequence[DeployJob]) -> set[str]:
        """The rule and queue of every scope of `jobs` that follows events and is not ready yet
        (`look`); the scopes ready."""

        async def one(scope: str, job: DeployJob) -> None:
            sqs, events = await self._clients_of(job)
            got = await ensure_events(scope, sqs, events, queue=LOCAL_EVENTS_QUEUE)
            if isinstance(got, NoEvents):
                self._on_note(f"{scope}: {got.reason}; following by polling there")
            else:
                self.queues[scope] = got

        async with anyio.create_task_group() as tg:
            for scope, job in _following(jobs).items():
                if scope not in self.queues:
                    tg.start_soon(one, scope, job)
        return set(self.queues)

    async def _clients_of(self, job: DeployJob) -> tuple[Any, Any]:
        sqs = await self._clients.get("sqs", job.target.region, job.access)
        return sqs, await self._clients.get("events", job.target.region, job.access)

    async def consume(self, jobs: Sequence[DeployJob], wake: Wake) -> None:
        """Consume every ready queue until cancelled."""
        by_scope = {job.target.scope: job for job in jobs}
        async with anyio.create_task_group() as tg:
            for scope, queue in self.queues.items():
                job = by_scope[scope]
                sqs = await self._clients.get("sqs", job.target.region, job.access)
                for _ in range(POLLERS):
                    tg.start_soon(self._consume_one, sqs, queue, wake)

    async def _consume_one(self, sqs: Any, queue: EventsQueue, wake: Wake) -> None:
        while True:
            try:
                answer = await sqs.receive_message(
                    QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=WAIT_S
                )
                await self._handle_batch(sqs, queue, answer.get("Messages", []), wake)
            except OUTAGES as exc:
                _said_outage(queue, exc)
                await anyio.sleep(ERROR_PAUSE_S)

    async def _handle_batch(
        self, sqs: Any, queue: EventsQueue, messages: Sequence[dict[str, Any]], wake: Wake
    ) -> None:
        """Every message of one receive at once (each wake as soon as its message is read),
        then the handled ones deleted in one call: a burst of ends is not read one by one."""
        done: list[dict[str, str]] = []

        async def one(index: int, message: dict[str, Any]) -> None:
            try:
                if await self._handle(sqs, queue, message, wake):
                    done.append({"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]})
            except OUTAGES as exc:  # the message comes back once its visibility times out
                _said_outage(queue, exc)

        async with anyio.create_task_group() as tg:
            for index, message in enumerate(messages):
                tg.start_soon(one, index, message)
        if done:
            await sqs.delete_message_batch(QueueUrl=queue.url, Entries=done)

    async def _handle(self, sqs: Any, queue: EventsQueue, message: dict[str, Any], wake: Wake) -> bool:
        """Wake the follower the message is for; False when it was given back to another run."""
        change = parse_deployment_change(message.get("Body"))
        found = None if change is None else await owner_of(self._redis, change.deployment_id)
        owner = None if found is None or found.parked else found.job  # a parked job is Lambda's
        if (
            change is not None
            and owner is not None
            and owner.run_id != self._run_id
            and await self._redis.exists(run_alive(owner.run_id))
        ):
            # another live run's job: give it back for that run's consumer
            await sqs.change_message_visibility(
                QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
            return False
        mine = owner is not None and owner.run_id == self._run_id
        if (
            change is not None
            and change.end is not None
            and mine
            and await first_sight(self._redis, change.event_id)
        ):
            self.handled += 1
            wake(change)
        return True
