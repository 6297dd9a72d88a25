"""The CLI as users run it (a subprocess) against moto + the rollout simulator + a real Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
import pytest

from orchestrator.cli import SUBCOMMANDS
from orchestrator.plan import PlannedJob
from orchestrator.render import summary_table
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_images, seed_services
from orchestrator.sandbox.session import SEEDED_TAG, sandbox_services
from orchestrator.spec import load_spec
from orchestrator.state import RunState
from tests.cli import ROOT, run_cli, spawn_cli
from worker.contract import ContainerChange, DeployJob, EventDetails, Phase, WorkerEvent
from worker.target import Target
from worker.taskdef import READ_ONLY_FIELDS

REGION = "us-east-1"
REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def write_spec(path: Path, entries: list[dict[str, str]], **defaults: str) -> Path:
    lines = [f'{key} = "{value}"' for key, value in defaults.items()]
    for entry in entries:
        lines.append("[[deploy]]")
        lines += [f'{key} = "{value}"' for key, value in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def twenty_services() -> list[dict[str, str]]:
    """20 services on 3 clusters; every 5th has a second container; svc07 gets a bad image."""
    entries = []
    for i in range(20):
        cluster, service = f"cluster-{i % 3}", f"svc{i:02d}"
        tag = "bad-build" if i == 7 else f"2.{i}.0"
        entries.append(
            {
                "cluster": cluster,
                "service": service,
                "container": "app",
                "image": f"{REPO}/{service}",
                "tag": tag,
            }
        )
        if i % 5 == 0:
            entries.append(
                {
                    "cluster": cluster,
                    "service": service,
                    "container": "proxy",
                    "image": f"{REPO}/proxy",
                    "tag": "1.1.0",
                }
            )
    return entries


def ecs() -> Any:
    return boto3.client("ecs", region_name=REGION)


def task_definition(arn: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    described = ecs().describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return {k: v for k, v in described["taskDefinition"].items() if k not in READ_ONLY_FIELDS}, described[
        "tags"
    ]


def seed_from(spec_path: Path, *, images: bool = True) -> None:
    """The spec's services in ECS and (unless not) its images in ECR, as a deploy expects."""
    spec = load_spec(spec_path)
    seed_services(os.environ["AWS_ENDPOINT_URL"], REGION, sandbox_services(spec))
    if images:
        seed_images(os.environ["AWS_ENDPOINT_URL"], REGION, [entry.reference for entry in spec.deploy])


