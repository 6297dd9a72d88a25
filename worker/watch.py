"""How a job looks at its deployment: through ECS's service deployment, or `rolloutState`.

`open_watch` finds the service deployment that the job's UpdateService started and watches it
(DescribeServiceDeployments); where the service-deployments API gives no usable answer, or
does not list ours, the job watches the service's deployments (DescribeServices) and says so
(`Watch.note`). Either way `Watch.look` answers one `Rollout`, so following, settling and
rolling back do not care which; `worker.strategy` and `worker.rollout` decide what it is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from worker.contract import DeployJob, DoneWhen
from worker.ecs_calls import Unavailable
from worker.pacing import LookKey
from worker.rollout import InFlight, Rollout, RolloutState, evaluate_rollout, primary_flight
from worker.strategy import STOPPABLE, evaluate_service_deployment
from worker.wakeups import Wakeups

if TYPE_CHECKING:
    from worker.ecs_calls import ServiceCalls
    from worker.looker import Looker
    from worker.patience import Patience

__all__ = ["FIND_TRIES", "Watch", "open_watch", "progress_words", "replaced_or", "still_rolling"]

# ECS lists a service deployment shortly after UpdateService returns: ask a few times.
FIND_TRIES = 3
FIND_PAUSE_S = 0.5


@dataclass
class Watch:
    """One job's view of one deployment. `service_deployment_arn` None: `rolloutState`."""

    calls: ServiceCalls
    job: DeployJob
    deployment_id: str
    arn: str
    previous: str | None
    service_deployment_arn: str | None = None
    note: str = ""  # why the job follows `rolloutState`, when it does
    done_when: DoneWhen = DoneWhen.BAKED
    wakeups: Wakeups | None = None  # ECS's events wake the follower early (`worker.wakeups`)
    looker: Looker | None = None  # set: looks are batched with other jobs' (`worker.looker`)
    _stage: tuple[str | None, float] | None = field(default=None, repr=False)

    async def pause(self, seconds: float) -> bool:
        """Wait up to `seconds` before the next look; True when ECS's word on the deployment
        cut the wait short."""
        if self.wakeups is None:
            await anyio.sleep(seconds)
            return False
        return await self.wakeups.sleep(self.deployment_id, seconds)

    @property
    def looks_at(self) -> tuple[LookKey, str]:
        """Where a look goes and what it asks for: (the call and its cluster, the item)."""
        if self.service_deployment_arn is None:
            return ("DescribeServices", self.job.target.cluster), self.job.target.service
        return ("DescribeServiceDeployments", ""), self.service_deployment_arn

    async def ask(self, patience: Patience | None = None) -> dict[str, Any] | None:
        """ECS's word on the service or the service deployment: with the other jobs' through the
        looker, else alone."""
        key, item = self.looks_at
        if self.looker is not None:
            looker = self.looker

            async def together() -> dict[str, Any] | None:
                return await looker.ask(key, item, metered=self.job.options.api_budget)

            return await together() if patience is None else await patience.call(key[0], together)
        if self.service_deployment_arn is None:
            return await self.calls.poll(self.job, patience)
        return await self.calls.describe_service_deployment(self.job, self.service_deployment_arn, patience)

    async def look(self, patience: Patience | None = None) -> Rollout | None:
        """What ECS says of the deployment now; None when the service or deployment is gone."""
        answer = await self.ask(patience)
        if self.service_deployment_arn is None:
            return None if answer is None else evaluate_rollout(answer, self.deployment_id, self.arn)
        sd = answer
        if sd is None:
            return None
        now = time.time()
        stage = sd.get("lifecycleStage")
        if self._stage is None or self._stage[0] != stage:
            # The first look at a stage dates it by ECS's updatedAt; later stages by when seen.
            self._stage = (stage, now if self._stage is not None else _updated_at(sd, now))
        return evaluate_service_deployment(
            sd, self.previous, now=now, stage_since=self._stage[1], done_when=self.done_when
        )

    def for_rollback(self) -> Watch:
        """The same deployment, watched to its very end (ECS's rollback of it included)."""
        return Watch(
            self.calls,
            self.job,
            self.deployment_id,
            self.arn,
            self.previous,
            self.service_deployment_arn,
            wakeups=None if self.wakeups is None else self.wakeups.staying(),
            looker=self.looker,
        )


