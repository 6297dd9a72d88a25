"""A run over two accounts and two regions, as people see it: the live view's groups, `--plain`
and `--json`. Real runs: the emulator (each account's services created with credentials of
that account's role) and Redis, the local executor's workers in this process."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path

import anyio
import pytest
from textual.widgets import DataTable

from orchestrator.plan import PlannedJob, plan_jobs
from orchestrator.render import JsonRenderer, PlainRenderer
from orchestrator.renderer import Renderer
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.sandbox.seed import seed_role, seed_services
from orchestrator.spec import load_spec
from orchestrator.state import JobState, RunState
from tests.fleet import run_planned
from tests.test_tui_app import SIZE, FanOut, focus_framed
from tui import FanoutApp
from tui.group import PaneGroup
from tui.header import RunHeader
from tui.screens import EventLogScreen
from worker.contract import ContainerChange, DeployJob, Phase
from worker.target import Target

RUN_ID = "accounts-run"
CALLER = "arn:aws:iam::123456789012:user/ci"
A, B = "111111111111", "222222222222"
EAST, WEST = "us-east-1", "eu-west-1"
# (account, region, services): three groups of different sizes; B/eu-west-1's s4 never starts.
PLACES = ((A, EAST, ("s0", "s1", "s2")), (B, WEST, ("s3", "s4")), (A, WEST, ("s5",)))
BAD = "s4"
OLD = "registry.example.com/app:1.0.0"


def role(account: str) -> str:
    return f"arn:aws:iam::{account}:role/ecs-fanout-deployer"


@pytest.fixture
def planned(aws: AwsEmulator, tmp_path: Path) -> list[PlannedJob]:
    """The spec (a role and a region per entry), its services seeded in their accounts, planned."""
    lines = ['poll_interval = "100ms"', 'timeout = "60s"', 'heartbeat = "10s"']
    for account in (A, B):
        seed_role(aws.endpoint_url, account, "ecs-fanout-deployer")
    for account, region, services in PLACES:
        seed_services(
            aws.endpoint_url, region, [("prod", s, {"app": OLD}) for s in services], role_arn=role(account)
        )
        for service in services:
            lines += [
                "[[deploy]]",
                'cluster = "prod"',
                f'service = "{service}"',
                'container = "app"',
                'image = "registry.example.com/app"',
                f'tag = "{"bad-1" if service == BAD else "2.0.0"}"',
                f'region = "{region}"',
                f'role_arn = "{role(account)}"',
            ]
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    return plan_jobs(load_spec(path), RUN_ID)


def app_for(planned: list[PlannedJob], redis_url: str, *also: Renderer) -> FanoutApp:
    state = RunState.from_plan(RUN_ID, planned)

    async def runner(renderer: Renderer) -> None:
        await run_planned(state, planned, redis_url, FanOut(renderer, *also), heartbeat_s=10)

    return FanoutApp(state, runner, spec_path="spec.toml", caller=CALLER)


def header_text(group: PaneGroup) -> str:
    return group.header.render().plain


def expected_header(account: str | None, region: str | None, jobs: list[JobState]) -> str:
    """What a group's header must say for these jobs, counted here independently of the app."""
    words = Counter(
        j.phase.value
        if j.phase in (Phase.SUCCEEDED, Phase.SKIPPED)
        else "failed"
        if j.phase.terminal
        else "queued"
        if j.phase is Phase.QUEUED
        else "in progress"
        for j in jobs
    )
    order = ("succeeded", "skipped", "in progress", "queued", "failed")
    counts = ", ".join(f"{words[w]} {w}" for w in order if words[w])
    noun = "service" if len(jobs) == 1 else "services"
    return f"{account} · {region} — {len(jobs)} {noun}: {counts}"


