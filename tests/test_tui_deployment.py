"""The live view of ECS's own strategies, piloted: a deployment a lifecycle hook holds reads as
waiting for that hook (and for how long, counted on as time passes), a bake counts down, and a
`baking` end shows as a success that is not a whole one yet. What is asserted is the screen."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from tests.test_tui_snapshots import NOW, SIZE, T0, Job, arn, synthetic_app
from tui.screens import EventLogScreen
from worker.contract import Phase, WorkerEvent

HOOK = "arn:aws:lambda:us-east-1:123456789012:function:check-payments"
_LINE = re.compile(r'<text [^>]*clip-path="url\(#[\w-]+-line-(\d+)\)"[^>]*>(.*?)</text>')


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def screen_lines(svg: str) -> list[str]:
    """The screen's text, a string per terminal line (from Textual's own screenshot)."""
    lines: dict[int, str] = {}
    for number, text in _LINE.findall(svg):
        lines[int(number)] = lines.get(int(number), "") + html.unescape(text).replace("\xa0", " ")
    return [lines[n] for n in sorted(lines)]


def api_events(*last: tuple[Phase, str, dict[str, Any]]) -> list[WorkerEvent]:
    api = Job(0)
    revs = {"task_definition_arn": arn("api", 2), "previous_task_definition_arn": arn("api", 1)}
    events = list(api.forward(0.2, 3, 3))
    for index, (phase, message, details) in enumerate(last):
        events.append(api.event(10.0 + index, phase, message, **revs, **details))
    return events


BLUE_GREEN = {"following": "service_deployment", "strategy": "BLUE_GREEN"}
HELD = (
    Phase.IN_PROGRESS,
    "test traffic on api:2; the deployment waits for its hook",
    BLUE_GREEN
    | {
        "service_deployment_status": "IN_PROGRESS",
        "lifecycle_stage": "POST_TEST_TRAFFIC_SHIFT",
        "traffic_percent": 0.0,
        "hook": HOOK,
        "hook_since": NOW - 192,
    },
)
BAKE = (
    Phase.IN_PROGRESS,
    "production traffic on api:2",
    BLUE_GREEN
    | {
        "service_deployment_status": "IN_PROGRESS",
        "lifecycle_stage": "BAKE_TIME",
        "traffic_percent": 100.0,
        "bake_left_s": 300.0 + (NOW - T0 - 11.0),  # 5 minutes left at NOW
    },
)


@pytest.mark.parametrize(
    ("events", "before", "after"),
    [
        pytest.param(
            api_events(HELD),
            "ECS   waiting for hook check-payments for 3m12s · POST_TEST_TRAFFIC_SHIFT",
            "ECS   waiting for hook check-payments for 4m12s · POST_TEST_TRAFFIC_SHIFT",
            id="held-by-a-hook",
        ),
        pytest.param(
            api_events(HELD, BAKE),
            "ECS   BAKE_TIME · traffic 100% · bake 5m left · BLUE_GREEN IN_PROGRESS",
            "ECS   BAKE_TIME · traffic 100% · bake 4m left · BLUE_GREEN IN_PROGRESS",
            id="baking-counts-down",
        ),
    ],
)
async def test_a_pane_says_where_ecs_deployment_stands_as_time_passes(
    events: list[WorkerEvent], before: str, after: str
) -> None:
    clock = Clock()
    app, settle = synthetic_app(events, finish=False, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = screen_lines(app.export_screenshot())
        assert any(before in line for line in shown), "\n".join(shown)
        assert any(events[-1].message in line for line in shown)  # the latest event stays in view
        clock.now += 60
        await pilot.pause(0.2)  # the app's clock tick repaints the pane
        shown = screen_lines(app.export_screenshot())
        assert any(after in line for line in shown), "\n".join(shown)


async def test_the_event_log_title_says_which_hook_holds_the_deployment() -> None:
    app, settle = synthetic_app(api_events(HELD), finish=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter")  # the focused pane is payments/api
        await pilot.pause()
        assert isinstance(app.screen, EventLogScreen)
        shown = screen_lines(app.export_screenshot())
        assert any(
            "ECS: waiting for hook check-payments for 3m12s · POST_TEST_TRAFFIC_SHIFT · traffic 0% · "
            "BLUE_GREEN IN_PROGRESS" in line
            for line in shown
        ), "\n".join(shown)


async def test_a_baking_end_is_a_qualified_success_on_screen() -> None:
    baked = (
        Phase.BAKING,
        "production traffic is on api:2; ECS is still baking it (5m left)",
        BLUE_GREEN | {"lifecycle_stage": "BAKE_TIME", "traffic_percent": 100.0, "bake_left_s": 300.0},
    )
    app, settle = synthetic_app(api_events(baked), finish=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = "\n".join(screen_lines(app.export_screenshot()))
        assert "◐ baking · 0:09" in shown  # the pane's subtitle: its icon and word, not succeeded
        assert "◐ 1 baking" in shown  # the header's count
        assert "ECS   BAKE_TIME · traffic 100% · bake 5m left · BLUE_GREEN" in shown  # as it ended
