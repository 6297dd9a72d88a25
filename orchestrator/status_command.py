"""`ecs-fanout status RUN_ID`: its arguments, then `orchestrator.status` (imported only then:
`status --help` does not pay for botocore or Redis)."""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import ConfigError
from orchestrator.exits import ExitCode
from orchestrator.options import (
    configure_logging,
    run_id_parser,
)

__all__ = ["status_command"]


def status_command(argv: Sequence[str]) -> int:
    """`ecs-fanout status RUN_ID`: every target of the run, as ECS runs it now."""
    parser = run_id_parser(
        "ecs-fanout status",
        "For every target of run RUN_ID: what ECS runs now (task definition, the PRIMARY "
        "deployment's rolloutState, running/desired tasks) and whether it is what the run wanted "
        "(the revision its job registered, or the images it asked for). Needs the run's Redis "
        "(REDIS_URL) and read access to ECS; works whether or not the run's orchestrator is alive.",
        {
            ExitCode.OK: "every target runs what the run wanted, rolled out",
            ExitCode.FAILED: "some do not (rolling out, something else, or gone)",
            ExitCode.CONFIG: "unknown run id, or bad configuration",
        },
    )
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.debug_aws)

    import anyio

    from orchestrator.settings import load_settings
    from orchestrator.status import compare, load_wanted, report
    from worker.aws import AwsAccess

    settings = load_settings()
    if not settings.redis_url:
        raise ConfigError("set REDIS_URL to the run's Redis: its records say what the run wanted")
    wanted = anyio.run(load_wanted, settings.redis_url, args.run_id, args.region or settings.region)
    if wanted is None:
        raise ConfigError(
            f"no run {args.run_id!r} in Redis (a run keeps its plan for 7 days; is REDIS_URL the run's?)"
        )
    aws = AwsAccess(profile=args.profile or settings.profile)
    return report(args.run_id, anyio.run(compare, wanted, aws), json_lines=args.output == "json")
