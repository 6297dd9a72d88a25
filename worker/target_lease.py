"""One deploy of a service at a time, across runs: the per-target lease, held by a job.

Two runs deploying one service would race: the second's UpdateService replaces the first's
deployment mid-rollout, and the first reports a failure while ECS runs the second's image.
So a job takes its target's lease (`worker.ledger.TargetLeases`, keyed by `Target.key`, valued
with the holder's run id) before it describes the service, keeps it renewed until its end
(our rollback included) and gives it up then. A job of another run waits for it, saying whom it
waits for and so heartbeating (it must not look lost), until its own deadline; with
`wait_for_target` off (`--no-wait`) it fails at once, nothing changed. A job handed over keeps
it: its continuation (the same job) takes it over, as does a redelivery of a job whose worker died.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from worker.beside import beside
from worker.contract import DeployJob, EventDetails, Phase
from worker.ecs_calls import JobAborted
from worker.follow import HandOver, Parked
from worker.ledger import TargetLeases
from worker.patience import Patience
from worker.verdict import replacer

__all__ = ["WAIT_POLL_S", "TargetLease"]

log = logging.getLogger(__name__)

T = TypeVar("T")

WAIT_POLL_S = 0.5  # how often a waiting job asks whether the service is free
RELEASE_S = 2.0  # giving the lease up (or marking it handed over) never holds the job longer
# The owner a handed-over job leaves in its lease until its continuation takes it over. Lambda
# runs one service's messages in order (FIFO group): a job of another run waiting there would
# block the continuation queued behind it, so it hands over too, letting the continuation first.
HANDED_OVER = "handed-over"
# A parked job (Lambda, `worker.park`) is resumed by ECS's event or its timer, not by a message
# of its service's FIFO group: a job of another run waits for it as for a job still running.
PARKED = "parked"
HANDED_OVER_GRACE_S = 60.0  # the lease outlives the job's deadline by this much while handed over


class TargetLease:
    """A job's hold on its service: waited for, kept renewed, given up at the job's end."""

    def __init__(self, leases: TargetLeases, job: DeployJob, owner: str, lease_s: float) -> None:
        self._leases = leases
        self._job = job
        self._owner = owner
        self._lease_s = lease_s

    async def hold(
        self,
        patience: Patience,
        body: Callable[[], Awaitable[T]],
        *,
        resuming: bool,
        hand_over_at: float | None,
    ) -> T:
        """`body()` while this job holds its service; waits for it first (see the module).

        `resuming` (a deployment of this job is recorded): never wait, the deployment exists;
        follow it even if another run took the service meanwhile.
        """
        if not await self._take(patience, resuming=resuming, hand_over_at=hand_over_at):
            return await body()
        handing_over = False
        try:
            return await beside(body, self._keep)
        except HandOver as handing:
            handing_over = True  # kept for the continuation (the same job), which takes it over
            keep_s = max(self._lease_s, patience.deadline - time.time() + HANDED_OVER_GRACE_S)
            owner = PARKED if isinstance(handing, Parked) else HANDED_OVER
            with anyio.move_on_after(RELEASE_S, shield=True):
                await self._leases.take(self._job, owner, keep_s)
            raise
        finally:
            if not handing_over:
                with anyio.move_on_after(RELEASE_S, shield=True):
                    await self._leases.release(self._job, self._owner)

    async def replacer(self) -> str:
        """Who replaced this job's deployment: the run holding the service now, if not ours."""
        holder = await self._leases.holder(self._job)
        return replacer(holder.run_id if holder else None, self._job.run_id)

    async def _take(self, patience: Patience, *, resuming: bool, hand_over_at: float | None) -> bool:
        job = self._job
        announced: float | None = None
        while True:
            holder = await self._leases.take(job, self._owner, self._lease_s)
            if holder.job_id == job.job_id:
                return True
            if resuming:
                return False
            if holder.owner == HANDED_OVER and hand_over_at is not None:
                raise HandOver(
                    EventDetails(), f"run {holder.run_id}'s continuation, queued behind this job, goes first"
                )
            if not job.options.wait_for_target:
                raise JobAborted(
                    Phase.FAILED,
                    f"run {holder.run_id} is deploying this service now; nothing changed "
                    "(not waiting for it: --no-wait)",
                )
            if announced is None or time.monotonic() - announced >= patience.every_s:
                announced = time.monotonic()
                await patience.reporter.emit(
                    Phase.STARTED, f"waiting for run {holder.run_id} to finish deploying this service"
                )
            now = time.time()
            if now + WAIT_POLL_S >= patience.deadline:
                raise JobAborted(
                    Phase.TIMED_OUT,
                    f"deadline of {job.options.timeout_s:g}s passed waiting for run {holder.run_id} "
                    "to finish deploying this service; nothing changed",
                )
            if hand_over_at is not None and now + WAIT_POLL_S > hand_over_at:
                raise HandOver(EventDetails())
            await anyio.sleep(WAIT_POLL_S)

    async def _keep(self) -> None:
        """Renew the lease until cancelled; a renewal refused or failed is logged, never raised."""
        while True:
            await anyio.sleep(self._lease_s / 3)
            try:
                if not await self._leases.renew(self._job, self._owner, self._lease_s):
                    log.warning(
                        "job %s: the lease of %s is not ours any more", self._job.job_id, self._job.target
                    )
            except Exception:
                log.warning(
                    "job %s: lease of %s not renewed", self._job.job_id, self._job.target, exc_info=True
                )
