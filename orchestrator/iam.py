"""`iam-policy`: least-privilege IAM policies for the orchestrator's caller and the worker role.

The policies are pure functions; `iam_policy_command` is the CLI's `ecs-fanout iam-policy`.

Each statement names the actions one code path calls and nothing else; resources are scoped
to the function, the queues and the log group wherever AWS allows it. ECS's
RegisterTaskDefinition and DescribeTaskDefinition take no resource ARN, hence `*` there.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from orchestrator.iam_roles import deploy_statements, events_statements, gate_statements

__all__ = ["caller_policy", "iam_policy_command", "worker_policy"]

Policy = dict[str, Any]


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _queue_arns(region: str, account: str, queue_name: str) -> list[str]:
    # `*` after the name covers the per-run ephemeral queues (`<name>-<suffix>.fifo`) too.
    return [_arn("sqs", region, account, f"{queue_name}*.fifo")]


def caller_policy(
    *,
    region: str,
    account: str,
    function_name: str,
    queue_name: str,
    worker_role_arn: str,
    task_role_arns: list[str] | None = None,
) -> Policy:
    """What `ecs-fanout` itself calls with the `lambda` executor (and preflight, `plan`, `--dry-run`,
    and the gates of a run with waves: `task_role_arns` are what its smoke tests pass to ECS)."""
    function_arn = _arn("lambda", region, account, f"function:{function_name}")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadTargetsForPreflightAndPlan",
                "Effect": "Allow",
                "Action": [
                    "ecs:DescribeClusters",
                    "ecs:DescribeServices",
                    "ecs:DescribeTaskDefinition",
                    # a silent job's end, and `status RUN_ID`, ask its service deployment
                    "ecs:DescribeServiceDeployments",
                    "ecr:DescribeImages",
                ],
                "Resource": "*",
            },
            {
                "Sid": "ManageWorkerFunction",
                "Effect": "Allow",
                "Action": [
                    "lambda:GetFunction",
                    "lambda:CreateFunction",
                    "lambda:UpdateFunctionCode",
                    "lambda:UpdateFunctionConfiguration",
                ],
                "Resource": function_arn,
            },
            {
                # ListEventSourceMappings takes no resource and no condition key.
                "Sid": "ListEventSourceMappings",
                "Effect": "Allow",
                "Action": "lambda:ListEventSourceMappings",
                "Resource": "*",
            },
            {
                "Sid": "ManageEventSourceMapping",
                "Effect": "Allow",
                "Action": [
                    "lambda:GetEventSourceMapping",
                    "lambda:CreateEventSourceMapping",
                    "lambda:UpdateEventSourceMapping",
                    "lambda:DeleteEventSourceMapping",
                ],
                "Resource": "*",
                "Condition": {"StringEquals": {"lambda:FunctionArn": function_arn}},
            },
            {
                "Sid": "ManageAndFeedJobQueue",
                "Effect": "Allow",
                "Action": [
                    "sqs:GetQueueUrl",
                    "sqs:CreateQueue",
                    "sqs:GetQueueAttributes",
                    "sqs:SetQueueAttributes",
                    "sqs:SendMessage",
                    "sqs:DeleteQueue",
                ],
                "Resource": _queue_arns(region, account, queue_name),
            },
            *events_statements(lambda service, resource: _arn(service, region, account, resource)),
            {
                # `follow = "events"`: the parked jobs' timer queue beside the function
                "Sid": "SetUpTimerQueue",
                "Effect": "Allow",
                "Action": [
                    "sqs:GetQueueUrl",
                    "sqs:CreateQueue",
                    "sqs:GetQueueAttributes",
                    "sqs:SetQueueAttributes",
                ],
                "Resource": _arn("sqs", region, account, "ecs-fanout-timers"),
            },
            {
                "Sid": "HandWorkerRoleToLambda",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": worker_role_arn,
                "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            },
            *gate_statements(task_role_arns or [], f"arn:aws:iam::{account}:role/*"),
        ],
    }


def worker_policy(
    *,
    region: str,
    account: str,
    function_name: str,
    queue_name: str,
    task_role_arns: list[str],
    vpc: bool,
) -> Policy:
    """What the worker Lambda's role needs: deploy, read its queue, log, and (in a VPC) ENIs."""
    statements: list[dict[str, Any]] = [
        *deploy_statements(
            lambda service, resource: _arn(service, region, account, resource),
            task_role_arns,
            f"arn:aws:iam::{account}:role/*",
        ),
        {
            "Sid": "ConsumeJobQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:SendMessage",  # continuations, and malformed jobs to the dead-letter queue
            ],
            "Resource": _queue_arns(region, account, queue_name),
        },
        {
            # `follow = "events"`: ECS's events and parked jobs' timers resume the worker
            "Sid": "ConsumeEcsEventsAndTimers",
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
                "sqs:SendMessage",  # a parked job's timer
            ],
            "Resource": [
                _arn("sqs", region, account, "ecs-fanout-ecs-events"),
                _arn("sqs", region, account, "ecs-fanout-timers"),
            ],
        },
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": _arn("logs", region, account, f"log-group:/aws/lambda/{function_name}:*"),
        },
    ]
    if vpc:
        statements.append(
            {
                "Sid": "AttachToVpc",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": "*",
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def iam_policy_command(argv: Sequence[str]) -> int:
    """`ecs-fanout iam-policy`: print the caller's and the worker role's policies as JSON."""
    import json

    from orchestrator.exits import ExitCode
    from orchestrator.settings import load_settings

    parser = argparse.ArgumentParser(
        prog="ecs-fanout iam-policy",
        description="Print least-privilege IAM policies as JSON: `caller` for whoever runs ecs-fanout, "
        "`worker` for the lambda executor's worker role. Defaults come from ECS_FANOUT_LAMBDA_*.",
    )
    parser.add_argument("--account", default="*", help="AWS account id (default: any)")
    parser.add_argument("--region", default="*", help="AWS region (default: any)")
    parser.add_argument("--function-name", help="the worker function (default: ecs-fanout-worker)")
    parser.add_argument("--queue-name", help="the job queue (default: ecs-fanout-jobs)")
    parser.add_argument(
        "--worker-role-arn", help="the worker's role (default: ecs-fanout-worker in any account)"
    )
    parser.add_argument(
        "--task-role-arn", action="append", default=[], help="task/execution roles the services use (repeat)"
    )
    parser.add_argument("--vpc", action="store_true", default=None, help="the worker runs in a VPC")
    parser.add_argument(
        "--spec",
        metavar="FILE",
        help="a spec whose role_arn values to allow assuming; adds `target_roles`: each role's trust "
        "policy and the permissions it needs in its account",
    )
    args = parser.parse_args(argv)
    lam = load_settings().lambda_settings()
    common = {
        "region": args.region,
        "account": args.account,
        "function_name": args.function_name or lam.function_name,
        "queue_name": args.queue_name or lam.queue_name,
    }
    worker_role_arn = args.worker_role_arn or lam.role_arn or "arn:aws:iam::*:role/ecs-fanout-worker"
    vpc = bool(lam.subnet_ids) if args.vpc is None else args.vpc
    policies = {
        "caller": caller_policy(**common, worker_role_arn=worker_role_arn, task_role_arns=args.task_role_arn),
        "worker": worker_policy(**common, task_role_arns=args.task_role_arn, vpc=vpc),
    }
    if lam.events_role:
        policies |= _with_events_role(policies["caller"], lam.events_role, args.region, args.account)
    if args.spec:
        policies |= _with_roles(policies, args.spec, worker_role_arn, args.account, args.task_role_arn)
        for arn, role in policies.get("target_roles", {}).items():
            if lam.events_role:  # the rule in the role's account forwards through its events role
                statements = role["permissions"]["Statement"]
                _, partition, _, _, role_account, _ = arn.split(":")
                statements.append(_pass_events_role(lam.events_role, role_account, partition))
    print(json.dumps(policies, indent=2))
    return ExitCode.OK


def _with_roles(
    policies: dict[str, Policy], spec_path: str, worker_role_arn: str, account: str, task_role_arns: list[str]
) -> dict[str, Any]:
    """The caller's and the worker's policies allowed to assume exactly the spec's roles, and
    what each of those roles needs (`orchestrator.iam_roles`)."""
    from orchestrator.iam_roles import assume_statement, role_permissions, role_trust, target_roles
    from orchestrator.identity import accesses_of
    from orchestrator.spec import load_spec

    spec = load_spec(spec_path)  # SpecError: exit 2
    roles = target_roles(accesses_of(spec, default_region="-"))
    if not roles:
        return {}
    principals = [worker_role_arn] + ([f"arn:aws:iam::{account}:root"] if account != "*" else [])
    updated: dict[str, Any] = {}
    for name in ("caller", "worker"):
        policy = policies[name]
        updated[name] = policy | {"Statement": [*policy["Statement"], assume_statement(list(roles))]}
    updated["target_roles"] = {
        arn: {"trust": role_trust(principals, ids), "permissions": role_permissions(arn, task_role_arns)}
        for arn, ids in roles.items()
    }
    return updated


def _with_events_role(caller: Policy, name: str, region: str, account: str) -> dict[str, Any]:
    """`ECS_FANOUT_LAMBDA_EVENTS_ROLE` set: the caller hands that role to EventBridge (the rule of
    another region forwards through it), and `events_role` is what the role itself needs in
    each account: EventBridge may assume it, and put events on the function region's bus."""
    pass_role = _pass_events_role(name, account)
    trust = {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    forward = {
        "Sid": "ForwardEcsEventsToTheFunctionsRegion",
        "Effect": "Allow",
        "Action": "events:PutEvents",
        "Resource": _arn("events", region, account, "event-bus/default"),
    }
    return {
        "caller": caller | {"Statement": [*caller["Statement"], pass_role]},
        "events_role": {
            "role": pass_role["Resource"],
            "trust": {"Version": "2012-10-17", "Statement": [trust]},
            "permissions": {"Version": "2012-10-17", "Statement": [forward]},
        },
    }


def _pass_events_role(name: str, account: str, partition: str = "aws") -> dict[str, Any]:
    return {
        "Sid": "HandEventsRoleToEventBridge",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": f"arn:{partition}:iam::{account}:role/{name}",
        "Condition": {"StringEquals": {"iam:PassedToService": "events.amazonaws.com"}},
    }