async def test_each_group_has_a_header_whose_counts_follow_its_jobs(
    aws: AwsEmulator, planned: list[PlannedJob], redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=1.5, bad_images=("*:bad*",)))
    app = app_for(planned, redis_url)
    shown: dict[tuple[str | None, str | None], list[str]] = {}

    async with app.run_test(size=SIZE) as pilot:
        groups = app.groups
        # One group per account and region, in the spec's order, each with its own services.
        assert [g.scope for g in groups] == [(a, r) for a, r, _ in PLACES]
        assert [[p.job.target.service for p in g.panes] for g in groups] == [list(s) for *_, s in PLACES]
        assert all(g.header.display for g in groups)
        # The panes are shown group by group: the app's order is the groups' order.
        assert [p.job.target.service for p in app.panes] == [s for *_, ss in PLACES for s in ss]
        assert "caller " + CALLER in app.query_one(RunHeader).render().plain

        with anyio.fail_after(60):
            while True:
                await pilot.pause(0.02)
                app.flush()  # what the next frame shows
                for group in groups:
                    text = header_text(group)
                    jobs = [p.job for p in group.panes]
                    assert text == expected_header(*group.scope, jobs)
                    history = shown.setdefault(group.scope, [])
                    if not history or history[-1] != text:
                        history.append(text)
                if app.finished:
                    break

    for account, region, services in PLACES:
        history = shown[(account, region)]
        n = len(services)
        noun = "service" if n == 1 else "services"
        assert history[0].endswith(f"{n} {noun}: {n} queued") or "in progress" in history[0], history
        assert any("in progress" in text for text in history), history  # moved while running
        final = f"{n - 1} succeeded, 1 failed" if BAD in services else f"{n} succeeded"
        assert history[-1] == f"{account} · {region} — {n} {noun}: {final}", history


async def test_keys_work_across_groups(aws: AwsEmulator, planned: list[PlannedJob], redis_url: str) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=1.0, bad_images=("*:bad*",)))
    app = app_for(planned, redis_url)

    async with app.run_test(size=SIZE) as pilot:
        with anyio.fail_after(60):
            while not app.finished:
                await pilot.pause(0.05)
        await pilot.pause()
        panes = {p.job.target.service: p for p in app.panes}
        groups = {g.scope: g for g in app.groups}

        # j/k walk every pane in the order shown, across group boundaries and back.
        app.panes[0].focus()
        await pilot.pause()
        for index in (1, 2, 3, 4, 5):
            await pilot.press("j")
            assert focus_framed(app) == [index]
        for index in (4, 3, 2):
            await pilot.press("k")
            assert focus_framed(app) == [index]
        # enter opens the log of the pane framed, in the second group.
        await pilot.press("j", "j", "enter")
        await pilot.pause()
        assert isinstance(app.screen, EventLogScreen)
        assert app.screen.job is panes[BAD].job
        assert app.screen.query_one("#log", DataTable).row_count > 0
        await pilot.press("escape")
        await pilot.pause()

        # f: the failure only, under its group's header; the groups without one are hidden.
        await pilot.press("f")
        await pilot.pause()
        assert [s for s, p in panes.items() if p.display] == [BAD]
        assert [g.scope for g in app.groups if g.display] == [(B, WEST)]
        assert app.focused is panes[BAD]
        await pilot.press("f")
        await pilot.pause()
        assert all(p.display for p in panes.values()) and all(g.display for g in app.groups)

        # /: a region (or an account) is a filter too: two groups of eu-west-1, none of us-east-1.
        await pilot.press("slash", *WEST, "enter")
        await pilot.pause()
        assert [s for s, p in panes.items() if p.display] == ["s3", "s4", "s5"]
        assert [g.scope for g in app.groups if g.display] == [(B, WEST), (A, WEST)]
        assert not groups[(A, EAST)].display
        await pilot.press("escape")
        await pilot.pause()
        assert all(g.display for g in app.groups)

        # c: the successes collapse in every group; the failure stays open; headers stay.
        await pilot.press("c")
        await pilot.pause()
        assert [s for s, p in panes.items() if p.collapsed] == ["s0", "s1", "s2", "s3", "s5"]
        assert all(g.header.size.height == 1 for g in app.groups)
        await pilot.press("q")
    assert app.return_value == 1


