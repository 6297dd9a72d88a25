"""`ecs-fanout approve RUN_ID [--wave NAME]` and `ecs-fanout stop RUN_ID`: their arguments, then
`orchestrator.resume` (imported only then: `--help` does not pay for Redis or botocore)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from orchestrator.errors import ConfigError
from orchestrator.exits import ExitCode
from orchestrator.options import (
    choose_output,
    configure_logging,
    run_id_parser,
)

if TYPE_CHECKING:
    from orchestrator.approval import Decision

__all__ = ["approve_command", "stop_command"]

_TAKEN_OVER = (
    "If the run's orchestrator is gone while the run waits for this word (killed while a wave "
    "waited for approval), this process takes the run over: it runs the remaining waves (workers "
    "in this process) and exits with the run's exit code."
)


def _parser(prog: str, description: str, ok: str) -> argparse.ArgumentParser:
    return run_id_parser(
        prog,
        f"{description} Needs the run's Redis (REDIS_URL). {_TAKEN_OVER}",
        {
            ExitCode.OK: ok,
            ExitCode.FAILED: "this process took the run over, and not every target succeeded",
            ExitCode.CONFIG: "unknown run or wave, a run without waves or already ended, no Redis",
            ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGHUP) while running a run taken over",
            ExitCode.TERMINATED: "terminated (SIGTERM) while running a run taken over",
        },
    )


def approve_command(argv: Sequence[str]) -> int:
    """`ecs-fanout approve RUN_ID [--wave NAME]`: let a wave's gate pass its approval."""
    parser = _parser(
        "ecs-fanout approve",
        "Approve the wave whose gate waits for a person in run RUN_ID, so that the next wave starts; "
        "with --wave NAME, that wave (also before its gate comes: it then passes without waiting).",
        "approved (and the run took it, or will at its gate; or the run taken over succeeded)",
    )
    parser.add_argument("--wave", metavar="NAME", help="the wave to approve (default: the one waiting)")
    return _give(parser.parse_args(argv), "approve")


def stop_command(argv: Sequence[str]) -> int:
    """`ecs-fanout stop RUN_ID`: the run starts no further wave."""
    parser = _parser(
        "ecs-fanout stop",
        "Stop run RUN_ID at its next gate: no further wave starts and their targets end not_started "
        "(with the run's --all-or-nothing, every service it changed goes back). Rollouts already "
        "started finish first; ECS is not interrupted.",
        "recorded (and the run took it, or will at its next gate)",
    )
    args = parser.parse_args(argv)
    args.wave = None
    return _give(args, "stop")


def _give(args: argparse.Namespace, decision: Decision) -> int:
    configure_logging(args.verbose, args.debug_aws)
    from orchestrator.resume import give_word
    from orchestrator.settings import load_settings
    from worker.aws import AwsAccess

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigError("set REDIS_URL to the Redis the run publishes to (the run printed it)")
    aws = AwsAccess(profile=args.profile or settings.profile)
    output = choose_output(args.output, sys.stdout)
    return give_word(args.run_id, settings.redis_url, args.wave, decision, output, aws)
