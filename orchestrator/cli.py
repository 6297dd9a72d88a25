"""The command line: parse, then hand over to the command's module, through the error boundary.

`ecs-fanout SPEC [options]` deploys (`orchestrator.deploy`); the subcommands are dispatched by
name (`SUBCOMMANDS`) to functions that parse their own arguments. Nothing a command runs
imports this module. Every command runs inside `orchestrator.boundary.run_command`: an
expected failure is one line on stderr with its exit code, never a traceback.

Kept thin and cheap to import: `--help` must not pay for aioboto3, moto, redis or Textual, so
every command's module is imported only when that command runs.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from orchestrator import stop_signals
from orchestrator.boundary import run_command
from orchestrator.options import (
    EXIT_CODES_EPILOG,
    add_aws_options,
    add_output_options,
    add_verbose_option,
    configure_logging,
)

__all__ = ["SUBCOMMANDS", "build_parser", "main"]


class Subcommand(NamedTuple):
    module: str
    function: str  # (argv) -> exit code
    summary: str


SUBCOMMANDS = {
    "plan": Subcommand(
        "orchestrator.deploy", "plan_command", "what a deploy of SPEC would change (diffs, digests)"
    ),
    "rollback": Subcommand(
        "orchestrator.rollback", "rollback_command", "put every service a past run changed back"
    ),
    "attach": Subcommand(
        "orchestrator.attach_command", "attach_command", "follow a run from another terminal"
    ),
    "status": Subcommand(
        "orchestrator.status_command",
        "status_command",
        "what ECS runs now for each target of a run, and if it matches",
    ),
    "approve": Subcommand(
        "orchestrator.approve_command", "approve_command", "approve a wave waiting at its gate"
    ),
    "stop": Subcommand("orchestrator.approve_command", "stop_command", "a run starts no further wave"),
    "iam-policy": Subcommand(
        "orchestrator.iam", "iam_policy_command", "least-privilege IAM policies, as JSON"
    ),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ecs-fanout")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


class _Version(argparse.Action):
    """`--version`, looked up only when asked (importlib.metadata is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"ecs-fanout {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<12} {sub.summary}" for name, sub in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="ecs-fanout",
        usage="%(prog)s SPEC [options]\n       %(prog)s {" + ",".join(SUBCOMMANDS) + "} ...",
        description="Roll new container images out to many ECS services at once and follow every rollout."
        f"\n\nother commands (`ecs-fanout COMMAND --help` for theirs):\n{commands}",
        epilog=EXIT_CODES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", metavar="SPEC", help="spec file (.toml or .json), e.g. specs/default.toml")
    parser.add_argument("--version", action=_Version)
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
        "--follow",
        choices=("events", "poll"),
        help="events (default): ECS's EventBridge events end a rollout the moment ECS says so; "
        "poll: ask ECS on a schedule only",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="fail at once if another run is deploying the same service, instead of waiting for it",
    )
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
    add_aws_options(parser)
    add_verbose_option(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    stop_signals.install()  # SIGTERM and SIGHUP stop a command as Ctrl-C does (this process only)
    code = run_command(lambda: _dispatch(args))
    # The process ends next: its last garbage collections walk every object botocore, pydantic
    # and the run left (measured 0.3-0.8 s of a run's wall time); frozen, they are skipped.
    gc.freeze()
    return code


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        sub = SUBCOMMANDS[argv[0]]
        command: Callable[[Sequence[str]], int] = getattr(importlib.import_module(sub.module), sub.function)
        return command(argv[1:])
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose, args.debug_aws)
    from orchestrator.deploy import deploy

    return deploy(args)
