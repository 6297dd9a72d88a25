"""The main command: deploy a spec, or with `--dry-run` (and as `ecs-fanout plan`) show what a
deploy would change.

`cli` parses and hands the arguments over to `deploy`; each step is a function of its own:
the precedence of flags, spec and environment (`_region`, `_max_parallel`, ...), the plan,
then `_execute`: the endpoints (the sandbox's, or the real AWS and Redis), the dry run,
preflight, the executor, the run, and `--all-or-nothing`'s revert.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigError
from orchestrator.exits import ExitCode
from orchestrator.options import (
    add_aws_options,
    add_output_options,
    add_verbose_option,
    choose_output,
    configure_logging,
    exit_codes_epilog,
)

if TYPE_CHECKING:
    from orchestrator.endpoints import Endpoints
    from orchestrator.plan import PlannedJob
    from orchestrator.session import ExecutorFactory
    from orchestrator.settings import LambdaSettings, Settings
    from orchestrator.spec import Spec
    from orchestrator.waves import WavePlan
    from worker.aws import AwsAccess
    from worker.target import Target

__all__ = ["DEPLOY_DEFAULTS", "deploy", "plan_command"]

QUEUED_WINDOW_S = 300.0  # a job may wait this long in SQS for a Lambda before it counts as lost

# Every option of the main command, as a command that only reads (`plan`) leaves it.
DEPLOY_DEFAULTS: dict[str, Any] = {
    "output": None,
    "exit_on_done": False,
    "executor": None,
    "sandbox": False,
    "dry_run": False,
    "diff": False,
    "max_parallel": None,
    "ephemeral_queue": False,
    "timeout": None,
    "no_rollback": False,
    "all_or_nothing": False,
    "skip_preflight": False,
    "region": None,
    "profile": None,
    "verbose": False,
    "debug_aws": False,
    "no_wait": False,
    "follow": None,
}

log = logging.getLogger("ecs-fanout")


def plan_command(argv: Sequence[str]) -> int:
    """`ecs-fanout plan SPEC`: per service, its controller and strategy, the images, the revision
    diff a deploy would register and the ECR digests. Changes nothing."""
    parser = argparse.ArgumentParser(
        prog="ecs-fanout plan",
        description="Show what deploying SPEC would change: per service how ECS deploys it (its "
        "deployment controller and strategy), per target the image it runs now and the one it "
        "would get, per service the revision diff, per ECR image its digest. Only reads AWS; "
        "changes nothing.",
        epilog=exit_codes_epilog(
            {
                ExitCode.OK: "every target can be deployed",
                ExitCode.FAILED: "some cannot (each line says why)",
                ExitCode.CONFIG: "bad input or configuration",
                ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGHUP)",
                ExitCode.TERMINATED: "terminated (SIGTERM)",
            }
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", metavar="SPEC", help="spec file (.toml or .json), e.g. specs/default.toml")
    add_output_options(parser)
    parser.add_argument("--sandbox", action="store_true", help="against an embedded AWS emulator")
    add_aws_options(parser)
    add_verbose_option(parser)
    parser.set_defaults(**(DEPLOY_DEFAULTS | {"dry_run": True, "diff": True}))
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.debug_aws)
    return deploy(args)


def deploy(args: argparse.Namespace) -> int:
    """The main command, from its parsed arguments to an exit code."""
    from orchestrator.plan import new_run_id
    from orchestrator.settings import load_settings
    from orchestrator.spec import load_spec

    _check_flags(args)
    spec = load_spec(args.spec)  # SpecError (a ConfigError) before anything is sent
    settings = load_settings()
    run_id = new_run_id()
    region = _region(args, spec, settings)
    executor = args.executor or settings.executor
    if executor == "lambda" and not args.dry_run:
        _lambda_settings(args, settings)  # a bad ECS_FANOUT_LAMBDA_* is refused before any set-up
    if executor == "lambda" and not args.dry_run:
        _refuse_profiles(spec, args.spec)
    return _execute(
        args,
        spec=spec,
        settings=settings,
        run_id=run_id,
        region=region,
        profile=args.profile or settings.profile,
        executor=executor,
        max_parallel=_max_parallel(args, spec, settings),
    )


def _check_flags(args: argparse.Namespace) -> None:
    """Flags that contradict each other. A flag of the read-only mode never deploys on its own."""
    if args.diff and not args.dry_run:
        raise ConfigError(
            "--diff works with --dry-run only (it would deploy otherwise): add --dry-run, "
            "or use `ecs-fanout plan SPEC`"
        )
    if args.max_parallel is not None and args.max_parallel < 1:
        raise ConfigError("--max-parallel must be at least 1")


def _region(args: argparse.Namespace, spec: Spec, settings: Settings) -> str | None:
    # Every target carries its region; the sandbox's emulator defaults to us-east-1.
    return args.region or spec.region or settings.region or ("us-east-1" if args.sandbox else None)


def _max_parallel(args: argparse.Namespace, spec: Spec, settings: Settings) -> int:
    if args.max_parallel:
        return int(args.max_parallel)
    if "max_parallel" in spec.model_fields_set:
        return spec.max_parallel
    return settings.max_parallel or spec.max_parallel


def _plan(
    args: argparse.Namespace, spec: Spec, run_id: str, region: str | None, aws: AwsAccess
) -> tuple[list[PlannedJob], str]:
    """The accounts of the spec's ways in (each role assumed once: exit 2 if one cannot be),
    then the jobs: `--region` wins over the spec's regions, `region` (the environment's) fills in.
    Also who the caller is, for the output's header."""
    from orchestrator.durations import parse_duration
    from orchestrator.errors import SpecError
    from orchestrator.identity import identify
    from orchestrator.plan import plan_jobs
    from orchestrator.spec_access import conflicting_access
    from worker.contract import Follow

    try:
        timeout_s = parse_duration(args.timeout) if args.timeout else None
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from exc
    accounts, caller = identify(spec, args.spec, aws, run_id, args.region, region)
    conflicts = conflicting_access(enumerate(spec.deploy, 1), spec, spec.region, accounts)
    if conflicts:
        raise SpecError(args.spec, conflicts)
    planned = plan_jobs(
        spec,
        run_id,
        timeout_s=timeout_s,
        rollback=False if args.no_rollback else None,
        region=args.region,
        default_region=region,
        accounts=accounts,
        wait=not args.no_wait,
        follow=Follow(args.follow) if args.follow else None,
    )
    return planned, caller


