"""`ecs-fanout attach RUN_ID`: its arguments, then `orchestrator.attach` (imported only then:
`attach --help` does not pay for Redis)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from orchestrator.errors import ConfigError
from orchestrator.exits import ExitCode
from orchestrator.options import (
    choose_output,
    configure_logging,
    run_id_parser,
)

__all__ = ["attach_command"]


def attach_command(argv: Sequence[str]) -> int:
    """`ecs-fanout attach RUN_ID`: follow a run from another terminal, replayed from its start."""
    parser = run_id_parser(
        "ecs-fanout attach",
        "Follow a run from another terminal: its events replayed from its start, then "
        "live, to its end. Reads the run's Redis (REDIS_URL) only; stopping it never stops the run. "
        "If the run's orchestrator is gone (killed), jobs silent for the run's heartbeat are judged "
        "lost here, so the command ends with the run's summary all the same.",
        {
            ExitCode.OK: "the run ended, every target succeeded or is baking (as the run's own)",
            ExitCode.FAILED: "the run ended otherwise (as the run's own)",
            ExitCode.CONFIG: "unknown run id, or no Redis",
            ExitCode.INTERRUPTED: "stopped following (the run goes on)",
            ExitCode.TERMINATED: "stopped following by SIGTERM (the run goes on)",
        },
        aws=False,
    )
    parser.add_argument("--exit-on-done", action="store_true", help="live view: exit when the run ends")
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.debug_aws)

    from orchestrator.attach import attach
    from orchestrator.settings import load_settings

    redis_url = load_settings().redis_url
    if not redis_url:
        raise ConfigError("set REDIS_URL to the Redis the run publishes to (the run printed it)")
    return attach(args.run_id, redis_url, choose_output(args.output, sys.stdout), args.exit_on_done)
