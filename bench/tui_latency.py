"""Event-to-screen latency of the live view: 200 panes, a burst of thousands of events.

    python -m bench.tui_latency [--panes 200] [--events 5000]

The app runs headless (`App.run_test`), with no AWS and no Redis: what is measured is the TUI
alone. A runner pushes the burst through `TuiRenderer` as fast as the run core's fold loop
would (one `state.apply` and one `changed()` per event, one checkpoint between events, as
anyio's memory stream has), on the app's own event loop. Every pane's `render()` is wrapped
to note when it actually repainted; an event's latency runs from its `changed()` call to the
first repaint of its pane after that. Two terminals: one tall enough that all panes are on
screen (every pane must repaint: the worst case), and an ordinary 160x50 one (panes off
screen are not painted, so only events of visible panes count there).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import textual
from textual.content import Content

from bench.machine import cpu_model
from orchestrator.plan import PlannedJob
from orchestrator.run import Renderer
from orchestrator.state import RunState
from tui import FanoutApp
from tui.pane import JobPane
from worker.contract import ContainerChange, DeployJob, EventDetails, Phase, WorkerEvent
from worker.target import Target

__all__ = ["Result", "main", "measure"]

RUN_ID = "bench-tui"
SETTLE_S = 30.0  # after the burst, the most we wait for the last paints


@dataclass(frozen=True)
class Result:
    label: str
    size: tuple[int, int]
    panes_on_screen: int
    events: int
    measured: int  # events whose pane is on screen
    burst_s: float
    repaints: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def line(self) -> str:
        return (
            f"{self.label:<28} {self.size[0]}x{self.size[1]:<4} panes on screen {self.panes_on_screen:>3}  "
            f"{self.events} events in {self.burst_s * 1000:.0f} ms "
            f"({self.events / self.burst_s:,.0f}/s), {self.repaints} pane repaints; "
            f"latency p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms "
            f"(over {self.measured} events)"
        )


def make_plan(panes: int) -> list[PlannedJob]:
    plan = []
    for i in range(panes):
        cluster, service = f"cluster-{i % 4}", f"service-{i:03d}"
        image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{service}:2.0.{i}"
        job = DeployJob(
            run_id=RUN_ID,
            job_id=f"{RUN_ID}:{i:03d}",
            target=Target(cluster=cluster, service=service),
            changes=(ContainerChange(container="app", image=image),),
        )
        plan.append(PlannedJob(job=job))
    return plan


def make_events(plan: list[PlannedJob], count: int) -> list[WorkerEvent]:
    """Round robin over the jobs: in_progress events whose task counts move on."""
    events = []
    start = time.time()
    for n in range(count):
        job = plan[n % len(plan)].job
        seq = n // len(plan) + 1
        running = seq % 11
        arn = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{job.target.service_name}"
        details = EventDetails(
            running=running,
            desired=10,
            pending=10 - min(running, 10),
            failed_tasks=0,
            deployment_id="ecs-svc/1",
            task_definition_arn=f"{arn}:2",
            previous_task_definition_arn=f"{arn}:1",
        )
        message = f"{running}/10 running, {10 - min(running, 10)} pending, 0 failed"
        events.append(
            WorkerEvent(
                run_id=RUN_ID,
                job_id=job.job_id,
                seq=seq,
                ts=start + n / 1000,
                phase=Phase.IN_PROGRESS,
                message=message,
                details=details,
            )
        )
    return events


def _hook_render(pane: JobPane, log: list[float]) -> None:
    render = pane.render

    def timed() -> Content:
        result = render()
        log.append(time.perf_counter())
        return result

    pane.render = timed  # type: ignore[method-assign]  # the instance attribute shadows the method


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def measure(label: str, panes: int, count: int, size: tuple[int, int]) -> Result:
    plan = make_plan(panes)
    events = make_events(plan, count)
    state = RunState.from_plan(RUN_ID, plan)
    changed_at: list[tuple[str, float]] = []
    go, done = asyncio.Event(), asyncio.Event()
    burst: list[float] = []

    async def runner(renderer: Renderer) -> None:
        renderer.started(state)
        await go.wait()
        start = time.perf_counter()
        for event in events:
            job = state.apply(event, received_at=time.time())
            assert job is not None
            changed_at.append((job.job_id, time.perf_counter()))
            renderer.changed(job, event)
            await anyio.lowlevel.checkpoint()
        burst.append(time.perf_counter() - start)
        done.set()
        await anyio.sleep_forever()

    app = FanoutApp(state, runner)
    rendered: dict[str, list[float]] = defaultdict(list)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)  # the first full paint
        screen = app.screen.region
        visible = {p.job.job_id for p in app.panes if p.region.height and screen.contains_region(p.region)}
        for pane in app.panes:
            _hook_render(pane, rendered[pane.job.job_id])
        go.set()
        await done.wait()
        last_change = {job_id: at for job_id, at in changed_at}
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:  # until every visible pane painted its last change
            if all(rendered[j] and rendered[j][-1] > at for j, at in last_change.items() if j in visible):
                break
            await pilot.pause(0.02)

    latencies = []
    for job_id, at in changed_at:
        if job_id in visible:
            paints = rendered[job_id]
            index = bisect.bisect_right(paints, at)
            if index == len(paints):
                raise RuntimeError(f"pane {job_id} never repainted after an event")
            latencies.append((paints[index] - at) * 1000)
    return Result(
        label=label,
        size=size,
        panes_on_screen=len(visible),
        events=count,
        measured=len(latencies),
        burst_s=burst[0],
        repaints=sum(len(v) for v in rendered.values()),
        p50_ms=statistics.median(latencies),
        p99_ms=_percentile(latencies, 99),
        max_ms=max(latencies),
    )


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model('unknown CPU')}; "
        f"Python {platform.python_version()}, textual {textual.__version__}"
    )


def main(argv: list[str] | None = None, run: Callable[..., Result] = anyio.run) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tui_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--panes", type=int, default=200)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per terminal; medians are printed")
    args = parser.parse_args(argv)
    columns = 3  # the app's layout from 230 columns on
    tall = (240, 4 + (args.panes + columns - 1) // columns * 6)  # 6 rows a pane, plus header/footer
    print(machine())
    for label, size in (("all panes on screen", tall), ("ordinary terminal", (160, 50))):
        results = [run(measure, label, args.panes, args.events, size) for _ in range(args.repeat)]
        for result in results:
            print(result.line(), flush=True)
        p50 = statistics.median(r.p50_ms for r in results)
        p99 = statistics.median(r.p99_ms for r in results)
        print(f"{label}: median of {args.repeat} runs: p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
