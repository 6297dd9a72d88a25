"""Following one deployment to its end, through its `Watch` (ECS's service deployment, or
`rolloutState` where that API does not answer; docs/design.md, 'Following our own deployment').

With a looker (the local executor's jobs, `worker.looker`), a job looks on its interval's grid:
its floor (`worker.pacing.look_floor_s`), lengthened only when the account's budget needs it.
Alone (a Lambda worker), looks start at the floor and grow x1.5 to `poll_max_s`, each
shortened by up to a quarter, paced by the shared budget. ECS's word (`Watch.pause` woken)
brings the next look forward either way; its word that the deployment COMPLETED ends a follower
that has seen the deployment once (and knows its task counts) without another look, cutting
short a look under way.
`in_progress` is published on every change of the counts and at least every heartbeat/3.
Every poll fits inside the deadline (`worker.patience`): while ECS does not answer, the job
keeps asking (and saying so) until the deadline, and then reports what it last saw.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import anyio

from worker.beside import beside
from worker.contract import EventDetails, Follow, Phase
from worker.pacing import look_floor_s
from worker.patience import NoAnswer, Patience
from worker.reporter import rollout_details
from worker.rollout import Rollout, RolloutState, completed_as_said
from worker.verdict import Silence
from worker.watch import Watch, progress_words

__all__ = [
    "BACKOFF_FACTOR",
    "EVENTS_SAFETY_POLL_S",
    "POLL_JITTER",
    "Followed",
    "HandOver",
    "Parked",
    "follow",
    "safety_poll_s",
]

BACKOFF_FACTOR = 1.5
# Jobs started together would poll together: their describe_services answers would be parsed
# in one burst (on one loop, with the local executor), delaying every event behind it, and
# would reach DescribeServices' bucket at once. Each wait is shortened by up to a quarter.
POLL_JITTER = 0.25
# A poll this close to the deadline is not made: the deadline's own question to ECS
# (`worker.confirm.ask_ecs`, with time of its own to be answered) is made instead.
LAST_POLL_S = 0.5
# With ECS's events waking the follower, it still looks on its own this often (an event lost,
# a rule deleted), but at least every heartbeat/3 so that the job is never silent.
EVENTS_SAFETY_POLL_S = 30.0


class HandOver(Exception):
    """The next wait would pass the hand-over instant: stop, a continuation goes on."""

    def __init__(self, details: EventDetails, why: str = "the worker's time is running out") -> None:
        super().__init__("handing over")
        self.details = details
        self.why = why


def safety_poll_s(watch: Watch) -> float:
    """The shortest wait between two looks: 0 when polling, the safety poll when events wake."""
    options = watch.job.options
    if watch.wakeups is None or options.follow is not Follow.EVENTS:
        return 0.0
    return max(options.poll_max_s, min(EVENTS_SAFETY_POLL_S, options.heartbeat_s / 3))


class Parked(HandOver):
    """Lambda: the follower waits outside any invocation (`worker.park`): ECS's next event on
    the deployment, or a timer `wait_s` from now, resumes the job."""

    def __init__(self, deployment_id: str, wait_s: float) -> None:
        super().__init__(EventDetails(deployment_id=deployment_id), "parked until ECS's next event")
        self.deployment_id = deployment_id
        self.wait_s = wait_s


@dataclass(frozen=True)
class Followed:
    """How following ended: `rollout` terminal, or None when the deadline passed first."""

    rollout: Rollout | None
    last_seen: Rollout | None  # ECS's last answer about the deployment
    silence: Silence | None = None  # set: ECS was not answering when the deadline passed


async def follow(
    watch: Watch,
    patience: Patience,
    hand_over_at: float | None = None,
) -> Followed:
    """Look at the deployment until it is terminal or `patience.deadline` passes.

    Raises `HandOver` instead of waiting past `hand_over_at`.
    """
    if watch.looker is None:
        return await _follow(watch, patience, hand_over_at)
    with watch.looker.following(*watch.looks_at):  # counted in the looker's pacing meanwhile
        return await _follow(watch, patience, hand_over_at)


def _pause(watch: Watch, wait: float) -> float:
    """Until the next look: the next point of the looker's grid, or alone the current wait,
    shortened by up to a quarter (jobs started together do not look together). Polling, the
    grid is the job's floor (the budget lengthens it); with ECS's events, the growing wait (ECS
    sends no event for a stage, a traffic step or a hook: those are still looked at, less often)."""
    if watch.looker is not None:
        options = watch.job.options
        return watch.looker.pause_s(wait if options.follow is Follow.EVENTS else look_floor_s(options))
    return wait * random.uniform(1 - POLL_JITTER, 1.0)


async def _follow(watch: Watch, patience: Patience, hand_over_at: float | None) -> Followed:
    job = watch.job
    reporter = patience.reporter
    deadline = patience.deadline
    deployment_id, arn, previous = watch.deployment_id, watch.arn, watch.previous
    base = EventDetails(
        deployment_id=deployment_id,
        task_definition_arn=arn,
        previous_task_definition_arn=previous,
        service_deployment_arn=watch.service_deployment_arn,
    )
    wait = job.options.poll_min_s
    # ECS's events wake the follower: its waits grow past poll_max_s, up to the safety poll
    longest = max(job.options.poll_max_s, safety_poll_s(watch))
    last_seen: Rollout | None = None
    last_reported: tuple[object, ...] | None = None
    last_emit = time.monotonic()
    while True:
        now = time.time()
        remaining = deadline - now
        if remaining <= 0:
            return Followed(None, last_seen)
        pause = min(_pause(watch, wait), remaining)
        if remaining - pause < LAST_POLL_S:
            pause = remaining
        if hand_over_at is not None and now + pause > hand_over_at:
            raise HandOver(base)
        woken = await watch.pause(pause)
        if pause == remaining and not woken:
            return Followed(None, last_seen)
        wait = job.options.poll_min_s if woken else min(wait * BACKOFF_FACTOR, longest)
        details = base if last_seen is None else rollout_details(last_seen, deployment_id, arn, previous)
        # Keep asking a silent ECS until the deadline, or until a continuation must take over.
        ask_until = deadline if hand_over_at is None else min(deadline, hand_over_at)
        try:
            rollout = await _look(watch, patience.at(deadline=ask_until, details=details), last_seen)
        except NoAnswer as silent:
            if ask_until < deadline:
                raise HandOver(details) from silent
            return Followed(None, last_seen, silent.silence)
        if rollout is None:
            return Followed(Rollout(RolloutState.INACTIVE, reason="service disappeared"), last_seen)
        if rollout.terminal:
            return Followed(rollout, rollout)
        if last_seen is not None and _stage(last_seen) != _stage(rollout):
            wait = job.options.poll_min_s  # a new stage: the next one may come soon (a short bake)
        last_seen = rollout
        # An event on every change, and a heartbeat while nothing moves.
        changed = _what_changes(rollout)
        if changed != last_reported or time.monotonic() - last_emit >= job.options.heartbeat_s / 3:
            last_reported, last_emit = changed, time.monotonic()
            await reporter.emit(
                Phase.IN_PROGRESS,
                progress_words(rollout, time.time()),
                rollout_details(rollout, deployment_id, arn, previous),
            )


async def _look(watch: Watch, patience: Patience, last_seen: Rollout | None) -> Rollout | None:
    """A look at the deployment; once the job has seen it, ECS's event that it COMPLETED ends the
    look at once (ECS slow to answer it, or refusing it, does not hold the job past ECS's word)."""
    wakeups = watch.wakeups
    if last_seen is None or wakeups is None:
        return await watch.look(patience)
    if wakeups.completed(watch.deployment_id):  # said already: no look at all
        return completed_as_said(last_seen)
    with anyio.CancelScope() as look:

        async def cut_short() -> None:
            await wakeups.until_completed(watch.deployment_id)
            look.cancel()

        return await beside(lambda: watch.look(patience), cut_short)
    return completed_as_said(last_seen)


def _stage(rollout: Rollout) -> tuple[str, str | None] | None:
    progress = rollout.progress
    return None if progress is None else (progress.status, progress.stage)


def _what_changes(rollout: Rollout) -> tuple[object, ...]:
    """What is worth an event when it changes (not the bake's clock: heartbeats show that)."""
    progress = rollout.progress
    about = (
        () if progress is None else (progress.status, progress.stage, progress.traffic_percent, progress.hook)
    )
    return (rollout.running, rollout.desired, rollout.pending, rollout.failed_tasks, *about)
