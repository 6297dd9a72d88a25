"""A follower sleeping between looks is woken by ECS's word on its deployment (worker.wakeups)."""

from __future__ import annotations

import time

import anyio

from worker.wakeups import Wakeups


async def test_a_wake_cuts_the_sleep_short() -> None:
    wakeups = Wakeups()
    woken: list[tuple[bool, float]] = []

    async def follower() -> None:
        started = time.monotonic()
        woken.append((await wakeups.sleep("ecs-svc/1", 10.0), time.monotonic() - started))

    async with anyio.create_task_group() as tg:
        tg.start_soon(follower)
        await anyio.sleep(0.05)
        wakeups.wake("ecs-svc/1")
    [(was_woken, slept)] = woken
    assert was_woken and slept < 1.0


async def test_a_wake_while_looking_is_kept_for_the_next_sleep() -> None:
    wakeups = Wakeups()
    wakeups.wake("ecs-svc/1")  # nobody asleep: the follower is busy looking
    assert await wakeups.sleep("ecs-svc/1", 10.0) is True
    assert await wakeups.sleep("ecs-svc/1", 0.05) is False  # taken once


async def test_a_wake_for_another_deployment_does_not_wake_this_one() -> None:
    wakeups = Wakeups()
    wakeups.wake("ecs-svc/2")
    assert await wakeups.sleep("ecs-svc/1", 0.05) is False
    wakeups.forget("ecs-svc/2")
    assert await wakeups.sleep("ecs-svc/2", 0.05) is False