def _updated_at(sd: dict[str, object], default: float) -> float:
    value = sd.get("updatedAt")
    return value.timestamp() if isinstance(value, datetime) else default


async def open_watch(
    calls: ServiceCalls,
    job: DeployJob,
    patience: Patience,
    deployment_id: str,
    arn: str,
    previous: str | None,
    known_arn: str | None = None,
    wakeups: Wakeups | None = None,
    looker: Looker | None = None,
) -> Watch:
    """The watch for `deployment_id`: its service deployment (`known_arn` when a worker before
    this one found it), else `rolloutState` with the reason in `note`."""
    watch = Watch(calls, job, deployment_id, arn, previous, done_when=job.options.done_when)
    watch.wakeups, watch.looker = wakeups, looker
    if known_arn is not None:
        watch.service_deployment_arn = known_arn
        return watch
    try:
        for attempt in range(FIND_TRIES):
            found = await calls.find_service_deployment(job, deployment_id, patience)
            if found is not None:
                watch.service_deployment_arn = found
                return watch
            if attempt + 1 < FIND_TRIES:
                await anyio.sleep(FIND_PAUSE_S)
    except Unavailable as exc:
        watch.note = f"ECS's service-deployments API is not available here ({exc})"
        return watch
    watch.note = f"ECS lists no service deployment for {deployment_id}"
    return watch


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_words(rollout: Rollout, now: float) -> str:
    """The counts, and what the service deployment adds: strategy, stage, traffic, bake, hook."""
    counts = (
        f"{rollout.running}/{rollout.desired} running, {rollout.pending} pending, "
        f"{rollout.failed_tasks} failed"
    )
    progress = rollout.progress
    if progress is None:
        return counts
    words = [counts, progress.strategy]
    if progress.status not in ("IN_PROGRESS", "SUCCESSFUL"):
        words.append(progress.status.lower().replace("_", " "))
    if progress.stage:
        words.append(progress.stage.lower().replace("_", " "))
    if progress.traffic_percent is not None and progress.strategy != "ROLLING":
        words.append(f"production traffic {progress.traffic_percent:g}%")
    if progress.bake_left_s is not None:
        words.append(f"baking, {_duration(progress.bake_left_s)} left")
    if progress.hook is not None and progress.hook_since is not None:
        name = progress.hook.rsplit(":", 1)[-1]
        words.append(f"waiting for hook {name} for {_duration(now - progress.hook_since)}")
    if progress.status.startswith("ROLLBACK") and rollout.reason:
        words.append(rollout.reason)
    return "; ".join(words)


async def still_rolling(
    calls: ServiceCalls, job: DeployJob, service: Mapping[str, Any], patience: Patience
) -> InFlight | None:
    """The service's PRIMARY deployment when its service deployment is still under way although
    `rolloutState` says COMPLETED (a blue/green or canary deployment baking, a hook holding it):
    a job that finds its revision "already there" follows it. None where the API does not answer."""
    flight = primary_flight(service)
    if flight is None:
        return None
    try:
        sd_arn = await calls.find_service_deployment(job, flight.deployment_id, patience)
    except Unavailable:
        return None
    sd = await calls.describe_service_deployment(job, sd_arn, patience) if sd_arn else None
    return flight if sd is not None and sd.get("status") in STOPPABLE else None


async def replaced_or(
    calls: ServiceCalls, job: DeployJob, rollout: Rollout, deployment_id: str, arn: str
) -> Rollout:
    """`rollout`, unless ECS STOPPED the service deployment because someone else's replaced it:
    then the service's deployments say so (and nobody's deployment is rolled back over theirs)."""
    if rollout.progress is None or rollout.progress.status != "STOPPED":
        return rollout
    service = await calls.poll(job)
    if service is None:
        return rollout
    seen = evaluate_rollout(service, deployment_id, arn)
    return seen if seen.state is RolloutState.SUPERSEDED or seen.gone else rollout