def test_twenty_services_in_parallel_with_json_output(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    spec_path = write_spec(tmp_path / "fleet.toml", twenty_services(), poll_interval="100ms", timeout="60s")
    seed_from(spec_path)
    before = aws.request_counts()

    result = run_cli(str(spec_path), "--json", redis_url=redis_url)

    assert result.returncode == 1, result.stderr  # one target was rolled back
    calls = {action: n - before.get(action, 0) for action, n in aws.request_counts().items()}
    # Each revision is read once, by preflight (the jobs register from its read: it was 40), and
    # the jobs' own reads of their services are batched by cluster (it was one per job: 3 + 20).
    assert calls["DescribeTaskDefinition"] == 20, calls
    assert calls["DescribeServices"] <= 3 + 9, calls
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert all("type" in line for line in lines)
    assert lines[0]["type"] == "run" and lines[-1]["type"] == "summary"
    results = {(r["service"], r["container"]): r for r in lines[-1]["results"]}
    assert len(results) == 24
    for (service, container), r in results.items():
        expected = "rolled_back" if service == "svc07" else "succeeded"
        assert r["status"] == expected, r
        assert r["image"] == (
            f"{REPO}/proxy:1.1.0"
            if container == "proxy"
            else f"{REPO}/{service}:" + r["image"].split(":")[-1]
        )

    # In moto: every service points at a revision whose only change is the named images.
    services_by_cluster: dict[str, list[str]] = {}
    for service, _ in results:
        services_by_cluster.setdefault(f"cluster-{int(service[3:]) % 3}", []).append(service)
    for cluster, names in services_by_cluster.items():
        for service in ecs().describe_services(cluster=cluster, services=sorted(set(names)))["services"]:
            name = service["serviceName"]
            old_body, old_tags = task_definition(f"{name}:1")
            new_body, new_tags = task_definition(service["taskDefinition"])
            assert new_tags == old_tags
            if name == "svc07":
                assert service["taskDefinition"].endswith(f"{name}:1")
                continue
            assert service["taskDefinition"].endswith(f"{name}:2")
            wanted = {c: r["image"] for (s, c), r in results.items() if s == name}
            for container in old_body["containerDefinitions"]:
                container["image"] = wanted.get(container["name"], container["image"])
            assert new_body == old_body
            assert results[(name, "app")]["task_definition_arn"] == service["taskDefinition"]


@pytest.mark.parametrize(
    ("spec_text", "expected"),
    [
        pytest.param(
            '[[deploy]]\ncluster="c"\nservice="s"\ncontainer="app"\nimage="r/app"\ntga="1"\n',
            ["entry 1", "tga"],
            id="unknown-key",
        ),
        pytest.param(
            '[[deploy]]\ncluster="c"\nservice="s"\nimage="r/app"\ntag="1"\n',
            ["entry 1", "container"],
            id="missing-field",
        ),
        pytest.param(
            '[[deploy]]\ncluster="c"\nservice="s"\ncontainer="app"\nimage="R/App"\ntag="1"\n',
            ["entry 1 (c/s/app)", "lowercase"],
            id="invalid-image",
        ),
        pytest.param('timeout = "5m"\n', ["deploy"], id="empty-spec"),
        pytest.param(
            '[[deploy]]\ncluster="c"\nservice="s"\ncontainer="app"\nimage="r/app"\ntag="1"\n'
            '[[deploy]]\ncluster="c"\nservice="s"\ncontainer="app"\nimage="r/app"\ntag="2"\n',
            ["entry 2 (c/s/app)", "conflicts with entry 1"],
            id="same-container-two-images",
        ),
        pytest.param(
            'bogus = 1\n[[deploy]]\ncluster="c"\nservice="s"\ncontainer="app"\nimage="r/app"\ntag="1"\n',
            ["bogus"],
            id="unknown-top-level-key",
        ),
    ],
)
def test_bad_spec_is_refused_before_anything_is_sent(
    aws: AwsEmulator, redis_url: str, tmp_path: Path, spec_text: str, expected: list[str]
) -> None:
    seed_services(aws.endpoint_url, REGION, [("c", "s", {"app": f"r/app:{SEEDED_TAG}"})])
    before = aws.request_counts()
    spec_path = tmp_path / "bad.toml"
    spec_path.write_text(spec_text)

    result = run_cli(str(spec_path), "--json", redis_url=redis_url)

    assert result.returncode == 2
    assert result.stdout == ""
    assert str(spec_path) in result.stderr
    for words in expected:
        assert words in result.stderr, result.stderr
    assert aws.request_counts() == before, "a refused spec must not reach AWS"
    assert ecs().list_task_definitions(familyPrefix="s")["taskDefinitionArns"] == [
        f"arn:aws:ecs:{REGION}:123456789012:task-definition/s:1"
    ]


def test_dry_run_shows_current_and_new_images_and_changes_nothing(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    entries = twenty_services()[:3]
    spec_path = write_spec(tmp_path / "fleet.toml", entries)
    seed_from(spec_path)
    before = aws.request_counts()

    result = run_cli(str(spec_path), "--dry-run", redis_url=redis_url)

    assert result.returncode == 0, result.stderr
    assert f"cluster-0/svc00/app: {REPO}/svc00:{SEEDED_TAG} -> {REPO}/svc00:2.0.0" in result.stdout
    assert f"cluster-0/svc00/proxy: {REPO}/proxy:{SEEDED_TAG} -> {REPO}/proxy:1.1.0" in result.stdout
    writes = {k for k in aws.request_counts() if not k.startswith(("Describe", "List", "Get"))}
    assert writes <= set(before), "dry run wrote to AWS"
    assert aws.request_counts().get("RegisterTaskDefinition") == before.get("RegisterTaskDefinition")


def test_ctrl_c_stops_cleanly_and_names_what_is_still_rolling_out(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    two_services = [e for e in twenty_services() if e["container"] == "app"][:2]
    spec_path = write_spec(tmp_path / "slow.toml", two_services, poll_interval="100ms")
    seed_from(spec_path)
    process = spawn_cli(str(spec_path), "--plain", redis_url=redis_url)
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    under_way: set[str] = set()
    for line in process.stdout:  # wait until both rollouts are under way
        if "in_progress" in line:
            under_way.add(line.split()[1])
        if len(under_way) == 2 or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert "interrupted; run " in stderr
    assert (
        "cluster-0/svc00: deployment ecs-svc/" in stderr and "cluster-1/svc01: deployment ecs-svc/" in stderr
    )


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        "import contextlib, io, sys\n"
        "from orchestrator.cli import SUBCOMMANDS, main\n"
        "for argv in [['--help'], *([name, '--help'] for name in SUBCOMMANDS)]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "heavy = [m for m in ('textual', 'aioboto3', 'botocore', 'moto', 'redis') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_lambda_executor_in_the_sandbox_deploys_twenty_services(redis_url: str, tmp_path: Path) -> None:
    """The production path (pack, Lambda, FIFO queue, mapping, handler) end to end in the sandbox."""
    entries = twenty_services()
    for entry in entries:
        entry["tag"] = entry["tag"].replace("bad-build", "broken-build")  # the sandbox's bad images
    spec_path = write_spec(tmp_path / "fleet.toml", entries, poll_interval="200ms", timeout="60s")

    result = run_cli(
        str(spec_path), "--sandbox", "--executor", "lambda", "--json", redis_url=redis_url, timeout=300
    )

    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    setup = {(line["step"], line["status"]) for line in lines if line["type"] == "setup"}
    assert {
        ("pack", "done"),
        ("lambda", "done"),
        ("queue", "done"),
        ("mapping", "done"),
        ("dispatch", "done"),
    } <= setup
    statuses = {(r["service"], r["container"]): r["status"] for r in lines[-1]["results"]}
    assert len(statuses) == 24
    assert statuses == {key: "rolled_back" if key[0] == "svc07" else "succeeded" for key in statuses}


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        pytest.param({"ECS_FANOUT_MAX_PARALLEL": "0"}, [], "ECS_FANOUT_MAX_PARALLEL", id="bad-setting"),
        pytest.param(
            {"ECS_FANOUT_LAMBDA_TIMEOUT_S": "1000"},
            ["--executor", "lambda"],
            "ECS_FANOUT_LAMBDA_TIMEOUT_S",
            id="bad-lambda-setting",
        ),
        pytest.param(
            {"REDIS_URL": "redis://:s3cret@127.0.0.1:1/0"},
            [],
            "cannot reach Redis at redis://:***@",
            id="no-redis",
        ),
        pytest.param({}, ["--executor", "lambda"], "ECS_FANOUT_LAMBDA_ROLE_ARN", id="lambda-without-role"),
    ],
)
def test_bad_configuration_exits_2_without_a_traceback(
    aws: AwsEmulator, redis_url: str, tmp_path: Path, env: dict[str, str], args: list[str], expected: str
) -> None:
    spec_path = write_spec(tmp_path / "one.toml", twenty_services()[1:2])
    seed_from(spec_path)
    result = run_cli(str(spec_path), "--json", *args, redis_url=redis_url, env=env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert aws.request_counts().get("RegisterTaskDefinition", 0) == 1  # the seeding's only


def test_plan_shows_only_image_lines_and_ecr_digests(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    entries = twenty_services()[:3]  # svc00 (app + proxy) and svc01
    spec_path = write_spec(tmp_path / "fleet.toml", entries)
    seed_from(spec_path, images=False)
    pushed = [f"{REPO}/svc00:2.0.0", f"{REPO}/proxy:1.1.0", f"{REPO}/svc01:{SEEDED_TAG}"]  # not svc01:2.1.0
    seed_images(aws.endpoint_url, REGION, pushed)
    before = aws.request_counts()

    result = run_cli("plan", str(spec_path), redis_url=redis_url)

    assert result.returncode == 1, result.stderr  # svc01's tag is missing from ECR
    diff = [
        line.strip() for line in result.stdout.splitlines() if line.startswith("    containerDefinitions")
    ]
    assert diff == [
        f"containerDefinitions[app].image: {REPO}/svc00:{SEEDED_TAG} -> {REPO}/svc00:2.0.0",
        f"containerDefinitions[proxy].image: {REPO}/proxy:{SEEDED_TAG} -> {REPO}/proxy:1.1.0",
    ]
    assert "ecr: svc00:2.0.0 is sha256:" in result.stdout
    assert "ecr: svc01:2.1.0 not found (ImageNotFoundException)" in result.stdout
    # The diff comes once per service, under a line naming the service, after all its containers.
    lines = result.stdout.splitlines()
    heading = "  cluster-0/svc00: the new revision would differ from svc00:1 in:"
    assert lines.count(heading) == 1
    assert lines[lines.index(heading) - 1].startswith("    ecr: proxy:1.1.0")
    assert lines[lines.index(heading) + 1].strip().startswith("containerDefinitions[app].image")
    assert aws.request_counts().get("RegisterTaskDefinition") == before.get("RegisterTaskDefinition")


def test_dry_run_and_plan_speak_json_when_asked(aws: AwsEmulator, redis_url: str, tmp_path: Path) -> None:
    entries = twenty_services()[:3]  # svc00 (app + proxy) and svc01
    spec_path = write_spec(tmp_path / "fleet.toml", entries)
    seed_from(spec_path)

    dry = run_cli(str(spec_path), "--dry-run", "--json", redis_url=redis_url)
    planned = run_cli("plan", str(spec_path), "--json", redis_url=redis_url)

    assert dry.returncode == 0 and planned.returncode == 0, dry.stderr + planned.stderr
    objects = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [o["type"] for o in objects] == ["target", "target", "target", "summary"]
    assert objects[0] | {"region": None} == {
        "type": "target",
        "account": "123456789012",  # the caller's, as STS tells it
        "cluster": "cluster-0",
        "service": "svc00",
        "region": None,
        "container": "app",
        "current_image": f"{REPO}/svc00:{SEEDED_TAG}",
        "new_image": f"{REPO}/svc00:2.0.0",
        "unchanged": False,
        "fine": True,
        "problem": None,
    }
    assert objects[-1] | {"type": "summary", "targets": 3, "refused": 0, "fine": True} == objects[-1]

    objects = [json.loads(line) for line in planned.stdout.splitlines()]
    services = {o["service"]: o for o in objects if o["type"] == "service"}
    assert services["svc00"]["revision"] == "svc00:1"
    assert services["svc00"]["diff"] == [
        f"containerDefinitions[app].image: {REPO}/svc00:{SEEDED_TAG} -> {REPO}/svc00:2.0.0",
        f"containerDefinitions[proxy].image: {REPO}/proxy:{SEEDED_TAG} -> {REPO}/proxy:1.1.0",
    ]
    targets = [o for o in objects if o["type"] == "target"]
    assert all(t["ecr_digest"].startswith("sha256:") for t in targets), targets
    assert objects[-1]["type"] == "summary"


def test_version_help_and_subcommand_help() -> None:
    shown = run_cli("--version", redis_url="")
    assert (shown.returncode, shown.stdout.strip()) == (0, f"ecs-fanout {version('ecs-fanout')}")

    main_help = run_cli("--help", redis_url="").stdout
    for name in SUBCOMMANDS:  # every subcommand, with a line saying what it does
        assert re.search(rf"^  {re.escape(name)} +\S", main_help, re.M), main_help

    for name in SUBCOMMANDS:
        sub = run_cli(name, "--help", redis_url="")
        assert sub.returncode == 0 and sub.stdout.startswith(f"usage: ecs-fanout {name}"), sub.stdout


def _finished_state(image: str, message: str) -> RunState:
    target = Target(cluster="production-eu-west-1-cluster", service="payments-api-service-blue")
    job = DeployJob(
        run_id="run-1",
        job_id="run-1:a",
        target=target,
        changes=(ContainerChange(container="application", image=image),),
    )
    state = RunState.from_plan("run-1", [PlannedJob(job=job)])
    details = EventDetails(images=(ContainerChange(container="application", image=image),))
    state.apply(
        WorkerEvent(
            run_id="run-1", job_id="run-1:a", seq=1, phase=Phase.FAILED, message=message, details=details
        )
    )
    return state


def test_the_plain_summary_table_fits_120_columns() -> None:
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    image = f"{registry}/platform/payments/api-service:release-2026.11.29-abcdef0"
    message = "rolled back: " + "the circuit breaker saw tasks fail their health checks " * 4

    lines = summary_table(_finished_state(image, message)).splitlines()

    assert max(len(line) for line in lines) <= 120, "\n".join(lines)
    target, status, shown_image, shown_message = lines[1].split("  ", 3)
    assert status == "failed"
    # Shortened in the middle: where the image is from, and its whole tag.
    assert shown_image.startswith("1234567890") and shown_image.endswith(":release-2026.11.29-abcdef0")
    assert "..." in shown_image and "..." in target and target.endswith("/application")
    assert shown_message.startswith("rolled back: the circuit") and shown_message.endswith("...")
