"""AWS calls that fit inside a job's deadline, and ride out an endpoint that stops answering.

`worker.aws` gives every client short connect/read timeouts and few attempts when the endpoint
does not answer, but botocore knows nothing of the job: a job's deadline must hold whatever
botocore does. So every ECS call of a job is made through `Patience.call`: it runs under
`anyio.fail_after` with the time left, is made again (0.5 s doubling to 4 s) while ECS gives
no answer (no connection, a timeout), and says so meanwhile, every third of a heartbeat, so the
orchestrator does not take the job for lost. At the deadline it raises `NoAnswer`; the job
then ends `timed_out` with the last state ECS showed it, never `failed`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

import anyio
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.exceptions import ReadTimeoutError

from worker.beside import beside
from worker.contract import EventDetails, Phase
from worker.verdict import Silence

if TYPE_CHECKING:
    from worker.reporter import Reporter

__all__ = ["UNANSWERED", "NoAnswer", "Patience"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# No answer from the endpoint: refused or reset connections, connect and read timeouts.
UNANSWERED: tuple[type[Exception], ...] = (BotocoreConnectionError, ReadTimeoutError)
FIRST_RETRY_S = 0.5
LAST_RETRY_S = 4.0


class NoAnswer(Exception):
    """ECS gave no answer to `what` before the deadline."""

    def __init__(self, what: str, silence: Silence) -> None:
        super().__init__(f"no answer from ECS to {what} for {silence.seconds:.0f}s ({silence.error})")
        self.what = what
        self.silence = silence


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@dataclass(frozen=True)
class Patience:
    """A job's deadline for its ECS calls, and what it says while ECS keeps it waiting."""

    reporter: Reporter
    deadline: float  # time.time()
    every_s: float  # a heartbeat while waiting, this often
    phase: Phase = Phase.STARTED  # the phase its heartbeats repeat
    details: EventDetails | None = None

    def at(
        self,
        phase: Phase | None = None,
        *,
        deadline: float | None = None,
        details: EventDetails | None = None,
    ) -> Patience:
        """The same, for another step: its phase, deadline or details."""
        return replace(
            self,
            phase=phase or self.phase,
            deadline=self.deadline if deadline is None else deadline,
            details=details if details is not None else self.details,
        )

    async def call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` before the deadline, made again while ECS does not answer; `NoAnswer` when
        the deadline passes first. Other errors are raised as they are."""
        started = time.monotonic()
        errors: list[str] = []

        async def attempts() -> T:
            wait = FIRST_RETRY_S
            while True:
                left = self.deadline - time.time()
                if left <= 0:
                    error = errors[-1] if errors else "the deadline had passed"
                    raise NoAnswer(what, Silence(time.monotonic() - started, error))
                try:
                    with anyio.fail_after(left):
                        return await call()
                except TimeoutError:
                    errors.append(f"no answer within {left:.1f}s")
                    continue  # the deadline: NoAnswer above
                except UNANSWERED as exc:
                    errors.append(describe_error(exc))
                await anyio.sleep(max(0.0, min(wait, self.deadline - time.time())))
                wait = min(wait * 2, LAST_RETRY_S)

        async def beat() -> None:
            while True:
                await anyio.sleep(self.every_s)
                silent_s = time.monotonic() - started
                left_s = max(0.0, self.deadline - time.time())
                last = errors[-1] if errors else "waiting for its answer"
                message = (
                    f"no answer from ECS to {what} for {silent_s:.0f}s ({last}); trying again until "
                    f"the deadline, {left_s:.0f}s from now"
                )
                try:
                    with anyio.CancelScope(shield=True):  # an event is published whole or not at all
                        await self.reporter.emit(self.phase, message, self.details)
                except Exception:  # a heartbeat that could not be sent must not end the job
                    log.warning("job %s: heartbeat not sent", self.reporter.job.job_id, exc_info=True)

        return await beside(attempts, beat)
