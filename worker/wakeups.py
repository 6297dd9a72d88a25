"""Followers sleeping between looks at their deployment, and what wakes them early.

A job looks at its deployment, then sleeps until its next look. When ECS itself says the
deployment changed (its EventBridge events, consumed elsewhere), the follower is woken at once
and looks again: it sees the end within milliseconds of ECS saying so instead of at its next
poll. A wake that comes while the follower is busy looking is kept for its next sleep, so none is
lost. One `Wakeups` serves every follower of one event loop; `wake` must be called on that loop.

ECS's event that a deployment COMPLETED is ECS's last word on it: a follower that has seen its
deployment once (it knows its task counts) ends on it without another look, and a look under way
(ECS slow to answer it, or refusing it) is cut short (`completed`, `until_completed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from worker.ecs_events import DeploymentChange

__all__ = ["Wakeups"]


class Wakeups:
    parks = False  # its followers wait outside this process (`worker.park.ParkingWakeups`)

    def __init__(self) -> None:
        self._sleeping: dict[str, anyio.Event] = {}
        self._pending: set[str] = set()
        self._said: dict[str, str] = {}  # what ECS's last event said of a deployment
        self._completed: dict[str, anyio.Event] = {}  # set once ECS's event says COMPLETED

    async def sleep(self, key: str, seconds: float) -> bool:
        """Sleep up to `seconds`; True when woken for `key` (a deployment id) before that."""
        if key in self._pending:
            self._pending.discard(key)
            return True
        event = self._sleeping.setdefault(key, anyio.Event())
        try:
            with anyio.move_on_after(seconds):
                await event.wait()
                return True
            return False
        finally:
            if self._sleeping.get(key) is event:
                del self._sleeping[key]

    def wake(self, key: str, said: str = "", *, completed: bool = False) -> None:
        """ECS said something of deployment `key`: its follower looks now. `said`: how the
        job's end quotes ECS's event (`quote`); `completed`: ECS said the deployment COMPLETED."""
        if said:
            self._said[key] = said
        if completed:
            self._completion(key).set()
        event = self._sleeping.pop(key, None)
        if event is None:
            self._pending.add(key)
        else:
            event.set()

    def ended(self, change: DeploymentChange) -> None:
        """ECS's event that a deployment ended (COMPLETED or FAILED): its follower, woken."""
        self.wake(change.deployment_id, change.said, completed=change.end == "completed")

    def completed(self, key: str) -> bool:
        """ECS's event said deployment `key` COMPLETED."""
        return key in self._completed and self._completed[key].is_set()

    async def until_completed(self, key: str) -> None:
        """Return once ECS's event says deployment `key` COMPLETED."""
        await self._completion(key).wait()

    def _completion(self, key: str) -> anyio.Event:
        return self._completed.setdefault(key, anyio.Event())

    def forget(self, key: str) -> None:
        """The follower of `key` is done: drop a wake nobody will collect."""
        self._pending.discard(key)
        self._said.pop(key, None)
        self._completed.pop(key, None)

    def quote(self, key: str, message: str) -> str:
        """`message` (a job's end), with what ECS's event said of deployment `key`, if it said."""
        said = self._said.pop(key, "")
        self.forget(key)
        return f"{message}; {said}" if said else message

    def staying(self) -> Wakeups | None:
        """The wakeups of a follower that must stay in this process (a rollback of ours)."""
        return self
