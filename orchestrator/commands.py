"""The subcommands: `iam-policy`, `attach RUN_ID`, `plan SPEC`, `rollback RUN_ID`.

Each parses its own arguments and hands over to the module that does the work; the main
command (deploy a spec) and the exit codes live in `orchestrator.cli`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from orchestrator.cli import EXIT_CONFIG, EXIT_OK, add_output_options, choose_output, main
from orchestrator.errors import ConfigError

__all__ = ["attach_command", "iam_policy", "plan_command", "rollback_command"]


def iam_policy(argv: Sequence[str]) -> int:
    """`ecs-fanout iam-policy`: print the caller's and the worker role's policies as JSON."""
    import json

    from orchestrator.iam import caller_policy, worker_policy
    from orchestrator.settings import load_settings

    lam = load_settings().lambda_
    parser = argparse.ArgumentParser(prog="ecs-fanout iam-policy", description=iam_policy.__doc__)
    parser.add_argument("--account", default="*", help="AWS account id (default: any)")
    parser.add_argument("--region", default="*", help="AWS region (default: any)")
    parser.add_argument("--function-name", default=lam.function_name)
    parser.add_argument("--queue-name", default=lam.queue_name)
    parser.add_argument("--worker-role-arn", default=lam.role_arn or "arn:aws:iam::*:role/ecs-fanout-worker")
    parser.add_argument(
        "--task-role-arn", action="append", default=[], help="task/execution roles the services use (repeat)"
    )
    parser.add_argument(
        "--vpc", action="store_true", default=bool(lam.subnet_ids), help="the worker runs in a VPC"
    )
    args = parser.parse_args(argv)
    common = {
        "region": args.region,
        "account": args.account,
        "function_name": args.function_name,
        "queue_name": args.queue_name,
    }
    policies = {
        "caller": caller_policy(**common, worker_role_arn=args.worker_role_arn),
        "worker": worker_policy(**common, task_role_arns=args.task_role_arn, vpc=args.vpc),
    }
    print(json.dumps(policies, indent=2))
    return EXIT_OK


def attach_command(argv: Sequence[str]) -> int:
    """`ecs-fanout attach RUN_ID`: follow a run from another terminal, replayed from its start."""
    parser = argparse.ArgumentParser(
        prog="ecs-fanout attach",
        description=attach_command.__doc__,
        epilog="Exit codes: as the run's own; 2 unknown run id; 130 stopped (the run goes on).",
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="the id the run printed")
    add_output_options(parser)
    parser.add_argument("--exit-on-done", action="store_true", help="live view: exit when the run ends")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)

    from orchestrator.attach import attach
    from orchestrator.settings import load_settings

    redis_url = load_settings().redis_url
    if not redis_url:
        print("ecs-fanout: set REDIS_URL to the Redis the run publishes to", file=sys.stderr)
        return EXIT_CONFIG
    return attach(args.run_id, redis_url, choose_output(args.output, sys.stdout), args.exit_on_done)


def rollback_command(argv: Sequence[str]) -> int:
    """`ecs-fanout rollback RUN_ID`: put every service a past run changed back on its previous revision."""
    import anyio

    from orchestrator.plan import new_run_id
    from orchestrator.revert import load_reverts
    from orchestrator.session import check_redis, local_executor, run_session
    from orchestrator.settings import load_settings

    parser = argparse.ArgumentParser(prog="ecs-fanout rollback", description=rollback_command.__doc__)
    parser.add_argument("run_id", metavar="RUN_ID", help="the id the run printed")
    add_output_options(parser)
    parser.add_argument("--max-parallel", type=int, default=50, metavar="N")
    parser.add_argument("--region")
    parser.add_argument("--profile")
    args = parser.parse_args(argv)
    settings = load_settings()
    if not settings.redis_url:
        raise ConfigError("set REDIS_URL: the run's records are there")
    anyio.run(check_redis, settings.redis_url)
    run_id = new_run_id()
    reverts = load_reverts(settings.redis_url, args.run_id, run_id)
    if not reverts:
        print(f"run {args.run_id} changed no service: nothing to put back", file=sys.stderr)
        return EXIT_OK
    return run_session(
        reverts,
        run_id=run_id,
        redis_url=settings.redis_url,
        output=choose_output(args.output, sys.stdout),
        spec_path=f"rollback of {args.run_id}",
        heartbeat_s=max(r.job.options.heartbeat_s for r in reverts),
        executor_factory=local_executor(
            args.max_parallel, args.region or settings.region, args.profile or settings.profile
        ),
    )


def plan_command(argv: Sequence[str]) -> int:
    """`ecs-fanout plan SPEC`: what a deploy would register, per service, changing nothing."""
    return main([*argv, "--dry-run", "--diff"])
