"""The live view of a run with waves: a section per wave with its gate's state, and the approval prompt.

Synthetic runs (fixed run id and clock, as in `tests.test_tui_snapshots`): the same events and
gate events the run core would fold, fed through the app's renderer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
from textual.pilot import Pilot

from orchestrator.approval import Decision
from orchestrator.gate_events import GateDetails, GateEvent
from orchestrator.plan import PlannedJob
from orchestrator.renderer import Renderer
from orchestrator.state import ORCHESTRATOR_SEQ, RunState
from orchestrator.waves import Gate, PlannedWave, WavePlan
from tests.test_tui_snapshots import NOW, PLAN, RUN_ID, SIZE, T0, Job, SnapCompare
from tui import FanoutApp
from tui.screens import ApprovalScreen
from tui.wave_section import WaveSection
from worker.contract import Phase, WorkerEvent

WAVES = {"staging": (1,), "canary": (0,), "rest": (2, 3, 4, 5)}  # indexes into PLAN
WAVED_PLAN = [
    p.model_copy(update={"wave": next(w for w, members in WAVES.items() if i in members)})
    for i, p in enumerate(PLAN)
]
WAVE_PLAN = WavePlan(
    waves=tuple(
        PlannedWave(
            name=name,
            job_ids=tuple(PLAN[i].job.job_id for i in members),
            gate=Gate(soak_s=300, alarms=("api-5xx",), approve=True) if name == "canary" else Gate(),
        )
        for name, members in WAVES.items()
    )
)
Item = WorkerEvent | GateEvent


def gate(wave: str, step: str, state: str, message: str, at: float, **extra: Any) -> GateEvent:
    return GateEvent.model_validate(
        {
            "run_id": RUN_ID,
            "wave": wave,
            "gate": step,
            "state": state,
            "message": message,
            "ts": T0 + at,
            **extra,
        }
    )


def deployed(index: int, at: float, plan: list[PlannedJob] = WAVED_PLAN) -> list[WorkerEvent]:
    job = Job(index, plan)
    name = job.job.target.service
    return [
        *job.forward(at, 2, 2),
        job.event(at + 5, Phase.SUCCEEDED, f"2/2 running {name}:2", running=2, desired=2),
    ]


def staging_and_canary() -> list[Item]:
    return [
        gate("staging", "wave", "started", "deploying 1 service", 0.1),
        *deployed(1, 0.2),
        gate("staging", "halt", "passed", "1 service deployed", 6.0),
        gate("staging", "wave", "passed", "gate passed (halt)", 6.0),
        gate("canary", "wave", "started", "deploying 1 service", 6.1),
        *deployed(0, 6.2),
        gate("canary", "halt", "passed", "1 service deployed", 12.0),
    ]


def soaking() -> list[Item]:
    watching = "watching 1 service and alarm(s) api-5xx for 300s"
    return [*staging_and_canary(), gate("canary", "soak", "soaking", watching, 12.5, until=T0 + 312.5)]


def awaiting_approval() -> list[Item]:
    how = f"`ecs-fanout approve {RUN_ID} --wave canary` (or `ecs-fanout stop {RUN_ID}`)"
    return [
        *staging_and_canary(),
        gate("canary", "soak", "passed", "soaked 300s: 1 service and alarm(s) api-5xx steady", 312.5),
        gate("canary", "alarms", "passed", "alarm api-5xx OK", 312.6),
        gate("canary", "approve", "waiting", f"waiting for approval: {how}", 312.7),
    ]


def stopped_by_smoke_test() -> list[Item]:
    failed = (
        "container app exited 1 (Essential container in task exited); logs: CloudWatch Logs group /ecs/api"
    )
    details = GateDetails(exit_code=1, stop_reason="Essential container in task exited", log_group="/ecs/api")
    ended: list[Item] = [
        *staging_and_canary(),
        gate("canary", "smoke_test", "stopped", failed, 20.0, details=details),
        gate("canary", "wave", "stopped", f"smoke test: {failed}", 20.0),
    ]
    for index in WAVES["rest"]:
        job = WAVED_PLAN[index].job
        ended.append(
            WorkerEvent(
                run_id=RUN_ID,
                job_id=job.job_id,
                seq=ORCHESTRATOR_SEQ,
                ts=T0 + 20.1,
                phase=Phase.NOT_STARTED,
                message="wave canary stopped the run: smoke test: container app exited 1",
            )
        )
    return ended


def waves_app(
    items: list[Item], *, finish: bool = False, decide: Callable[[str, Decision], Any] | None = None
) -> tuple[FanoutApp, Callable[[Pilot[Any]], Any], RunState]:
    state = RunState.from_plan(RUN_ID, WAVED_PLAN, WAVE_PLAN)
    fed = asyncio.Event()

    async def runner(renderer: Renderer) -> None:
        renderer.started(state)
        for item in items:
            if isinstance(item, GateEvent):
                wave = state.apply_gate(item)
                if wave is not None:
                    renderer.gate_changed(wave, item)
            elif (job := state.apply(item, received_at=item.ts)) is not None:
                renderer.changed(job, item)
        if finish:
            renderer.finished(state)
        fed.set()
        await anyio.sleep_forever()

    app = FanoutApp(state, runner, spec_path="specs/waves.toml", clock=lambda: NOW + 60, decide=decide)

    async def settle(pilot: Pilot[Any]) -> None:
        with anyio.fail_after(10):
            await fed.wait()
            while finish and not app.finished:
                await pilot.pause(0.01)
        app.flush()
        await pilot.pause()

    return app, settle, state


def test_snapshot_a_wave_soaking_and_the_next_waiting(snap_compare: SnapCompare) -> None:
    app, settle, _ = waves_app(soaking())
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_a_smoke_test_stopped_the_run(snap_compare: SnapCompare) -> None:
    app, settle, _ = waves_app(stopped_by_smoke_test(), finish=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_the_approval_prompt(snap_compare: SnapCompare) -> None:
    async def decide(wave: str, decision: Decision) -> None:
        pass

    app, settle, _ = waves_app(awaiting_approval(), decide=decide)
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


async def test_each_wave_has_its_section_saying_its_gate() -> None:
    app, settle, _ = waves_app(soaking())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        sections = {s.wave.name: s for s in app.query(WaveSection).results(WaveSection)}
        assert list(sections) == ["staging", "canary", "rest"]
        assert sections["staging"].header.gate == "passed: gate passed (halt)"
        # the app's clock is 89.5 s past the soak's start: 3:30 of its 5:00 are left
        assert sections["canary"].header.gate.startswith("soaking, 3:30 left: watching 1 service")
        assert sections["rest"].header.gate == "waits for the waves before it"
        assert [p.job.target.service for p in sections["rest"].groups[0].panes] == [
            "fraud-scorer",
            "web",
            "cart",
            "reports",
        ]


async def test_the_prompt_gives_the_approval_and_goes_when_it_is_given_elsewhere() -> None:
    given: list[tuple[str, Decision]] = []

    async def decide(wave: str, decision: Decision) -> None:
        given.append((wave, decision))

    app, settle, state = waves_app(awaiting_approval(), decide=decide)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ApprovalScreen) and app.screen.wave.name == "canary"
        await pilot.press("escape")  # later: the header says it waits; `a` asks again
        assert not isinstance(app.screen, ApprovalScreen)
        canary = next(s for s in app.query(WaveSection).results(WaveSection) if s.wave.name == "canary")
        assert canary.header.gate == "waiting for approval: press a to approve or stop"
        await pilot.press("a")
        assert isinstance(app.screen, ApprovalScreen)
        await pilot.press("a")
        await pilot.pause(0.1)
        assert given == [("canary", "approve")]
        # Asked again (it still waits, as the gate has not taken it yet), then decided elsewhere:
        await pilot.press("a")
        assert isinstance(app.screen, ApprovalScreen)
        event = gate("canary", "approve", "passed", "approved by someone@ci", 320.0)
        wave = state.apply_gate(event)
        assert wave is not None
        app.renderer.gate_changed(wave, event)
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ApprovalScreen)
        assert given == [("canary", "approve")]
