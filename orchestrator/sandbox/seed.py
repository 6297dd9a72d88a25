"""Create the clusters, task definitions and services a sandbox or a test deploys to.

Why: an empty AWS has nothing to roll out. The seeded services look like real Fargate
services (awsvpc, cpu/memory, tags, desiredCount 2, the ECS controller, the rolling strategy
unless told another and, unless told otherwise, the circuit breaker with rollback) so the
deploy path meets what it meets in production. No networkConfiguration: moto does not ask for
one, and looking up the default VPC would wake moto's EC2 backend, which costs about a second
after every reset. Plain (sync) botocore is fine here: seeding runs once, before anything async
starts.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.session import Session, get_session

__all__ = ["SeededService", "client_options", "seed_alarms", "seed_images", "seed_role", "seed_services"]

SeededService = tuple[str, str, Mapping[str, str]]  # (cluster, service, {container: image})
TRUST_ANY_ACCOUNT = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)


def client_options(
    endpoint_url: str, region: str, role_arn: str | None = None, session: Session | None = None
) -> dict[str, Any]:
    """Client arguments for the emulator: throw-away keys, or `role_arn`'s assumed credentials
    (the emulator then keeps what the client creates in the role's account)."""
    options: dict[str, Any] = {
        "endpoint_url": endpoint_url,
        "region_name": region,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    if role_arn is None:
        return options
    sts: Any = (session or get_session()).create_client("sts", **options)
    given = sts.assume_role(RoleArn=role_arn, RoleSessionName="ecs-fanout-seed")["Credentials"]
    return options | {
        "aws_access_key_id": given["AccessKeyId"],
        "aws_secret_access_key": given["SecretAccessKey"],
        "aws_session_token": given["SessionToken"],
    }


def seed_role(endpoint_url: str, account: str, name: str, session: Session | None = None) -> str:
    """Create role `name` in `account`'s IAM (anyone may assume it); its ARN."""
    iam: Any = (session or get_session()).create_client("iam", **client_options(endpoint_url, "us-east-1"))

    def in_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account  # moto's way to act as another account

    iam.meta.events.register("before-sign.iam.*", in_account)
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST_ANY_ACCOUNT)["Role"]
    return str(role["Arn"])


def seed_services(
    endpoint_url: str,
    region: str,
    services: Sequence[SeededService],
    circuit_breaker: bool = True,
    desired_count: int = 2,
    session: Session | None = None,
    role_arn: str | None = None,
    deployments: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> list[str]:
    """Create every cluster and service (family = service name); return the services' ARNs.

    Pass a `session` to reuse its loaded service models (a fresh one takes a few 100 ms),
    `role_arn` to create them in that role's account, and `deployments` to give a (cluster,
    service) more deploymentConfiguration settings (a strategy, a bake time, hooks, alarms).
    """
    session = session or get_session()
    ecs: Any = session.create_client("ecs", **client_options(endpoint_url, region, role_arn, session))
    clusters: set[str] = set()
    arns: list[str] = []
    for cluster, service, containers in services:
        if cluster not in clusters:
            ecs.create_cluster(clusterName=cluster)
            clusters.add(cluster)
        task_definition = ecs.register_task_definition(
            family=service,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": name,
                    "image": image,
                    "essential": True,
                    "portMappings": [],
                    "logConfiguration": {  # where a task's logs are: a smoke test says so
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": f"/ecs/{service}",
                            "awslogs-region": region,
                            "awslogs-stream-prefix": "ecs",
                        },
                    },
                }
                for name, image in containers.items()
            ],
            tags=[{"key": "app", "value": service}, {"key": "seeded-by", "value": "ecs-fanout"}],
        )["taskDefinition"]
        created = ecs.create_service(
            cluster=cluster,
            serviceName=service,
            taskDefinition=task_definition["taskDefinitionArn"],
            desiredCount=desired_count,
            launchType="FARGATE",
            deploymentController={"type": "ECS"},
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": circuit_breaker, "rollback": circuit_breaker},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                **(deployments or {}).get((cluster, service), {}),
            },
            tags=[{"key": "app", "value": service}],
        )["service"]
        arns.append(created["serviceArn"])
    return arns


def seed_images(
    endpoint_url: str,
    region: str,
    images: Sequence[str],
    session: Session | None = None,
    role_arn: str | None = None,
) -> None:
    """Push a (synthetic) manifest for every image hosted in ECR (by tag, or by the digest it is
    pinned to), so that ECR answers for it as for a pushed image; images elsewhere are left alone."""
    from worker.images import parse_image

    session = session or get_session()
    ecr: Any = session.create_client("ecr", **client_options(endpoint_url, region, role_arn, session))
    for image in dict.fromkeys(images):  # once each: ECR refuses the same image twice
        ref = parse_image(image)
        if ".dkr.ecr." not in (ref.registry or ""):
            continue
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=ref.repository)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "ref": image,
        }
        # A reference pinned by digest is pushed under that digest (the emulator takes it as given).
        named = {"imageTag": ref.tag} if ref.tag else {}
        pinned = {"imageDigest": ref.digest} if ref.digest else {}
        ecr.put_image(repositoryName=ref.repository, imageManifest=json.dumps(manifest), **named, **pinned)


def seed_alarms(
    endpoint_url: str,
    region: str,
    names: Sequence[str],
    session: Session | None = None,
    role_arn: str | None = None,
) -> None:
    """A CloudWatch metric alarm per name (on a metric nobody sends), in state OK: what a wave's
    gate reads. `AwsEmulator` tests move them with `set_alarm_state`."""
    session = session or get_session()
    cloudwatch: Any = session.create_client(
        "cloudwatch", **client_options(endpoint_url, region, role_arn, session)
    )
    for name in dict.fromkeys(names):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="ecs-fanout/sandbox",
            MetricName=f"{name}-errors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="seeded by ecs-fanout")
