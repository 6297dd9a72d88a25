"""`iam-policy`: least-privilege IAM policies for the orchestrator's caller and the worker role. Pure.

Each statement names the actions one code path calls and nothing else; resources are scoped
to the function, the queues and the log group wherever AWS allows it. ECS's
RegisterTaskDefinition and DescribeTaskDefinition take no resource ARN, hence `*` there.
"""

from __future__ import annotations

from typing import Any

__all__ = ["caller_policy", "worker_policy"]

Policy = dict[str, Any]


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _queue_arns(region: str, account: str, queue_name: str) -> list[str]:
    # `*` after the name covers the per-run ephemeral queues (`<name>-<suffix>.fifo`) too.
    return [_arn("sqs", region, account, f"{queue_name}*.fifo")]


def caller_policy(
    *, region: str, account: str, function_name: str, queue_name: str, worker_role_arn: str
) -> Policy:
    """What `ecs-fanout` itself calls with the `lambda` executor (and preflight, `plan`, `--dry-run`)."""
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
            {
                "Sid": "HandWorkerRoleToLambda",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": worker_role_arn,
                "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
            },
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
        {
            "Sid": "DeployServices",
            "Effect": "Allow",
            "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
            "Resource": _arn("ecs", region, account, "service/*/*"),
        },
        {
            "Sid": "RegisterRevisions",
            "Effect": "Allow",
            # List/Deregister: only with keep_revisions (old revisions cleaned up after a success).
            "Action": [
                "ecs:DescribeTaskDefinition",
                "ecs:RegisterTaskDefinition",
                "ecs:ListTaskDefinitions",
                "ecs:DeregisterTaskDefinition",
            ],
            "Resource": "*",
        },
        {
            "Sid": "KeepTaskDefinitionTags",
            "Effect": "Allow",
            "Action": "ecs:TagResource",
            "Resource": _arn("ecs", region, account, "task-definition/*"),
            "Condition": {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}},
        },
        {
            "Sid": "PassTaskRolesToEcs",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": task_role_arns or [f"arn:aws:iam::{account}:role/*"],
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
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
