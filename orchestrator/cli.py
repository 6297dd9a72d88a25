"""The command line: parse, validate, hand over to the run core, turn the outcome into an exit code.

Kept thin and cheap to import: `--help` must not pay for aioboto3, moto or Textual, so
everything heavy is imported inside the function that needs it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, TextIO

from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.plan import PlannedJob
    from orchestrator.spec import Spec

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
QUEUED_WINDOW_S = 300.0  # a job may wait this long in SQS for a Lambda before it counts as lost

log = logging.getLogger("ecs-fanout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecs-fanout",
        description="Roll new container images out to many ECS services at once and follow every rollout.",
        epilog="Exit codes: 0 all succeeded or skipped, 1 any other end state, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("spec", help="spec file (.toml or .json), e.g. specs/default.toml")
    add_output_options(parser)
    parser.add_argument(
        "--exit-on-done", action="store_true", help="live view: exit when the run ends (default: wait for q)"
    )
    parser.add_argument("--executor", choices=("local", "lambda"), help="where workers run (default: local)")
    parser.add_argument("--sandbox", action="store_true", help="run against an embedded AWS emulator")
    parser.add_argument(
        "--dry-run", action="store_true", help="show current -> new image per target, change nothing"
    )
    parser.add_argument(
        "--diff", action="store_true", help="with --dry-run: the revision diff per service and ECR digests"
    )
    parser.add_argument("--max-parallel", type=int, metavar="N", help="services deployed at the same time")
    parser.add_argument(
        "--ephemeral-queue",
        action="store_true",
        help="lambda executor: a queue for this run only, deleted at its end",
    )
    parser.add_argument("--timeout", metavar="DURATION", help="deadline per rollout, e.g. 15m")
    parser.add_argument("--no-rollback", action="store_true", help="leave failed rollouts as they are")
    parser.add_argument(
        "--all-or-nothing",
        action="store_true",
        help="if any target fails, put every service this run changed back on its previous revision",
    )
    parser.add_argument(
        "--skip-preflight",
        action="store_true",
        help="do not check clusters, services, containers and ECR images before changing anything",
    )
    parser.add_argument("--region", help="AWS region (default: spec, then AWS_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    return parser


def add_output_options(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_const", dest="output", const="json", help="NDJSON on stdout")
    output.add_argument("--plain", action="store_const", dest="output", const="plain", help="plain lines")


def choose_output(requested: str | None, stdout: TextIO) -> str:
    if requested:
        return requested
    # A person at a terminal gets the live view; pipes and CI get plain lines.
    return "tui" if stdout.isatty() else "plain"


# Each subcommand's module function, imported when called: `--help` stays cheap.
SUBCOMMANDS = {
    "iam-policy": "iam_policy",
    "attach": "attach_command",
    "plan": "plan_command",
    "rollback": "rollback_command",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            from orchestrator import commands

            command: Callable[[Sequence[str]], int] = getattr(commands, SUBCOMMANDS[argv[0]])
            return command(argv[1:])
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return _run(args)
    except (ConfigError, ExceptionGroup) as exc:
        # Raised inside a task group, a ConfigError arrives wrapped in an ExceptionGroup.
        config = _config_error(exc)
        if config is None:
            raise
        print(f"ecs-fanout: {config}", file=sys.stderr)
        return EXIT_CONFIG


def _config_error(exc: BaseException) -> ConfigError | None:
    if isinstance(exc, ConfigError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        return next((found for e in exc.exceptions if (found := _config_error(e)) is not None), None)
    return None


def _preflight(
    spec: Spec,
    spec_path: str,
    planned: list[PlannedJob],
    region: str | None,
    profile: str | None,
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
            region=region,
            profile=profile,
            allowed_registries=allowed_registries,
            pin_digests=spec.pin_digests,
        )
    )
    raise_problems(result, spec_path, lambda t: spec.entry_name(t.cluster, t.service, t.container))
    log.info(
        "preflight: %d services on %d clusters, %d ECR images checked in %.2fs",
        result.services,
        result.clusters,
        result.ecr_images,
        time.monotonic() - started,
    )
    return result.planned


def _run(args: argparse.Namespace) -> int:
    from orchestrator.durations import parse_duration
    from orchestrator.plan import new_run_id, plan_jobs
    from orchestrator.settings import load_settings
    from orchestrator.spec import load_spec
    from worker.registries import ALLOWED_REGISTRIES_ENV, allowed_from_env

    spec = load_spec(args.spec)  # SpecError (a ConfigError) before anything is sent
    settings = load_settings()
    if args.max_parallel is not None and args.max_parallel < 1:
        raise ConfigError("--max-parallel must be at least 1")
    try:
        timeout_s = parse_duration(args.timeout) if args.timeout else None
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from exc
    region = args.region or spec.region or settings.region
    run_id = new_run_id()
    planned = plan_jobs(
        spec,
        run_id,
        timeout_s=timeout_s,
        rollback=False if args.no_rollback else None,
        region=region,
    )
    executor = args.executor or settings.executor
    max_parallel = args.max_parallel or (
        spec.max_parallel
        if "max_parallel" in spec.model_fields_set
        else settings.max_parallel or spec.max_parallel
    )
    profile = args.profile or settings.profile
    lambda_settings = settings.lambda_.model_copy(
        update={"ephemeral_queue": args.ephemeral_queue or settings.lambda_.ephemeral_queue}
    )

    with ExitStack() as stack:
        redis_url = settings.redis_url
        sandbox = None
        if args.sandbox:
            from orchestrator.sandbox.session import start_sandbox

            sandbox = stack.enter_context(start_sandbox(spec, region or "us-east-1", redis_url=redis_url))
            redis_url, region, profile = sandbox.redis_url, sandbox.region, None
        if args.dry_run:
            from orchestrator.dryrun import dry_run

            return dry_run(planned, region=region, profile=profile, full=args.diff)
        allowed_registries = allowed_from_env(os.environ)
        if not args.skip_preflight:
            planned = _preflight(spec, args.spec, planned, region, profile, allowed_registries)
        if not redis_url:
            raise ConfigError(
                "no Redis to carry events: set REDIS_URL (redis:// or rediss://) or use --sandbox"
            )
        from orchestrator.session import local_executor, run_session

        if executor == "lambda":
            from orchestrator.dispatch import check_sizes
            from orchestrator.lambda_executor import lambda_executor

            check_sizes([p.job for p in planned])  # refused before any set-up
            if sandbox is not None:
                lambda_settings = sandbox.prepare_lambda(lambda_settings)
            factory = lambda_executor(
                lambda_settings,
                region=region,
                profile=profile,
                run_id=run_id,
                worker_environment={"REDIS_URL": redis_url}
                | ({ALLOWED_REGISTRIES_ENV: ",".join(allowed_registries)} if allowed_registries else {}),
                on_ready=None if sandbox is None else sandbox.on_queue_ready,
            )
            queued_window_s: float | None = max(spec.heartbeat, QUEUED_WINDOW_S)
        else:
            factory = local_executor(max_parallel, region, profile, allowed_registries)
            queued_window_s = None

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
            )

        code = session(planned, run_id)
        if code == EXIT_FAILED and args.all_or_nothing:
            from orchestrator.revert import load_reverts

            revert_run_id = new_run_id()
            print(
                f"ecs-fanout: --all-or-nothing: not every target succeeded; run {revert_run_id} puts back "
                f"every service run {run_id} changed",
                file=sys.stderr,
            )
            session(load_reverts(redis_url, run_id, revert_run_id), revert_run_id)
        return code
    raise AssertionError("unreachable: the with-block returns")
