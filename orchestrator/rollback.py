"""`ecs-fanout rollback RUN_ID`: put every service a past run changed back on its previous revision.

The run's plan and job records are in its Redis: each revert job names the revision its
service ran before, and the target's region as the run recorded it (`--region` or the
environment's only for targets recorded without one). The reverts run like any run.
"""

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

__all__ = ["rollback_command"]

DEFAULT_MAX_PARALLEL = 50


def rollback_command(argv: Sequence[str]) -> int:
    """`ecs-fanout rollback RUN_ID`: put every service a past run changed back on its previous revision."""
    parser = run_id_parser(
        "ecs-fanout rollback",
        "Put every service run RUN_ID changed back on the revision it ran before. Needs "
        "the run's Redis (REDIS_URL): its records say what to put back.",
        {
            ExitCode.OK: "every service is back on its previous revision",
            ExitCode.FAILED: "some are not (the summary says which)",
            ExitCode.CONFIG: "unknown run id, or bad configuration",
            ExitCode.INTERRUPTED: "interrupted: ECS finishes what was started",
            ExitCode.TERMINATED: "terminated (SIGTERM): ECS finishes what was started",
        },
    )
    parser.add_argument(
        "--max-parallel",
        type=int,
        default=DEFAULT_MAX_PARALLEL,
        metavar="N",
        help=f"services put back at the same time (default: {DEFAULT_MAX_PARALLEL})",
    )
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.debug_aws)
    if args.max_parallel < 1:
        raise ConfigError("--max-parallel must be at least 1")

    import anyio

    from orchestrator.plan import new_run_id
    from orchestrator.revert import load_reverts
    from orchestrator.session import check_redis, local_executor, run_session
    from orchestrator.settings import load_settings
    from worker.aws import AwsAccess

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigError("set REDIS_URL to the run's Redis: its records say what to put back")
    anyio.run(check_redis, settings.redis_url)
    aws = AwsAccess(profile=args.profile or settings.profile)
    anyio.run(aws.check_credentials)  # refused in one line here, not once per service by the workers
    run_id = new_run_id()
    reverts = load_reverts(settings.redis_url, args.run_id, run_id, args.region or settings.region)
    if not reverts:
        print(f"ecs-fanout: run {args.run_id} changed no service: nothing to put back", file=sys.stderr)
        return ExitCode.OK
    return run_session(
        reverts,
        run_id=run_id,
        redis_url=settings.redis_url,
        output=choose_output(args.output, sys.stdout),
        spec_path=f"rollback of {args.run_id}",
        heartbeat_s=max(r.job.options.heartbeat_s for r in reverts),
        # Each revert job names its target's region, as the run recorded it.
        executor_factory=local_executor(args.max_parallel, aws),
    )
