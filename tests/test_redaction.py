"""`-v` and `--debug-aws` never print a secret: environment values, secrets' ARNs, credentials,
Redis passwords.

The end-to-end tests deploy a service whose task definition carries an environment variable
with a secret-looking value and a secret from Secrets Manager, with the CLI's debug logs on,
and read everything it wrote to stderr.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

import boto3
import pytest

from orchestrator.logs import Redactor, redact
from orchestrator.sandbox import AwsEmulator
from tests.cli import run_cli
from tests.fleet import REGION, Fleet, Fleets


def with_secrets(fleet: Fleet) -> tuple[str, str]:
    """s0 now runs a revision with an environment variable and a secret: (value, secret ARN)."""
    value = f"hunter2-{secrets.token_hex(8)}"
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:db-{secrets.token_hex(4)}"
    ecs: Any = boto3.client("ecs", region_name=REGION)
    seeded = ecs.describe_task_definition(taskDefinition="s0")["taskDefinition"]
    containers = seeded["containerDefinitions"]
    containers[0]["environment"] = [{"name": "DB_PASSWORD", "value": value}]
    containers[0]["secrets"] = [{"name": "API_TOKEN", "valueFrom": arn}]
    registered = ecs.register_task_definition(
        family="s0",
        networkMode=seeded["networkMode"],
        requiresCompatibilities=seeded["requiresCompatibilities"],
        cpu=seeded["cpu"],
        memory=seeded["memory"],
        executionRoleArn="arn:aws:iam::123456789012:role/exec",
        containerDefinitions=containers,
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster="c0", service="s0", taskDefinition=registered)
    return value, arn


@pytest.mark.parametrize("flags", [["-v"], ["-v", "--debug-aws"]], ids=["verbose", "debug-aws"])
def test_debug_logs_never_show_environment_values_or_secrets(
    aws: AwsEmulator, fleet: Fleets, redis_url: str, flags: list[str]
) -> None:
    one = fleet(1)
    value, arn = with_secrets(one)

    result = run_cli(str(one.path), "--plain", *flags, redis_url=redis_url)

    assert result.returncode == 0, result.stderr[-3000:]
    assert value not in result.stderr and arn not in result.stderr
    assert " DEBUG " in result.stderr or " INFO " in result.stderr  # our own logs are on
    wire = [line for line in result.stderr.splitlines() if " botocore." in line]
    if "--debug-aws" in flags:
        # The wire logs are there, the task definition in them, its values masked.
        bodies = [line for line in wire if "DB_PASSWORD" in line]
        assert bodies, "no request or response body with the task definition was logged"
        masked = re.compile(r"""["']value["']:\s*["']\*\*\*["']""")
        assert all(masked.search(line) for line in bodies), bodies[:2]
    else:
        assert wire == [], wire[:3]  # the SDK's wire logs stay off without --debug-aws


def test_what_botocore_and_redis_urls_print_is_redacted() -> None:
    """The forms the SDK logs in: a JSON body in a bytes repr, request params and signed headers
    as a Python repr, a Lambda function's environment, an STS answer; and Redis URLs."""
    body = (
        b'{"containerDefinitions":[{"environment":[{"name":"A","value":"p4ss\\"word"}],'
        b'"secrets":[{"name":"B","valueFrom":"arn:x"}]}]}'
    )
    params = {
        "body": {"environment": [{"name": "A", "value": "it's-secret"}]},
        "headers": {
            "Authorization": b"AWS4-HMAC-SHA256 Credential=AKID/x, Signature=abc",
            "X-Amz-Security-Token": b"tok",
        },
    }
    function = b'{"Environment":{"Variables":{"REDIS_URL":"rediss://:pw@cache:6379","OTHER":"v"}}}'
    sts = (
        "<Credentials><AccessKeyId>AKID</AccessKeyId><SecretAccessKey>sk</SecretAccessKey>"
        "<SessionToken>st</SessionToken></Credentials>"
    )

    assert redact(f"Response body:\n{body!r}") == (
        "Response body:\n"
        """b'{"containerDefinitions":[{"environment":[{"name":"A","value":"***"}],"secrets":[{"name":"B","valueFrom":"***"}]}]}'"""
    )
    assert redact(f"with params: {params!r}") == (
        "with params: {'body': {'environment': [{'name': 'A', 'value': \"***\"}]}, "
        "'headers': {'Authorization': b'***', 'X-Amz-Security-Token': b'***'}}"
    )
    assert redact(repr(function)) == """b'{"Environment":{"Variables":{"REDIS_URL":"***","OTHER":"***"}}}'"""
    assert redact(sts) == (
        "<Credentials><AccessKeyId>AKID</AccessKeyId><SecretAccessKey>***</SecretAccessKey>"
        "<SessionToken>***</SessionToken></Credentials>"
    )
    assert redact("Redis at redis://admin:pw1@host:6379/0 and rediss://:pw2@cache:6379") == (
        "Redis at redis://admin:***@host:6379/0 and rediss://:***@cache:6379"
    )
    assert (
        redact("no secrets in c0/s0: in_progress 1/2 tasks") == "no secrets in c0/s0: in_progress 1/2 tasks"
    )

    record = logging.LogRecord(
        "botocore.parsers", logging.DEBUG, __file__, 1, "Response body:\n%r", (body,), None
    )
    assert Redactor().filter(record) and "p4ss" not in record.getMessage() and "***" in record.getMessage()
