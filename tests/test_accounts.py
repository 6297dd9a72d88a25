"""Many accounts and regions in one run, over the real emulator (moto keeps resources per account
for calls made with `sts.assume_role` credentials of that account's role).

The fleet: the same cluster and service names (`prod/api`) in three accounts (two others and
the caller's own, each through its role `deployer`) and two regions, one of the six on a bad
image.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from orchestrator.sandbox import AwsEmulator, RolloutScenario
from orchestrator.sandbox.seed import client_options, seed_role, seed_services
from tests.cli import run_cli
from worker.keys import job_hash

CALLER = "123456789012"  # moto's default account: the caller's own
OTHERS = ("111111111111", "222222222222")
REGIONS = ("us-east-1", "eu-west-1")
OLD = "registry.example.com/api:1.0.0"
BAD = ("222222222222", "eu-west-1")
READS = ("Describe", "List", "Get", "AssumeRole")


def role(account: str) -> str:
    return f"arn:aws:iam::{account}:role/deployer"


def tag(account: str, region: str) -> str:
    return "bad-1" if (account, region) == BAD else f"2.0.0-{account}-{region}"


def ecs_of(endpoint: str, account: str, region: str) -> Any:
    return boto3.client("ecs", **client_options(endpoint, region, role(account)))


def write_spec(
    path: Path,
    places: list[tuple[str, str]],
    image: str = "registry.example.com/api",
    fixed_tag: str | None = None,
) -> Path:
    """prod/api/app in each (account, region), through the account's role `deployer`."""
    lines = ['poll_interval = "100ms"', 'timeout = "60s"', 'heartbeat = "10s"']
    for account, region in places:
        lines += [
            "[[deploy]]",
            'cluster = "prod"',
            'service = "api"',
            'container = "app"',
            f'image = "{image}"',
            f'tag = "{fixed_tag or tag(account, region)}"',
            f'region = "{region}"',
            f'role_arn = "{role(account)}"',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fleet_6(aws: AwsEmulator) -> Iterator[list[tuple[str, str]]]:
    """prod/api in 3 accounts x 2 regions, each account with its role `deployer`."""
    places = [(account, region) for account in (*OTHERS, CALLER) for region in REGIONS]
    for account in (*OTHERS, CALLER):
        seed_role(aws.endpoint_url, account, "deployer")
    for account, region in places:
        seed_services(aws.endpoint_url, region, [("prod", "api", {"app": OLD})], role_arn=role(account))
    yield places


def writes(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        action: count - before.get(action, 0)
        for action, count in after.items()
        if count > before.get(action, 0) and not action.startswith(READS)
    }


def test_six_targets_in_three_accounts_and_two_regions_each_end_right_in_its_own_place(
    aws: AwsEmulator, fleet_6: list[tuple[str, str]], redis_url: str, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.toml", fleet_6)
    result = run_cli(str(spec), "--json", redis_url=redis_url)
    assert result.returncode == 1, result.stderr  # the bad one fails the run
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    results = {(r["account"], r["region"]): r for r in objects[-1]["results"]}
    assert set(results) == set(fleet_6)  # six targets, though they share cluster and service names
    for place, one in results.items():
        expected = "rolled_back" if place == BAD else "succeeded"
        assert one["status"] == expected, one
        assert (one["cluster"], one["service"]) == ("prod", "api")
    for account, region in fleet_6:
        ecs = ecs_of(aws.endpoint_url, account, region)
        arns = ecs.list_task_definitions(familyPrefix="api")["taskDefinitionArns"]
        assert len(arns) == 2, (account, region, arns)  # the seeded one and ours: no one else's
        assert all(f":{region}:{account}:" in arn for arn in arns)
        newest = ecs.describe_task_definition(taskDefinition=arns[-1])["taskDefinition"]
        assert (
            newest["containerDefinitions"][0]["image"] == f"registry.example.com/api:{tag(account, region)}"
        )
        running = ecs.describe_services(cluster="prod", services=["api"])["services"][0]["taskDefinition"]
        assert running == (arns[0] if (account, region) == BAD else arns[-1])


def test_a_role_that_cannot_be_assumed_refuses_the_run_before_anything_changes(
    aws: AwsEmulator, fleet_6: list[tuple[str, str]], redis_url: str, tmp_path: Path
) -> None:
    stranger = "333333333333"  # IAM there has no role `deployer`
    spec = write_spec(tmp_path / "spec.toml", [*fleet_6[:2], (stranger, "us-east-1")])
    before = aws.request_counts()
    result = run_cli(str(spec), "--json", redis_url=redis_url)
    assert result.returncode == 2, result.stderr
    assert f"role {role(stranger)} cannot be assumed: AccessDenied" in result.stderr
    assert str(spec) in result.stderr and "nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert writes(before, aws.request_counts()) == {}
    assert result.stdout == ""


def test_credentials_that_expire_mid_run_are_refreshed_and_the_run_succeeds(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    account, region = OTHERS[0], "us-east-1"
    seed_role(aws.endpoint_url, account, "deployer")
    seed_services(aws.endpoint_url, region, [("prod", "api", {"app": OLD})], role_arn=role(account))
    aws.set_role_sessions(3)  # assumed credentials last 3 s; the emulator refuses them after
    aws.set_scenario(RolloutScenario(rollout_s=8.0))
    spec = write_spec(tmp_path / "spec.toml", [(account, region)])
    assumed_before = aws.assumed_roles().count(role(account))  # the seeding's own
    result = run_cli(str(spec), "--json", redis_url=redis_url)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert [r["status"] for r in summary["results"]] == ["succeeded"]
    assert "ExpiredToken" not in result.stderr
    # The run's loop (identity, preflight, its questions to ECS) and the workers' loop assume the
    # role once each; the 8 s rollout outlives 3 s credentials, so the workers' were assumed
    # again (more than once) while they followed.
    assert aws.assumed_roles().count(role(account)) - assumed_before >= 4


def test_expired_credentials_are_refused_by_the_emulator(aws: AwsEmulator) -> None:
    """The test bed's side of the above: without a refresh, a run longer than a session fails."""
    import time

    from botocore.exceptions import ClientError

    seed_role(aws.endpoint_url, OTHERS[0], "deployer")
    aws.set_role_sessions(1)
    ecs = ecs_of(aws.endpoint_url, OTHERS[0], "us-east-1")
    ecs.list_clusters()
    time.sleep(1.2)
    with pytest.raises(ClientError, match="ExpiredTokenException"):
        ecs.list_clusters()


def test_the_lambda_executor_refuses_a_profile(redis_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'profile = "staging"\n[[deploy]]\ncluster = "prod"\nservice = "api"\ncontainer = "app"\n'
        'image = "registry.example.com/api"\ntag = "2"\n'
    )
    result = run_cli(str(spec), "--executor", "lambda", redis_url=redis_url)
    assert result.returncode == 2, result.stderr
    assert "profiles exist only on this machine; give role_arn" in result.stderr
    assert "entry 1 (prod/api/app)" in result.stderr


def running_revision(endpoint: str, account: str, region: str) -> str:
    ecs = ecs_of(endpoint, account, region)
    arn = ecs.describe_services(cluster="prod", services=["api"])["services"][0]["taskDefinition"]
    return str(arn).rsplit("/", 1)[-1]


@pytest.fixture
def two_accounts(aws: AwsEmulator) -> list[tuple[str, str]]:
    """prod/api in two accounts, in two regions: the same names, two targets."""
    places = [(OTHERS[0], "us-east-1"), (OTHERS[1], "us-west-2")]
    for account, region in places:
        seed_role(aws.endpoint_url, account, "deployer")
        seed_services(aws.endpoint_url, region, [("prod", "api", {"app": OLD})], role_arn=role(account))
    return places


def test_rollback_puts_back_services_in_each_account_and_region(
    aws: AwsEmulator, two_accounts: list[tuple[str, str]], redis_url: str, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "spec.toml", two_accounts)
    deployed = run_cli(str(spec), "--json", redis_url=redis_url)
    assert deployed.returncode == 0, deployed.stderr
    assert [running_revision(aws.endpoint_url, *place) for place in two_accounts] == ["api:2", "api:2"]
    run_line = json.loads(deployed.stdout.splitlines()[0])
    # The run names its caller as STS does (moto's default identity), not one of the roles.
    assert run_line["caller"] == f"arn:aws:sts::{CALLER}:user/moto"
    run_id = run_line["run_id"]
    reverted = run_cli("rollback", run_id, "--json", redis_url=redis_url)
    assert reverted.returncode == 0, reverted.stderr
    results = json.loads(reverted.stdout.splitlines()[-1])["results"]
    assert sorted((r["account"], r["region"], r["status"]) for r in results) == sorted(
        (account, region, "succeeded") for account, region in two_accounts
    )
    assert [running_revision(aws.endpoint_url, *place) for place in two_accounts] == ["api:1", "api:1"]


def test_all_or_nothing_puts_back_the_other_accounts_services(
    aws: AwsEmulator, two_accounts: list[tuple[str, str]], redis_url: str, tmp_path: Path
) -> None:
    good, bad = two_accounts
    spec = write_spec(tmp_path / "spec.toml", two_accounts)
    text = spec.read_text().replace(f'tag = "{tag(*bad)}"', 'tag = "bad-2"')
    spec.write_text(text)
    result = run_cli(str(spec), "--all-or-nothing", "--json", redis_url=redis_url)
    assert result.returncode == 1, result.stderr
    assert "--all-or-nothing" in result.stderr
    assert running_revision(aws.endpoint_url, *good) == "api:1"  # put back, in its own account
    assert running_revision(aws.endpoint_url, *bad) == "api:1"  # rolled back by ECS's circuit breaker


def test_the_lambda_worker_assumes_the_jobs_role_and_deploys_in_that_account(
    aws: AwsEmulator, redis_url: str
) -> None:
    """The lambda executor's path: the job carries only the role; the handler, with the function's
    own credentials, assumes it and deploys there, not in the function's account."""
    from worker.access import Access
    from worker.aws import AwsAccess
    from worker.contract import ContainerChange, DeployJob, JobOptions, Phase
    from worker.handler import make_handler
    from worker.settings import WorkerSettings
    from worker.target import Target

    account, region = OTHERS[0], "us-east-1"
    seed_role(aws.endpoint_url, account, "deployer")
    seed_services(aws.endpoint_url, region, [("prod", "api", {"app": OLD})], role_arn=role(account))
    seed_services(aws.endpoint_url, region, [("prod", "api", {"app": OLD})])  # the same names, at home
    job = DeployJob(
        run_id="20261129T120000Z-lambda",
        job_id="20261129T120000Z-lambda:1",
        target=Target(account=account, region=region, cluster="prod", service="api"),
        access=Access(role_arn=role(account)),
        changes=(ContainerChange(container="app", image="registry.example.com/api:2.0.0"),),
        options=JobOptions(timeout_s=30, poll_min_s=0.1, poll_max_s=0.3, heartbeat_s=3),
    )
    assert "Secret" not in job.model_dump_json()
    handle = make_handler(
        WorkerSettings(redis_url=redis_url, region=region),
        AwsAccess(endpoint_url=aws.endpoint_url, static_credentials=("testing", "testing")),
    )
    record = {
        "messageId": "m-1",
        "body": job.model_dump_json(),
        "attributes": {"MessageGroupId": job.target.key},
        "eventSourceARN": f"arn:aws:sqs:{region}:{CALLER}:jobs.fifo",
    }
    assert handle({"Records": [record]}, None) == {"batchItemFailures": []}
    assert role(account) in aws.assumed_roles()
    assert running_revision(aws.endpoint_url, account, region) == "api:2"
    home = boto3.client("ecs", **client_options(aws.endpoint_url, region))
    assert home.describe_services(cluster="prod", services=["api"])["services"][0]["taskDefinition"].endswith(
        "api:1"
    )
    client = redis.Redis.from_url(redis_url)
    try:
        phase = client.hget(job_hash(job.run_id, job.job_id), "terminal")
    finally:
        client.close()
    assert phase == Phase.SUCCEEDED.value.encode()


def test_preflight_reads_ecr_in_the_registrys_account_and_names_where_a_service_is_missing(
    aws: AwsEmulator, two_accounts: list[tuple[str, str]], redis_url: str, tmp_path: Path
) -> None:
    from orchestrator.sandbox import seed_images

    home = OTHERS[0]  # the registry's account: B's service pulls across accounts
    image = f"{home}.dkr.ecr.us-east-1.amazonaws.com/api"
    seed_images(aws.endpoint_url, "us-east-1", [f"{image}:2.0.0"], role_arn=role(home))
    spec = write_spec(tmp_path / "spec.toml", two_accounts, image, "2.0.0")
    planned = run_cli("plan", str(spec), "--json", redis_url=redis_url)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    targets = [json.loads(line) for line in planned.stdout.splitlines() if '"target"' in line]
    assert sorted((t["account"], t["region"]) for t in targets) == sorted(two_accounts)
    assert all(t["ecr_digest"] and t["ecr_digest"].startswith("sha256:") for t in targets), targets

    missing = (home, "eu-west-1")  # the role works, but no prod/api there
    spec = write_spec(tmp_path / "spec.toml", [*two_accounts, missing], image, "2.0.0")
    before = aws.request_counts()
    refused = run_cli(str(spec), "--json", redis_url=redis_url)
    assert refused.returncode == 2, refused.stderr
    assert f"in {home}/eu-west-1: cluster 'prod' not found" in refused.stderr
    assert writes(before, aws.request_counts()) == {}
