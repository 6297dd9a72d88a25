"""Preflight through the CLI: a run whose targets cannot all be deployed is refused before any change."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import boto3

from orchestrator.plan import plan_jobs
from orchestrator.preflight import preflight
from orchestrator.sandbox import AwsEmulator, seed_images, seed_services
from orchestrator.spec import spec_from_data
from tests.cli import run_cli
from tests.test_cli_e2e import REGION, REPO, ecs, write_spec
from worker.aws import AwsAccess
from worker.ecs_calls import controller_problem

SIDECAR = "fluent-bit:3"
# What deploys a CODE_DEPLOY service instead (worker.ecs_calls words it, the worker refuses it too).
CODE_DEPLOY_REFUSED = str(controller_problem({"deploymentController": {"type": "CODE_DEPLOY"}}))
ECR_ONLY = {"ECS_FANOUT_ALLOWED_REGISTRIES": "*.dkr.ecr.*.amazonaws.com"}


def seed(aws: AwsEmulator, *services: str, images: tuple[str, ...] = ()) -> None:
    seed_services(
        aws.endpoint_url,
        REGION,
        [
            ("cluster-0", name, {"app": f"{REPO}/{name}:1.0.0", "log-router": "fluent-bit:3"})
            for name in services
        ],
    )
    seed_images(aws.endpoint_url, REGION, list(images))


def entry(service: str, image: str, *, cluster: str = "cluster-0", container: str = "app") -> dict[str, str]:
    return {"cluster": cluster, "service": service, "container": container, "image": image}


def test_preflight_refuses_the_run_naming_every_bad_entry(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    seed(aws, "svc00", "svc02", "svc03", "svc04", images=(f"{REPO}/svc00:2.0.0",))
    ecs().create_service(
        cluster="cluster-0",
        serviceName="legacy",
        taskDefinition="svc00:1",
        desiredCount=1,
        deploymentController={"type": "CODE_DEPLOY"},
    )
    spec_path = write_spec(
        tmp_path / "fleet.toml",
        [
            entry("svc00", f"{REPO}/svc00:2.0.0"),  # fine on its own
            entry("svc01", f"{REPO}/svc01:2.0.0", cluster="nope"),
            entry("missing", f"{REPO}/missing:2.0.0"),
            entry("svc02", f"{REPO}/svc02:2.0.0", container="worker"),
            entry("svc03", f"{REPO}/svc03:9.9.9"),
            entry("legacy", f"{REPO}/svc00:2.0.0"),
            entry("svc04", "nginx:1.27"),
        ],
    )
    before = aws.request_counts()

    result = run_cli(str(spec_path), "--json", redis_url=redis_url, env=ECR_ONLY)

    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = [line.removeprefix("ecs-fanout: ").split(": ", 2) for line in result.stderr.splitlines()]
    assert {path for path, *_ in lines} == {str(spec_path)}
    problems = [problem for _, *problem in lines]
    assert problems == [
        ["entry 2 (nope/svc01/app)", "cluster 'nope' not found"],
        ["entry 3 (cluster-0/missing/app)", "service 'missing' not found in cluster 'cluster-0'"],
        ["entry 4 (cluster-0/svc02/worker)", "no container 'worker' in svc02:1 (it has: app, log-router)"],
        [
            "entry 5 (cluster-0/svc03/app)",
            "tag '9.9.9' not found in ECR repository 'svc03': RepositoryNotFoundException: "
            "The repository with name 'svc03' does not exist in the registry with id '123456789012'",
        ],
        ["entry 6 (cluster-0/legacy/app)", CODE_DEPLOY_REFUSED],
        [
            "entry 7 (cluster-0/svc04/app)",
            "registry docker.io is not in the allow-list (*.dkr.ecr.*.amazonaws.com)",
        ],
        ["preflight refused the run", "nothing was changed"],
    ]
    assert CODE_DEPLOY_REFUSED.startswith("service uses the CODE_DEPLOY deployment controller")
    after = aws.request_counts()
    for action in ("RegisterTaskDefinition", "UpdateService", "SendMessageBatch"):
        assert after.get(action) == before.get(action), action  # entry 1 was not deployed either
    assert (
        ecs()
        .describe_services(cluster="cluster-0", services=["svc00"])["services"][0]["taskDefinition"]
        .endswith("svc00:1")
    )


READS = ("Describe", "List", "Get", "AssumeRole", "ReceiveMessage")


def test_set_up_beside_preflight_changes_nothing_when_preflight_refuses_the_run(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    """The local executor sets up while preflight runs (section 15 of docs/design.md): a refused
    run still writes nothing to AWS, not even ECS's events rule and queue, and prints nothing on
    stdout; the run that passes makes them sure before its first job."""
    seed(aws, "svc00", "svc01", images=(f"{REPO}/svc00:2.0.0", f"{REPO}/svc01:2.0.0"))
    good = entry("svc00", f"{REPO}/svc00:2.0.0")
    refused_path = write_spec(
        tmp_path / "refused.toml", [good, entry("svc01", f"{REPO}/svc01:2.0.0", container="nope")]
    )
    before = aws.request_counts()

    refused = run_cli(str(refused_path), "--json", redis_url=redis_url)

    assert refused.returncode == 2, refused.stderr
    assert refused.stdout == "" and "Traceback" not in refused.stderr
    assert "entry 2 (cluster-0/svc01/nope): no container 'nope'" in refused.stderr
    after = aws.request_counts()
    writes = {
        action: count - before.get(action, 0)
        for action, count in after.items()
        if count > before.get(action, 0) and not action.startswith(READS)
    }
    assert writes == {}

    passed_path = write_spec(tmp_path / "passed.toml", [good], poll_interval="100ms")
    passed = run_cli(str(passed_path), "--json", redis_url=redis_url)

    assert passed.returncode == 0, passed.stderr
    assert aws.request_counts().get("PutRule", 0) > after.get("PutRule", 0)  # ECS's events: after the checks
    assert json.loads(passed.stdout.splitlines()[0])["type"] == "run"


def test_pin_digests_deploys_the_digest_the_tag_resolved_to(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    seed(aws, "svc00", images=(f"{REPO}/svc00:2.0.0",))
    digest = boto3.client("ecr", region_name=REGION).describe_images(
        repositoryName="svc00", imageIds=[{"imageTag": "2.0.0"}]
    )["imageDetails"][0]["imageDigest"]
    spec_path = write_spec(
        tmp_path / "pinned.toml", [entry("svc00", f"{REPO}/svc00:2.0.0")], poll_interval="100ms"
    )
    spec_path.write_text("pin_digests = true\n" + spec_path.read_text())

    result = run_cli(str(spec_path), "--json", redis_url=redis_url)

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    pinned = f"{REPO}/svc00@{digest}"
    assert [(r["status"], r["image"]) for r in summary["results"]] == [("succeeded", pinned)]
    live = ecs().describe_services(cluster="cluster-0", services=["svc00"])["services"][0]["taskDefinition"]
    containers = ecs().describe_task_definition(taskDefinition=live)["taskDefinition"]["containerDefinitions"]
    assert {c["name"]: c["image"] for c in containers} == {
        "app": pinned,
        "log-router": SIDECAR,
    }


def test_a_refusal_while_the_executor_still_sets_up_ends_the_run_at_once(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    """Preflight refuses (a missing cluster: one call) while the local executor's set-up still
    waits for SQS (GetQueueUrl failing, retried with backoff for many seconds): the refusal is
    said alone, at once; the abandoned set-up is not waited for."""
    seed(aws, "svc00")
    gone = entry("svc00", "registry.example.com/app:2", cluster="gone")
    spec_path = write_spec(tmp_path / "gone.toml", [gone])
    aws.inject_fault("GetQueueUrl", 500, count=8)

    started = time.monotonic()
    refused = run_cli(str(spec_path), "--json", redis_url=redis_url)
    took = time.monotonic() - started

    assert refused.returncode == 2, refused.stderr
    assert "cluster 'gone' not found" in refused.stderr, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert not [line for line in lines if "retrieved" in line or "Error" in line], refused.stderr
    assert aws.pending_faults().get("GetQueueUrl", 0) > 0  # the set-up was abandoned under way
    assert took < 8, f"the refused run waited for the abandoned set-up ({took:.1f}s)"


def test_without_preflight_the_worker_still_refuses_a_registry_not_allowed(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    seed(aws, "svc04")
    spec_path = write_spec(tmp_path / "hub.toml", [entry("svc04", "nginx:1.27")], poll_interval="100ms")

    result = run_cli(str(spec_path), "--json", "--skip-preflight", redis_url=redis_url, env=ECR_ONLY)

    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    [outcome] = summary["results"]
    assert outcome["status"] == "failed"
    assert "not in this worker's registry allow-list" in outcome["message"]
    assert aws.request_counts().get("RegisterTaskDefinition") == 1  # the seeding's only


def test_preflight_that_cannot_read_aws_refuses_the_run(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    seed(aws, "svc00", images=(f"{REPO}/svc00:2.0.0",))
    spec_path = write_spec(tmp_path / "denied.toml", [entry("svc00", f"{REPO}/svc00:2.0.0")])
    aws.inject_fault("DescribeImages", 403)  # the caller may not read ECR

    result = run_cli(str(spec_path), "--json", redis_url=redis_url)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("ecs-fanout: preflight could not read AWS: AccessDeniedException")
    assert "nothing was changed" in result.stderr
    assert aws.request_counts().get("UpdateService") is None


HOOK = "arn:aws:lambda:us-east-1:123456789012:function:payments-smoke-test"
HOOK_ROLE = "arn:aws:iam::123456789012:role/ecs-hooks"
STRATEGIES: dict[str, dict[str, Any]] = {
    "blue": {
        "strategy": "BLUE_GREEN",
        "bakeTimeInMinutes": 10,
        "lifecycleHooks": [
            {"hookTargetArn": HOOK, "roleArn": HOOK_ROLE, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]},
            {"hookTargetArn": HOOK + "-2", "roleArn": HOOK_ROLE, "lifecycleStages": ["PRE_SCALE_UP"]},
        ],
    },
    "linear": {
        "strategy": "LINEAR",
        "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 2},
    },
    "canary": {
        "strategy": "CANARY",
        "bakeTimeInMinutes": 5,
        "canaryConfiguration": {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 3},
    },
}


def seed_strategies(aws: AwsEmulator) -> None:
    """svc00 as seeded (ROLLING, no strategy named), one service per other strategy, and one on
    each controller ecs-fanout does not deploy through."""
    seed(aws, "svc00", images=(f"{REPO}/svc00:2.0.0",))
    for name, configuration in STRATEGIES.items():
        ecs().create_service(
            cluster="cluster-0",
            serviceName=name,
            taskDefinition="svc00:1",
            desiredCount=1,
            deploymentConfiguration=configuration,
        )
    for controller in ("CODE_DEPLOY", "EXTERNAL"):
        ecs().create_service(
            cluster="cluster-0",
            serviceName=controller.lower(),
            taskDefinition="svc00:1",
            desiredCount=1,
            deploymentController={"type": controller},
        )


SERVICES = ("svc00", *STRATEGIES, "code_deploy", "external")


def test_plan_names_each_services_controller_and_strategy(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    seed_strategies(aws)
    spec_path = write_spec(tmp_path / "fleet.toml", [entry(name, f"{REPO}/svc00:2.0.0") for name in SERVICES])

    plain = run_cli("plan", str(spec_path), redis_url=redis_url)
    as_json = run_cli("plan", str(spec_path), "--json", redis_url=redis_url)

    assert plain.returncode == 1, plain.stderr  # the last two cannot be deployed
    headings = [
        line for line in plain.stdout.splitlines() if line.startswith("cluster-0/") and line.count("/") == 1
    ]
    assert headings == [
        "cluster-0/svc00: ECS controller, strategy ROLLING",
        "cluster-0/blue: ECS controller, strategy BLUE_GREEN, bake 10m, 2 hooks",
        "cluster-0/linear: ECS controller, strategy LINEAR 10% every 2m",
        "cluster-0/canary: ECS controller, strategy CANARY 5% for 3m, bake 5m",
        "cluster-0/code_deploy: CODE_DEPLOY controller",
        "cluster-0/external: EXTERNAL controller",
    ]
    lines = plain.stdout.splitlines()
    for controller in ("CODE_DEPLOY", "EXTERNAL"):
        refusal = controller_problem({"deploymentController": {"type": controller}})
        assert f"cluster-0/{controller.lower()}/app: {refusal}" in lines
    assert f"cluster-0/blue/app: {REPO}/svc00:1.0.0 -> {REPO}/svc00:2.0.0" in lines  # deployable

    assert as_json.returncode == 1, as_json.stderr
    services = {
        o["service"]: o for o in map(json.loads, as_json.stdout.splitlines()) if o["type"] == "service"
    }
    assert services["blue"]["deployment"] == {
        "controller": "ECS",
        "strategy": "BLUE_GREEN",
        "bake_minutes": 10.0,
        "hooks": [HOOK, HOOK + "-2"],
        "linear": None,
        "canary": None,
        "text": "ECS controller, strategy BLUE_GREEN, bake 10m, 2 hooks",
    }
    assert {name: o["deployment"]["strategy"] for name, o in services.items()} == {
        "svc00": "ROLLING",
        "blue": "BLUE_GREEN",
        "linear": "LINEAR",
        "canary": "CANARY",
        "code_deploy": "ROLLING",
        "external": "ROLLING",
    }
    assert [name for name, o in services.items() if not o["fine"]] == ["code_deploy", "external"]


def test_preflight_passes_every_strategy_and_refuses_the_other_controllers(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    seed_strategies(aws)
    spec_path = write_spec(tmp_path / "fleet.toml", [entry(name, f"{REPO}/svc00:2.0.0") for name in SERVICES])
    before = aws.request_counts()

    result = run_cli(str(spec_path), "--plain", redis_url=redis_url)

    assert result.returncode == 2, result.stderr
    refused = [line.removeprefix("ecs-fanout: ") for line in result.stderr.splitlines()]
    assert refused == [
        f"{spec_path}: entry 5 (cluster-0/code_deploy/app): "
        + str(controller_problem({"deploymentController": {"type": "CODE_DEPLOY"}})),
        f"{spec_path}: entry 6 (cluster-0/external/app): "
        + str(controller_problem({"deploymentController": {"type": "EXTERNAL"}})),
        f"{spec_path}: preflight refused the run: nothing was changed",
    ]
    assert aws.request_counts().get("UpdateService") == before.get("UpdateService")


def test_preflight_keeps_how_each_service_deploys(aws: AwsEmulator) -> None:
    seed_strategies(aws)
    spec = spec_from_data({"deploy": [entry(name, f"{REPO}/svc00:2.0.0") for name in SERVICES]}, "fleet.json")
    planned = plan_jobs(spec, "preflight-run", default_region=REGION)

    result = anyio.run(lambda: preflight(planned, aws=AwsAccess()))

    assert result.strategies() == "ROLLING 1, BLUE_GREEN 1, LINEAR 1, CANARY 1, CODE_DEPLOY 1, EXTERNAL 1"
    assert [p.target.service for p in result.problems] == ["code_deploy", "external"]