async def test_one_account_and_region_shows_no_group_header(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    seed_services(aws.endpoint_url, EAST, [("prod", "s0", {"app": OLD}), ("prod", "s1", {"app": OLD})])
    lines = ['region = "us-east-1"', 'poll_interval = "100ms"']
    for service in ("s0", "s1"):
        lines += ["[[deploy]]", 'cluster = "prod"', f'service = "{service}"', 'container = "app"']
        lines += ['image = "registry.example.com/app"', 'tag = "2.0.0"']
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text("\n".join(lines) + "\n")
    app = app_for(plan_jobs(load_spec(spec_path), RUN_ID), redis_url)

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        (group,) = app.groups
        assert group.header.region.height == 0  # it would repeat what every pane shares
        assert app.panes[0].region.y == app.query_one("#panes").region.y  # panes start at the top


async def test_plain_and_json_name_the_account_and_region(
    aws: AwsEmulator, planned: list[PlannedJob], redis_url: str
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=1.0, bad_images=("*:bad*",)))
    plain, as_json = io.StringIO(), io.StringIO()
    state = RunState.from_plan(RUN_ID, planned)
    renderers = FanOut(PlainRenderer(plain, caller=CALLER), JsonRenderer(as_json, caller=CALLER))
    with anyio.fail_after(60):
        await run_planned(state, planned, redis_url, renderers, heartbeat_s=10)
    where = {s: (account, region) for account, region, services in PLACES for s in services}

    objects = [json.loads(line) for line in as_json.getvalue().splitlines()]
    run, events, summary = objects[0], [o for o in objects if o["type"] == "event"], objects[-1]
    assert run["caller"] == CALLER
    assert {t["service"]: (t["account"], t["region"]) for t in run["targets"]} == where
    assert events and all((e["account"], e["region"]) == where[e["service"]] for e in events)
    assert {r["service"]: (r["account"], r["region"]) for r in summary["results"]} == where
    assert {r["service"] for r in summary["results"] if r["status"] == "rolled_back"} == {BAD}

    lines = plain.getvalue().splitlines()
    assert lines[0] == f"run {RUN_ID}: 6 services in 3 account/region groups as {CALLER}"
    # Every state-change line names its target with its account and region.
    changes = [line for line in lines if re.match(r"\d\d:\d\d:\d\d ", line)]
    assert changes
    for line in changes:
        scope, name = line.split()[1:3]
        service = name.split("/")[1]
        assert scope == "/".join(where[service]) and name == f"prod/{service}", line
    # The summary table: a line per group with its counts, its rows under it, indented.
    start = next((i for i, line in enumerate(lines) if line.startswith("  TARGET  ")), None)
    assert start is not None, lines  # the column header, over the indented rows
    table = lines[start:]
    assert len(table) == 11, table
    assert table[1] == f"{A} · {EAST} — 3 services: 3 succeeded"
    assert table[5] == f"{B} · {WEST} — 2 services: 1 succeeded, 1 failed"
    assert table[8] == f"{A} · {WEST} — 1 service: 1 succeeded"
    rows = [table[i] for i in (2, 3, 4, 6, 7, 9)]
    assert [row.split()[0] for row in rows] == [f"prod/s{i}/app" for i in range(6)]
    assert all(row.startswith("  prod/") for row in rows)
    assert table[10].startswith(f"run {RUN_ID}: ")


def test_a_run_in_one_account_and_region_prints_as_before() -> None:
    """No scope before names, no group lines in the table: one place says nothing new."""
    targets = [Target(account=A, region=EAST, cluster="prod", service=f"s{i}") for i in range(2)]
    planned = [
        PlannedJob(
            job=DeployJob(
                run_id=RUN_ID,
                job_id=f"{RUN_ID}:{t.service}",
                target=t,
                changes=(ContainerChange(container="app", image="registry.example.com/app:2.0.0"),),
            )
        )
        for t in targets
    ]
    state = RunState.from_plan(RUN_ID, planned)
    out = io.StringIO()
    plain = PlainRenderer(out)
    plain.started(state)
    job = state.jobs[f"{RUN_ID}:s0"]
    plain.changed(job, None)
    plain.finished(state)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"run {RUN_ID}: 2 services"
    assert lines[1].split()[1:3] == ["prod/s0", "queued"]
    assert lines[2].startswith("TARGET  ")
    assert [line.split()[0] for line in lines[3:5]] == ["prod/s0/app", "prod/s1/app"]
    assert len(lines) == 6 and lines[5].startswith(f"run {RUN_ID}: ")
