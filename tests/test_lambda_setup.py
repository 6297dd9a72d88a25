"""Lambda executor set-up against moto: function, queue, mapping, dispatch; and the pure parts."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from typing import Any

import boto3
import pytest

from orchestrator.dispatch import MAX_MESSAGE_BYTES, batches, check_sizes, send_jobs
from orchestrator.errors import ConfigError
from orchestrator.iam import caller_policy, worker_policy
from orchestrator.job_queue import MappingChange, ensure_mapping, ensure_queue, queue_attributes
from orchestrator.lambda_executor import LambdaExecutor
from orchestrator.lambda_function import desired_configuration, ensure_function
from orchestrator.sandbox import AwsEmulator
from orchestrator.settings import LambdaSettings
from worker.aws import AwsAccess
from worker.contract import ContainerChange, DeployJob, dedup_id, group_id
from worker.target import Target

REGION = "us-east-1"


def tiny_zip(text: str) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("worker/__init__.py", text)
    data = buffer.getvalue()
    return data, base64.b64encode(hashlib.sha256(data).digest()).decode()


class ZipLoader:
    """Hands `ensure_function` the zip and counts the reads: it must read it only to upload it."""

    def __init__(self, data: bytes) -> None:
        self.data, self.reads = data, 0

    def __call__(self) -> bytes:
        self.reads += 1
        return self.data


def make_job(i: int, image_bytes: int = 10) -> DeployJob:
    return DeployJob(
        run_id="run-l",
        job_id=f"run-l:{i:04d}",
        target=Target(cluster="c", service=f"s{i}"),
        changes=(ContainerChange(container="app", image="r/app:" + "x" * image_bytes),),
    )


@pytest.fixture
def settings(aws: AwsEmulator) -> LambdaSettings:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="worker", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    return LambdaSettings(role_arn=role, timeout_s=60, queue_name="jobs")


async def test_function_is_created_then_left_alone_then_updated(settings: LambdaSettings) -> None:
    code, sha = tiny_zip("v1")
    code2, sha2 = tiny_zip("v2")
    v1, v2 = ZipLoader(code), ZipLoader(code2)
    env = {"REDIS_URL": "redis://cache:6379"}
    async with AwsAccess().lambda_(REGION) as client:
        first = await ensure_function(client, settings, load_zip=v1, code_sha256=sha, environment=env)
        assert v1.reads == 1
        again = await ensure_function(client, settings, load_zip=v1, code_sha256=sha, environment=env)
        assert v1.reads == 1, "the zip was read although the function already runs it"
        changed = await ensure_function(
            client,
            settings.model_copy(update={"memory_mb": 1024}),
            load_zip=v2,
            code_sha256=sha2,
            environment=env,
        )
        config = (await client.get_function(FunctionName=settings.function_name))["Configuration"]
    assert v2.reads == 1
    assert (first.created, first.code_uploaded) == (True, True)
    assert (again.created, again.code_uploaded, again.configuration_updated) == (False, False, False)
    assert (changed.code_uploaded, changed.configuration_updated) == (True, True)
    assert config["CodeSha256"] == sha2 and config["MemorySize"] == 1024
    assert config["Handler"] == "worker.handler.handler" and config["Environment"]["Variables"] == env


async def test_missing_function_without_role_is_a_config_error(aws: AwsEmulator) -> None:
    code, sha = tiny_zip("v1")
    loader = ZipLoader(code)
    async with AwsAccess().lambda_(REGION) as client:
        with pytest.raises(ConfigError, match="ECS_FANOUT_LAMBDA_ROLE_ARN"):
            await ensure_function(client, LambdaSettings(), load_zip=loader, code_sha256=sha, environment={})
    assert loader.reads == 0


async def test_queue_and_mapping_are_reused_across_runs(settings: LambdaSettings) -> None:
    code, sha = tiny_zip("v1")
    async with AwsAccess().lambda_(REGION) as lam, AwsAccess().sqs(REGION) as sqs:
        await ensure_function(lam, settings, load_zip=lambda: code, code_sha256=sha, environment={})
        queue = await ensure_queue(sqs, "jobs", settings.timeout_s)
        again = await ensure_queue(sqs, "jobs", settings.timeout_s)
        uuid, created = await ensure_mapping(lam, settings.function_name, queue.arn, 10)
        uuid2, changed = await ensure_mapping(lam, settings.function_name, queue.arn, 10)
        uuid3, rescaled = await ensure_mapping(lam, settings.function_name, queue.arn, 50)
        mappings = (await lam.list_event_source_mappings(EventSourceArn=queue.arn))["EventSourceMappings"]
        attributes = (await sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"]))[
            "Attributes"
        ]
    assert again == queue and queue.url.endswith("jobs.fifo") and queue.dlq_url.endswith("jobs-dlq.fifo")
    assert (created, changed, rescaled) == (
        MappingChange.CREATED,
        MappingChange.UNCHANGED,
        MappingChange.UPDATED,
    )
    assert uuid == uuid2 == uuid3
    assert len(mappings) == 1, "a second mapping was created instead of updating the first"
    assert mappings[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert attributes["FifoQueue"] == "true" and attributes["VisibilityTimeout"] == "360"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": queue.dlq_arn,
        "maxReceiveCount": 5,
    }


async def test_dispatch_sends_every_job_once_with_group_and_dedup_ids(settings: LambdaSettings) -> None:
    jobs = [make_job(i) for i in range(23)]
    sent: list[str] = []
    failed: list[str] = []
    async with AwsAccess().sqs(REGION) as sqs:
        queue = await ensure_queue(sqs, "jobs", settings.timeout_s)
        await send_jobs(sqs, queue.url, jobs, lambda j: sent.append(j.job_id), lambda j, m: failed.append(m))
        received: list[Any] = []
        while True:
            got = await sqs.receive_message(
                QueueUrl=queue.url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
            )
            if not got.get("Messages"):
                break
            received += got["Messages"]
    assert sorted(sent) == sorted(j.job_id for j in jobs) and failed == []
    assert len(received) == 23
    by_id = {DeployJob.model_validate_json(m["Body"]).job_id: m for m in received}
    for job in jobs:
        attributes = by_id[job.job_id]["Attributes"]
        assert attributes["MessageGroupId"] == group_id(job)
        assert attributes["MessageDeduplicationId"] == dedup_id(job)


@pytest.mark.parametrize(
    ("count", "image_bytes", "expected_sizes"),
    [(0, 10, []), (10, 10, [10]), (23, 10, [10, 10, 3]), (4, 100_000, [2, 2])],
)
def test_batches_hold_at_most_ten_and_fit_the_size_limit(
    count: int, image_bytes: int, expected_sizes: list[int]
) -> None:
    grouped = batches([make_job(i, image_bytes) for i in range(count)])
    assert [len(b) for b in grouped] == expected_sizes
    assert all(sum(len(j.model_dump_json()) for j in b) <= MAX_MESSAGE_BYTES for b in grouped)


def test_oversized_job_is_refused_before_sending() -> None:
    with pytest.raises(ConfigError, match="over SQS's"):
        check_sizes([make_job(0, MAX_MESSAGE_BYTES)])


@pytest.mark.parametrize(("timeout", "visibility"), [(60, "360"), (900, "5400"), (30, "180")])
def test_visibility_timeout_is_six_times_the_function_timeout(timeout: int, visibility: str) -> None:
    assert queue_attributes(timeout, "arn:dlq")["VisibilityTimeout"] == visibility


def test_desired_configuration_carries_vpc_and_environment() -> None:
    settings = LambdaSettings(subnet_ids=["subnet-1"], security_group_ids=["sg-1"])
    config = desired_configuration(settings, {"B": "2", "A": "1"})
    assert config["VpcConfig"] == {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    assert list(config["Environment"]["Variables"]) == ["A", "B"]


@pytest.mark.parametrize("vpc", [True, False])
def test_worker_policy_is_scoped(vpc: bool) -> None:
    policy = worker_policy(
        region="eu-west-1",
        account="123456789012",
        function_name="fn",
        queue_name="jobs",
        task_role_arns=["arn:aws:iam::123456789012:role/task"],
        vpc=vpc,
    )
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["PassTaskRolesToEcs"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    assert statements["PassTaskRolesToEcs"]["Resource"] == ["arn:aws:iam::123456789012:role/task"]
    assert ("AttachToVpc" in statements) is vpc
    assert statements["ConsumeJobQueue"]["Resource"] == ["arn:aws:sqs:eu-west-1:123456789012:jobs*.fifo"]
    actions = {
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not any(a.endswith("*") for a in actions), "wildcard actions are not least privilege"


def test_caller_policy_passes_only_the_worker_role_to_lambda() -> None:
    policy = caller_policy(
        region="eu-west-1",
        account="123456789012",
        function_name="fn",
        queue_name="jobs",
        worker_role_arn="arn:aws:iam::123456789012:role/worker",
    )
    to_lambda, to_smoke_tests = [s for s in policy["Statement"] if s["Action"] == "iam:PassRole"]
    assert to_lambda["Resource"] == "arn:aws:iam::123456789012:role/worker"
    assert to_lambda["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    # A wave's smoke test runs a task: its roles go to ECS, never to Lambda.
    assert to_smoke_tests["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


async def test_second_run_uploads_nothing(settings: LambdaSettings) -> None:
    """Set-up twice with the real pack: the first creates function and mapping (and says so), the
    second finds code, configuration and mapping up to date."""
    steps: list[tuple[str, str, str]] = []
    first: dict[str, str] = {}
    for run in range(2):
        if run:
            first = {step: message for step, status, message in steps if status == "done"}
        steps.clear()
        executor = LambdaExecutor(
            settings,
            aws=AwsAccess(),
            region=REGION,
            worker_environment={"REDIS_URL": "redis://cache:6379"},
            on_setup=lambda step, status, message: steps.append((step, status, message)),
            run_id="run-setup",
        )
        async with executor:
            await executor.prepare()
    done = {step: message for step, status, message in steps if status == "done"}
    assert first["lambda"].endswith(": created"), first
    assert first["mapping"] == "created, enabled", first
    assert done["lambda"].endswith(": up to date"), done
    assert done["mapping"].startswith("up to date"), done
    assert "(cached deps)" in done["pack"]