def _refuse_profiles(spec: Spec, spec_path: str) -> None:
    """The lambda executor's workers run on AWS: a profile of this machine cannot reach them."""
    from orchestrator.errors import SpecError
    from orchestrator.spec_access import access_of

    lines = [
        f"{where}: profile {access.profile!r} with the lambda executor: profiles exist only on this "
        "machine; give role_arn"
        for where, access in [("top level", spec.own_access)]
        + [(f"entry {i} ({e.label})", access_of(e, spec)) for i, e in enumerate(spec.deploy, 1)]
        if access is not None and access.profile is not None
    ]
    if lines:
        raise SpecError(spec_path, lines)


def _lambda_settings(args: argparse.Namespace, settings: Settings) -> LambdaSettings:
    """Read only for the lambda executor: a bad ECS_FANOUT_LAMBDA_* must not stop a local run."""
    lambda_settings = settings.lambda_settings()
    return lambda_settings.model_copy(
        update={"ephemeral_queue": args.ephemeral_queue or lambda_settings.ephemeral_queue}
    )


def _dry_run(args: argparse.Namespace, planned: list[PlannedJob], aws: AwsAccess) -> int:
    from orchestrator.dryrun import dry_run

    return dry_run(planned, aws=aws, full=args.diff, json_lines=args.output == "json")


def _preflight(
    spec: Spec,
    spec_path: str,
    planned: list[PlannedJob],
    aws: AwsAccess,
    allowed_registries: Sequence[str],
) -> list[PlannedJob]:
    """The plan once every target passed preflight (pinned with `pin_digests`); else exit 2."""
    import time

    import anyio

    from orchestrator.preflight import preflight, raise_problems

    started = time.monotonic()
    result = anyio.run(
        lambda: preflight(
            planned,
            aws=aws,
            allowed_registries=allowed_registries,
            pin_digests=spec.pin_digests,
        )
    )
    several = len({p.target.scope for p in planned}) > 1  # then say where: names repeat across accounts

    def entry_of(target: Target, container: str) -> str:
        entry = spec.entry_name(target.cluster, target.service, container)
        return f"{entry} in {target.scope}" if several else entry

    raise_problems(result, spec_path, entry_of)
    log.info(
        "preflight: %d services (%s) on %d clusters, %d ECR images checked in %.2fs",
        result.services,
        result.strategies(),
        result.clusters,
        result.ecr_images,
        time.monotonic() - started,
    )
    return result.planned


