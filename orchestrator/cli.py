"""The command line: parse, validate, hand over to the run core, turn the outcome into an exit code.

Kept thin and cheap to import: `--help` must not pay for aioboto3, moto or Textual, so
everything heavy is imported inside the function that needs it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TextIO

from orchestrator.errors import ConfigError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("ecs-fanout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecs-fanout",
        description="Roll new container images out to many ECS services at once and follow every rollout.",
        epilog="Exit codes: 0 all succeeded or skipped, 1 any other end state, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("spec", help="spec file (.toml or .json), e.g. specs/default.toml")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_const", dest="output", const="json", help="NDJSON on stdout")
    output.add_argument("--plain", action="store_const", dest="output", const="plain", help="plain lines")
    parser.add_argument("--executor", choices=("local", "lambda"), help="where workers run (default: local)")
    parser.add_argument("--sandbox", action="store_true", help="run against an embedded AWS emulator")
    parser.add_argument(
        "--dry-run", action="store_true", help="show current -> new image per target, change nothing"
    )
    parser.add_argument("--max-parallel", type=int, metavar="N", help="services deployed at the same time")
    parser.add_argument("--timeout", metavar="DURATION", help="deadline per rollout, e.g. 15m")
    parser.add_argument("--no-rollback", action="store_true", help="leave failed rollouts as they are")
    parser.add_argument("--region", help="AWS region (default: spec, then AWS_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    return parser


def _choose_output(requested: str | None, stdout: TextIO) -> str:
    if requested:
        return requested
    # The TUI becomes the terminal default when it lands; until then, plain lines.
    return "plain"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"ecs-fanout: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _run(args: argparse.Namespace) -> int:
    from orchestrator.durations import parse_duration
    from orchestrator.plan import new_run_id, plan_jobs
    from orchestrator.settings import Settings
    from orchestrator.spec import load_spec

    spec = load_spec(args.spec)  # SpecError (a ConfigError) before anything is sent
    settings = Settings()
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
    if executor == "lambda":
        raise ConfigError("the lambda executor is not available yet; use --executor local")
    max_parallel = args.max_parallel or (
        spec.max_parallel
        if "max_parallel" in spec.model_fields_set
        else settings.max_parallel or spec.max_parallel
    )

    with ExitStack() as stack:
        redis_url = settings.redis_url
        if args.sandbox:
            from orchestrator.sandbox.session import start_sandbox

            sandbox = stack.enter_context(start_sandbox(spec, region or "us-east-1", redis_url=redis_url))
            redis_url = sandbox.redis_url
            region = sandbox.region
        if args.dry_run:
            from orchestrator.dryrun import dry_run

            return dry_run(planned, region=region, profile=args.profile or settings.profile)
        if not redis_url:
            raise ConfigError(
                "no Redis to carry events: set REDIS_URL (redis:// or rediss://) or use --sandbox"
            )
        output = _choose_output(args.output, sys.stdout)
        from orchestrator.session import run_session

        return run_session(
            planned,
            run_id=run_id,
            redis_url=redis_url,
            output=output,
            spec_path=args.spec,
            max_parallel=max_parallel,
            heartbeat_s=spec.heartbeat,
            region=region,
            profile=args.profile or settings.profile,
        )
    raise AssertionError("unreachable: the with-block returns")
