"""The main command: deploy a spec, or with `--dry-run` (and as `ecs-fanout plan`) show what a
deploy would change.

`cli` parses and hands the arguments over to `deploy`; each step is a function of its own:
the precedence of flags, spec and environment (`_region`, `_max_parallel`, ...), then
`_execute`: the endpoints (the sandbox's, or the real AWS and Redis), handed over to
`orchestrator.deploy_steps` for identity, the plan, the dry run or preflight, the executor,
the run, and `--all-or-nothing`'s revert.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigError
from orchestrator.exits import ExitCode
from orchestrator.options import (
    add_aws_options,
    add_output_options,
    add_verbose_option,
    configure_logging,
    exit_codes_epilog,
)

if TYPE_CHECKING:
    from orchestrator.settings import LambdaSettings, Settings
    from orchestrator.spec import Spec

__all__ = ["DEPLOY_DEFAULTS", "deploy", "plan_command"]

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
    """The sandbox (or the real endpoints), then the deploy's steps (`orchestrator.deploy_steps`)."""
    from orchestrator.deploy_steps import DeployRun, run_deploy
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

        def private_redis() -> str:
            from orchestrator.redis_server import private_redis

            return events.enter_context(private_redis(run_id))

        return run_deploy(
            DeployRun(
                args=args,
                spec=spec,
                settings=settings,
                run_id=run_id,
                endpoints=endpoints,
                executor=executor,
                max_parallel=max_parallel,
                lambda_settings=lambda: _lambda_settings(args, settings),
                private_redis=private_redis,
            )
        )
    raise AssertionError("unreachable: the with-block returns")
