"""`iam-policy --spec`: the roles a spec deploys through. Pure.

For every `role_arn` of a spec: the statement that lets the caller and the worker assume
exactly those roles, and per role the trust policy it needs (the worker role and the caller's
account as principals, with the spec's external id as a condition) and the permissions it needs
in its own account: what preflight, the dry run and the worker call there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from worker.access import Access

__all__ = [
    "assume_statement",
    "deploy_statements",
    "gate_statements",
    "role_permissions",
    "role_trust",
    "target_roles",
]

Policy = dict[str, Any]


def target_roles(accesses: Iterable[Access]) -> dict[str, list[str]]:
    """Role ARN -> the external ids the spec gives it (none: empty), in the spec's order."""
    roles: dict[str, list[str]] = {}
    for access in accesses:
        if access.role_arn is not None:
            ids = roles.setdefault(access.role_arn, [])
            if access.external_id is not None and access.external_id not in ids:
                ids.append(access.external_id)
    return roles


def assume_statement(role_arns: Sequence[str]) -> dict[str, Any]:
    """sts:AssumeRole on exactly these roles (for the caller's and the worker's policies)."""
    return {
        "Sid": "AssumeTargetAccountRoles",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": list(role_arns),
    }


def role_trust(principals: Sequence[str], external_ids: Sequence[str]) -> Policy:
    """Who may assume a target-account role: the worker role and the caller's account."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": list(principals)},
        "Action": "sts:AssumeRole",
    }
    if external_ids:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": list(external_ids)}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def deploy_statements(
    arn: Callable[[str, str], str], task_role_arns: list[str], any_role: str
) -> list[dict[str, Any]]:
    """What deploying takes, for the worker's role and each target-account role alike: describe
    and update services, follow and stop their service deployments, register (and clean up)
    revisions keeping their tags, pass task roles. `arn(service, resource)` names a resource of
    the account; `any_role` when no task roles are named."""
    return [
        {
            "Sid": "DeployServices",
            "Effect": "Allow",
            "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
            "Resource": arn("ecs", "service/*/*"),
        },
        {
            # Follow the service deployment UpdateService started, and roll it back (any strategy).
            "Sid": "FollowServiceDeployments",
            "Effect": "Allow",
            "Action": [
                "ecs:ListServiceDeployments",
                "ecs:DescribeServiceDeployments",
                "ecs:StopServiceDeployment",
            ],
            "Resource": [arn("ecs", "service/*/*"), arn("ecs", "service-deployment/*/*/*")],
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
            "Resource": arn("ecs", "task-definition/*"),
            "Condition": {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}},
        },
        {
            "Sid": "PassTaskRolesToEcs",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": task_role_arns or [any_role],
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
    ]


def gate_statements(task_role_arns: list[str], any_role: str) -> list[dict[str, Any]]:
    """What the gates of a run with waves call, where the gate runs (the caller, or a wave's
    role): a smoke test's one-off task (RunTask passes its task definition's roles to ECS), and
    CloudWatch alarms. Neither takes a resource ARN known before the run."""
    return [
        {
            "Sid": "RunWaveGates",
            "Effect": "Allow",
            "Action": ["ecs:RunTask", "ecs:DescribeTasks", "ecs:StopTask", "cloudwatch:DescribeAlarms"],
            "Resource": "*",
        },
        {
            "Sid": "PassTaskRolesToSmokeTests",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": task_role_arns or [any_role],
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
    ]


def role_permissions(role_arn: str, task_role_arns: Sequence[str]) -> Policy:
    """What a target-account role needs: read for preflight and `plan`, deploy for the worker."""
    partition, account = role_arn.split(":")[1], role_arn.split(":")[4]

    def arn(service: str, resource: str) -> str:
        return f"arn:{partition}:{service}:*:{account}:{resource}"

    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadForPreflightAndPlan",
                "Effect": "Allow",
                "Action": ["ecs:DescribeClusters", "ecr:DescribeImages"],
                "Resource": "*",
            },
            *deploy_statements(arn, list(task_role_arns), f"arn:{partition}:iam::{account}:role/*"),
            gate_statements(list(task_role_arns), f"arn:{partition}:iam::{account}:role/*")[0],
            *events_statements(arn),
        ],
    }


def events_statements(arn: Callable[[str, str], str]) -> list[dict[str, Any]]:
    """`follow = "events"`: the rule on the default bus and its queues (`orchestrator.event_rules`);
    without them that account and region polls (docs/aws.md, 'ECS's events')."""
    return [
        {
            "Sid": "SetUpEcsEventsRule",
            "Effect": "Allow",
            "Action": [
                "events:PutRule",
                "events:PutTargets",
                "events:DescribeRule",
                "events:ListTargetsByRule",
            ],
            "Resource": arn("events", "rule/ecs-fanout-ecs-events"),
        },
        {
            "Sid": "SetUpAndReadEcsEventsQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:GetQueueUrl",
                "sqs:CreateQueue",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
            ],
            "Resource": arn("sqs", "ecs-fanout-ecs-events*"),
        },
    ]