def _execute(
    args: argparse.Namespace,
    *,
    spec: Spec,
    settings: Settings,
    run_id: str,
    region: str | None,
    profile: str | None,
    executor: str,
    max_parallel: int,
) -> int:
    """The sandbox (or the real endpoints), then dry run, preflight, executor and the run."""
    from worker.aws import AwsAccess

    with ExitStack() as stack:
        events = stack.enter_context(ExitStack())  # a private Redis outlives the sandbox's Lambda
        if args.sandbox:
            try:
                from orchestrator.sandbox.session import start_sandbox
            except ImportError as exc:  # the core install: no moto
                log.debug("the sandbox cannot be imported", exc_info=True)
                raise ConfigError(
                    f"--sandbox needs the sandbox extra ({exc}): pip install 'ecs-fanout[sandbox]'"
                ) from exc
            endpoints = stack.enter_context(
                start_sandbox(spec, region or "us-east-1", redis_url=settings.redis_url or None)
            )
        else:
            from orchestrator.endpoints import Endpoints

            endpoints = Endpoints(AwsAccess(profile=profile), settings.redis_url or None, region)
        redis_url, region, aws = endpoints.redis_url, endpoints.region, endpoints.aws
        planned, caller = _plan(args, spec, run_id, region, aws)
        if args.dry_run:
            return _dry_run(args, planned, aws)
        allowed_registries = settings.allowed_registries
        if not args.skip_preflight:
            planned = _preflight(spec, args.spec, planned, aws, allowed_registries)
        waves = _waves(args, spec, planned, region, max_parallel, aws, run_id)
        if not redis_url:
            if executor == "lambda" and not args.sandbox:
                raise ConfigError(
                    "the lambda executor needs a Redis its workers on AWS can reach too: set REDIS_URL "
                    "(redis:// or rediss://); only the local executor can use a private one"
                )
            from orchestrator.redis_server import private_redis

            redis_url = events.enter_context(private_redis(run_id))
        from orchestrator.revert import put_back
        from orchestrator.session import run_session

        factory, queued_window_s = _executor(
            args, executor, spec, settings, endpoints, planned, run_id, redis_url, max_parallel
        )

        def session(jobs: list[PlannedJob], session_run_id: str) -> int:
            return run_session(
                jobs,
                run_id=session_run_id,
                redis_url=redis_url,
                output=choose_output(args.output, sys.stdout),
                exit_on_done=args.exit_on_done,
                spec_path=args.spec,
                heartbeat_s=spec.heartbeat,
                executor_factory=factory,
                queued_window_s=queued_window_s,
                remote_workers=executor == "lambda",
                caller=caller,
                aws=endpoints.aws,
                waves=waves if session_run_id == run_id else None,  # a revert puts all back at once
            )

        code = session(planned, run_id)
        if code == ExitCode.FAILED and args.all_or_nothing:
            put_back(session, redis_url, run_id)
        return code
    raise AssertionError("unreachable: the with-block returns")


def _waves(
    args: argparse.Namespace,
    spec: Spec,
    planned: list[PlannedJob],
    region: str | None,
    max_parallel: int,
    aws: AwsAccess,
    run_id: str,
) -> WavePlan | None:
    """The run's waves (None: all at once); their gates' alarms and task definitions checked."""
    import anyio

    from orchestrator.wave_preflight import check_gates
    from orchestrator.waves import plan_waves

    waves = plan_waves(
        spec,
        planned,
        region=args.region,
        default_region=region,
        all_or_nothing=args.all_or_nothing,
        max_parallel=max_parallel,
    )
    if waves is not None and not args.skip_preflight:
        anyio.run(check_gates, waves, aws, run_id, args.spec)
    return waves


def _executor(
    args: argparse.Namespace,
    executor: str,
    spec: Spec,
    settings: Settings,
    endpoints: Endpoints,
    planned: list[PlannedJob],
    run_id: str,
    redis_url: str,
    max_parallel: int,
) -> tuple[ExecutorFactory, float | None]:
    """The executor, and how long a job may wait in its queue before it counts as lost."""
    from orchestrator.session import local_executor
    from worker.contract import Follow

    if executor != "lambda":
        events = any(p.job.options.follow is Follow.EVENTS for p in planned)
        return local_executor(max_parallel, endpoints.aws, settings.allowed_registries, events=events), None
    from orchestrator.dispatch import check_sizes
    from orchestrator.lambda_executor import lambda_executor

    check_sizes([p.job for p in planned])  # refused before any set-up
    lambda_settings = _lambda_settings(args, settings)
    if endpoints.prepare_lambda is not None:
        lambda_settings = endpoints.prepare_lambda(lambda_settings)
    factory = lambda_executor(
        lambda_settings,
        aws=endpoints.aws,
        region=endpoints.region,
        run_id=run_id,
        worker_environment=settings.worker_settings(
            redis_url=redis_url, region=endpoints.region
        ).environment(),
        on_ready=endpoints.on_queue_ready,
        jobs=[p.job for p in planned],
    )
    return factory, max(spec.heartbeat, QUEUED_WINDOW_S)
