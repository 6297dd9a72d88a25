"""The deploy's steps, in order, in one event loop: the start-up path.

`orchestrator.deploy` reads the arguments, the spec and the settings and finds the endpoints;
here they are used: identity (every way in, `orchestrator.identity`), the plan, then preflight
and the gates' checks beside the executor's set-up, then the run (`orchestrator.checked_run`).
All of it is one `anyio.run` with one `Clients`: one client per service, region and way in,
and one assumed role's credentials, for identity, preflight, the gates and the run's questions
to ECS (the local executor's workers have a loop, and so clients, of their own).

Where the steps cannot share a loop, they run one after the other as before: with the live
view (Textual runs the run in its own loop, and a refused run must not open it), for the dry
run, and for `--all-or-nothing`'s revert. A run with a private redis-server starts it only once
the checks passed (a refused run starts none): its executor sets up after the checks.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from orchestrator.options import choose_output

if TYPE_CHECKING:
    from orchestrator.checked_run import Checked
    from orchestrator.endpoints import Endpoints
    from orchestrator.plan import PlannedJob
    from orchestrator.session import ExecutorFactory
    from orchestrator.settings import LambdaSettings, Settings
    from orchestrator.spec import Spec
    from orchestrator.state import RunState
    from orchestrator.waves import WavePlan
    from worker.credentials import Clients
    from worker.target import Target

__all__ = ["QUEUED_WINDOW_S", "DeployRun", "run_deploy"]

QUEUED_WINDOW_S = 300.0  # a job may wait this long in SQS for a Lambda before it counts as lost

log = logging.getLogger("ecs-fanout")


@dataclass(frozen=True)
class DeployRun:
    """What the steps need, as `orchestrator.deploy` found it."""

    args: argparse.Namespace
    spec: Spec
    settings: Settings
    run_id: str
    endpoints: Endpoints
    executor: str  # "local" or "lambda"
    max_parallel: int
    lambda_settings: Callable[[], LambdaSettings]  # read only for the lambda executor
    private_redis: Callable[[], str]  # starts a redis-server for this run (the caller stops it)

    @property
    def spec_path(self) -> str:
        return str(self.args.spec)


@dataclass
class _Ran:
    """What a run left for the steps after it: its state once its jobs could start, its Redis
    and its caller (for `--all-or-nothing`'s revert)."""

    redis_url: str = ""
    caller: str | None = None
    states: list[RunState] = field(default_factory=list)
    known: dict[str, dict[str, Any]] = field(default_factory=dict)  # the revisions preflight read

    def state(self) -> RunState | None:
        return self.states[0] if self.states else None


def run_deploy(run: DeployRun) -> int:
    """The deploy (or its dry run), from the endpoints to the exit code."""
    from orchestrator.exits import ExitCode
    from orchestrator.session import run_to_end

    if run.args.dry_run:
        return _dry_run(run)
    output = choose_output(run.args.output, sys.stdout)
    ran = _Ran()
    if output == "tui":
        code = _with_live_view(run, ran)
    else:
        code = run_to_end(lambda: anyio.run(_all_steps, run, output, ran), ran.state)
    if code == ExitCode.FAILED and run.args.all_or_nothing:
        from orchestrator.revert import put_back

        put_back(_session(run, ran, output), ran.redis_url, run.run_id)
    return code


async def _all_steps(run: DeployRun, output: str, ran: _Ran) -> None:
    from orchestrator.checked_run import run_checked
    from orchestrator.session import make_renderer
    from worker.credentials import Clients

    async with AsyncExitStack() as stack:
        clients = Clients(stack, run.endpoints.aws, run.run_id)
        planned, ran.caller = await _plan(run, clients)

        checked: Checked | None = None
        if run.endpoints.redis_url:
            ran.redis_url = run.endpoints.redis_url
        else:  # a private redis-server only for a run the checks passed
            checked = await _checks(run, planned, clients, ran.known)
            planned, ran.redis_url = checked[0], _private_redis(run)

        async def check() -> Checked:
            return checked or await _checks(run, planned, clients, ran.known)

        factory, queued_window_s = _executor(run, planned, ran.redis_url, set_up_early=True, known=ran.known)
        await run_checked(
            check,
            ran.states,
            run_id=run.run_id,
            redis_url=ran.redis_url,
            renderer=make_renderer(output, run.spec_path, ran.caller),
            heartbeat_s=run.spec.heartbeat,
            executor_factory=factory,
            clients=clients,
            queued_window_s=queued_window_s,
            remote_workers=run.executor == "lambda",
            set_up_beside=run.executor != "lambda",  # the lambda executor's set-up changes AWS
        )


def _with_live_view(run: DeployRun, ran: _Ran) -> int:
    """Identity, the plan and the checks in one loop, then the live view runs the run in its own."""
    from worker.credentials import Clients

    async def before() -> Checked:
        async with AsyncExitStack() as stack:
            clients = Clients(stack, run.endpoints.aws, run.run_id)
            planned, ran.caller = await _plan(run, clients)
            return await _checks(run, planned, clients, ran.known)

    planned, waves = anyio.run(before)
    ran.redis_url = run.endpoints.redis_url or _private_redis(run)
    return _session(run, ran, "tui")(planned, run.run_id, waves)


def _session(run: DeployRun, ran: _Ran, output: str) -> Callable[..., int]:
    """A run in a loop of its own (`run_session`): the live view's, and `--all-or-nothing`'s revert
    (all at once: no waves)."""
    from orchestrator.session import run_session

    def session(jobs: list[PlannedJob], session_run_id: str, waves: WavePlan | None = None) -> int:
        factory, queued_window_s = _executor(run, jobs, ran.redis_url, set_up_early=False, known=ran.known)
        return run_session(
            jobs,
            run_id=session_run_id,
            redis_url=ran.redis_url,
            output=output,
            exit_on_done=run.args.exit_on_done,
            spec_path=run.spec_path,
            heartbeat_s=run.spec.heartbeat,
            executor_factory=factory,
            queued_window_s=queued_window_s,
            remote_workers=run.executor == "lambda",
            caller=ran.caller,
            aws=run.endpoints.aws,
            waves=waves,
        )

    return session


def _private_redis(run: DeployRun) -> str:
    from orchestrator.errors import ConfigError

    if run.executor == "lambda" and not run.args.sandbox:
        raise ConfigError(
            "the lambda executor needs a Redis its workers on AWS can reach too: set REDIS_URL "
            "(redis:// or rediss://); only the local executor can use a private one"
        )
    return run.private_redis()


async def _plan(run: DeployRun, clients: Clients) -> tuple[list[PlannedJob], str]:
    """The accounts of the spec's ways in (each role assumed once: exit 2 if one cannot be),
    then the jobs: `--region` wins over the spec's regions, `region` (the environment's) fills in.
    Also who the caller is, for the output's header."""
    from orchestrator.durations import parse_duration
    from orchestrator.errors import ConfigError, SpecError
    from orchestrator.identity import identify
    from orchestrator.plan import plan_jobs
    from orchestrator.spec_access import conflicting_access
    from worker.contract import Follow

    args, spec, region = run.args, run.spec, run.endpoints.region
    try:
        timeout_s = parse_duration(args.timeout) if args.timeout else None
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from exc
    async with anyio.create_task_group() as tg:  # the clients made while STS answers
        tg.start_soon(_warm_clients, clients, args.region or spec.region or region)
        accounts, caller = await identify(spec, run.spec_path, clients, args.region, region)
    conflicts = conflicting_access(enumerate(spec.deploy, 1), spec, spec.region, accounts)
    if conflicts:
        raise SpecError(run.spec_path, conflicts)
    planned = plan_jobs(
        spec,
        run.run_id,
        timeout_s=timeout_s,
        rollback=False if args.no_rollback else None,
        region=args.region,
        default_region=region,
        accounts=accounts,
        wait=not args.no_wait,
        follow=Follow(args.follow) if args.follow else None,
    )
    return planned, caller


async def _warm_clients(clients: Clients, region: str | None) -> None:
    """The caller's ECS and ECR clients of the run's region, made while identity waits for STS:
    making one costs CPU (its service model), the wait costs none. A failure here is met again,
    and reported, by the call that needs the client."""
    from worker.access import CALLER

    for service in ("ecs", "ecr"):
        try:
            await clients.get(service, region, CALLER)
        except Exception:
            log.debug("making the %s client early failed", service, exc_info=True)
            return


async def _checks(
    run: DeployRun, planned: list[PlannedJob], clients: Clients, known: dict[str, dict[str, Any]]
) -> Checked:
    """Preflight (unless skipped), then the waves and their gates' checks: the plan to run.
    `known` gets the task definitions preflight read."""
    if not run.args.skip_preflight:
        planned = await _preflight(run, planned, clients, known)
    return planned, await _waves(run, planned, clients)


async def _preflight(
    run: DeployRun, planned: list[PlannedJob], clients: Clients, known: dict[str, dict[str, Any]]
) -> list[PlannedJob]:
    """The plan once every target passed preflight (pinned with `pin_digests`); else exit 2."""
    from orchestrator.preflight import preflight, raise_problems

    started = time.monotonic()
    result = await preflight(
        planned,
        aws=clients.aws,
        allowed_registries=run.settings.allowed_registries,
        pin_digests=run.spec.pin_digests,
        clients=clients,
    )
    several = len({p.target.scope for p in planned}) > 1  # then say where: names repeat across accounts

    def entry_of(target: Target, container: str) -> str:
        entry = run.spec.entry_name(target.cluster, target.service, container)
        return f"{entry} in {target.scope}" if several else entry

    raise_problems(result, run.spec_path, entry_of)
    known.update(result.task_definitions)
    log.info(
        "preflight: %d services (%s) on %d clusters, %d ECR images checked in %.2fs",
        result.services,
        result.strategies(),
        result.clusters,
        result.ecr_images,
        time.monotonic() - started,
    )
    return result.planned


async def _waves(run: DeployRun, planned: list[PlannedJob], clients: Clients) -> WavePlan | None:
    """The run's waves (None: all at once); their gates' alarms and task definitions checked."""
    from orchestrator.wave_preflight import check_gates
    from orchestrator.waves import plan_waves

    waves = plan_waves(
        run.spec,
        planned,
        region=run.args.region,
        default_region=run.endpoints.region,
        all_or_nothing=run.args.all_or_nothing,
        max_parallel=run.max_parallel,
    )
    if waves is not None and not run.args.skip_preflight:
        await check_gates(waves, clients.aws, run.run_id, run.spec_path, clients)
    return waves


def _executor(
    run: DeployRun,
    planned: list[PlannedJob],
    redis_url: str,
    *,
    set_up_early: bool,
    known: dict[str, dict[str, Any]],
) -> tuple[ExecutorFactory, float | None]:
    """The executor, and how long a job may wait in its queue before it counts as lost.
    `set_up_early`: the local executor sets up for `planned` in `prepare` (beside the checks);
    its jobs register from the revisions preflight read (`known`, filled by then)."""
    from orchestrator.session import local_executor
    from worker.contract import Follow

    endpoints, settings = run.endpoints, run.settings
    if run.executor != "lambda":
        events = any(p.job.options.follow is Follow.EVENTS for p in planned)
        factory = local_executor(
            run.max_parallel,
            endpoints.aws,
            settings.allowed_registries,
            events=events,
            set_up_for=[p.job for p in planned] if set_up_early else None,
            known=known,
        )
        return factory, None
    from orchestrator.dispatch import check_sizes
    from orchestrator.lambda_executor import lambda_executor

    check_sizes([p.job for p in planned])  # refused before any set-up
    lambda_settings = run.lambda_settings()
    if endpoints.prepare_lambda is not None:
        lambda_settings = endpoints.prepare_lambda(lambda_settings)
    factory = lambda_executor(
        lambda_settings,
        aws=endpoints.aws,
        region=endpoints.region,
        run_id=run.run_id,
        worker_environment=settings.worker_settings(
            redis_url=redis_url, region=endpoints.region
        ).environment(),
        on_ready=endpoints.on_queue_ready,
        jobs=[p.job for p in planned],
    )
    return factory, max(run.spec.heartbeat, QUEUED_WINDOW_S)


def _dry_run(run: DeployRun) -> int:
    """Identity and the plan, then what a deploy would change (`orchestrator.dryrun`), wave by
    wave for a spec with waves."""
    from orchestrator.dryrun import dry_run
    from orchestrator.waves import plan_waves
    from worker.credentials import Clients

    async def plan() -> list[PlannedJob]:
        async with AsyncExitStack() as stack:
            return (await _plan(run, Clients(stack, run.endpoints.aws, run.run_id)))[0]

    planned = anyio.run(plan)
    waves = plan_waves(run.spec, planned, region=run.args.region, default_region=run.endpoints.region)
    json_lines = run.args.output == "json"
    return dry_run(planned, aws=run.endpoints.aws, full=run.args.diff, json_lines=json_lines, waves=waves)
