"""A scenario's world in the emulated account: its services, the spec that deploys them, seeding.

Why: every scenario gets services (and a cluster) named after it, so that no two scenarios
share state; the spec file is what the tools are given, as a user would give it; seeding
creates the services (running tag 1.0.0, plus a sidecar) and pushes their images to ECR with
throttling off, since seeding is not what is measured, then switches the throttling buckets on
again full, as an account that was idle would have them. The lambda executor's IAM role is
part of that world too.

A scenario may spread its services over several accounts (`accounts`): service i lives in
account `ACCOUNTS[i % accounts]`, reached through that account's role `BENCH_ROLE`, with its
image in that account's ECR; the seeding (`orchestrator.sandbox.session.seed_spec`) creates the
roles and puts each service and image in its account, as `--sandbox` does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from botocore.session import Session

from bench.emulator_client import Emulator
from orchestrator.sandbox.session import seed_spec
from orchestrator.spec import load_spec

__all__ = [
    "ACCOUNTS",
    "BENCH_ROLE",
    "NEW_TAG",
    "REGION",
    "REPO",
    "TOOLS",
    "force_deployments",
    "lambda_role",
    "retire_services",
    "role_arn",
    "seed_scenario",
    "service_names",
    "write_spec",
]

REGION = "us-east-1"
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
NEW_TAG = "2.0.0"
LAMBDA_ROLE = "ecs-fanout-bench-worker"
TOOLS = ("local", "local-poll", "lambda", "serial", "ecs-deploy", "ecs-deploy-all")
ACCOUNTS = ("111111111111", "222222222222", "333333333333", "444444444444")  # not moto's default
BENCH_ROLE = "ecs-fanout-bench-deployer"


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{BENCH_ROLE}"


def service_names(name: str, n: int) -> list[tuple[str, str]]:
    """(cluster, service) of a scenario: names of their own, so scenarios never share state."""
    cluster = f"bench-{name}-n{n}"
    return [(cluster, f"{name}-n{n}-svc{i:04d}") for i in range(n)]


def write_spec(
    path: Path, services: Sequence[tuple[str, str]], *, accounts: int = 0, tag: str = NEW_TAG, **defaults: Any
) -> Path:
    """The spec of `services`; with `accounts` >= 1, spread over that many accounts (in turn),
    each entry with its account's role and an image in its account's ECR."""
    assert 0 <= accounts <= len(ACCOUNTS), f"at most {len(ACCOUNTS)} accounts"
    entries = []
    for i, (cluster, service) in enumerate(services):
        entry = {"cluster": cluster, "service": service, "container": "app", "tag": tag}
        if accounts:
            account = ACCOUNTS[i % accounts]
            entry |= {
                "image": f"{account}.dkr.ecr.{REGION}.amazonaws.com/{service}",
                "role_arn": role_arn(account),
            }
        else:
            entry["image"] = f"{REPO}/{service}"
        entries.append(entry)
    path.write_text(json.dumps({"region": REGION, **defaults, "deploy": entries}, indent=1) + "\n")
    return path


def seed_scenario(emulator: Emulator, spec_path: Path, session: Session) -> None:
    """Create the spec's roles and services and push its images (old and new), each in its
    account, with throttling off."""
    emulator.throttling(False)
    seed_spec(emulator.endpoint_url, load_spec(spec_path), REGION, session)
    emulator.throttling(True)  # full buckets, as for an account that was idle


def force_deployments(emulator: Emulator, services: Sequence[tuple[str, str]], session: Session) -> None:
    """Start a new deployment of every service (its own revision again), throttling off: a
    scenario of rollouts already in flight when the tool starts."""
    emulator.throttling(False)
    ecs: Any = session.create_client(
        "ecs",
        endpoint_url=emulator.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda s: ecs.update_service(cluster=s[0], service=s[1], forceNewDeployment=True), services
            )
        )
    emulator.throttling(True)


def retire_services(emulator: Emulator, services: Sequence[tuple[str, str]], session: Session) -> None:
    """Delete a measured scenario's services (throttling off): the emulator's events ticker
    advances every ACTIVE simulated service every 30 ms under moto's lock, so services left
    behind would slow every later scenario of the session. A service of another account (the
    accounts rows) is left as it is."""
    emulator.throttling(False)
    ecs: Any = session.create_client(
        "ecs",
        endpoint_url=emulator.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def retire(service: tuple[str, str]) -> None:
        with contextlib.suppress(ClientError):
            ecs.delete_service(cluster=service[0], service=service[1], force=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(retire, services))


def lambda_role(emulator: Emulator, session: Session) -> str:
    """The ARN of the role the lambda executor's function runs as (created once)."""
    iam: Any = session.create_client(
        "iam",
        endpoint_url=emulator.endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        arn = iam.create_role(RoleName=LAMBDA_ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = iam.get_role(RoleName=LAMBDA_ROLE)["Role"]["Arn"]
    return str(arn)
