"""Planning: one DeployJob per service, options layered, job ids deterministic."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.plan import MAX_JOB_ID_LENGTH, PlannedJob, job_id_for, new_run_id, plan_jobs
from orchestrator.spec import Spec, load_spec, spec_from_data
from worker.contract import ContainerChange, Follow, job_from_message
from worker.target import Target

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32
RUN = "20261129T015900Z-ab12cd"

GOOD_SPEC = f"""
region = "eu-west-1"
timeout = "15m"

[[deploy]]
cluster = "prod"
service = "api"
container = "app"
image = "{ECR}/api"
tag = "v1.4.2"

[[deploy]]
cluster = "prod"
service = "worker"
container = "worker"
image = "{ECR}/worker"
digest = "{DIGEST}"

[[deploy]]
cluster = "prod"
service = "api"
container = "envoy"
image = "{ECR}/envoy:v1.30"

[[deploy]]
cluster = "staging"
service = "api"
container = "app"
image = "{ECR}/api"
tag = "v1.4.2"

[[deploy]]
cluster = "prod"
service = "api"
container = "otel"
image = "{ECR}/otel:0.98"

[[deploy]]
cluster = "prod"
service = "api"
container = "app"
image = "{ECR}/api:v1.4.2"
"""


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    path = tmp_path / "spec.toml"
    path.write_text(GOOD_SPEC, encoding="utf-8")
    return load_spec(path)


def entry(
    cluster: str = "prod", service: str = "api", container: str = "app", **extra: Any
) -> dict[str, Any]:
    return {"cluster": cluster, "service": service, "container": container, "image": "nginx:1.27", **extra}


def make_spec(*entries: dict[str, Any], **top: Any) -> Spec:
    return spec_from_data({**top, "deploy": list(entries)}, "test.toml")


def test_one_job_per_service_with_all_its_containers(spec: Spec) -> None:
    planned = plan_jobs(spec, RUN)
    assert [(p.target.cluster, p.target.service) for p in planned] == [
        ("prod", "api"),
        ("prod", "worker"),
        ("staging", "api"),
    ]
    api = planned[0]
    assert api.job.changes == (
        ContainerChange(container="app", image=f"{ECR}/api:v1.4.2"),
        ContainerChange(container="envoy", image=f"{ECR}/envoy:v1.30"),
        ContainerChange(container="otel", image=f"{ECR}/otel:0.98"),
    )
    assert api.target == Target(cluster="prod", service="api", region="eu-west-1")
    assert planned[1].job.changes == (ContainerChange(container="worker", image=f"{ECR}/worker@{DIGEST}"),)
    for p in planned:
        assert isinstance(p, PlannedJob)
        assert p.job.run_id == RUN
        assert p.target.region == "eu-west-1"
        assert p.job.options.timeout_s == 900.0
        assert job_from_message(p.job.model_dump_json()) == p.job  # survives the wire


def test_job_ids_are_deterministic_and_distinct(spec: Spec) -> None:
    first = [p.job.job_id for p in plan_jobs(spec, RUN)]
    again = [p.job.job_id for p in plan_jobs(spec, RUN)]
    other_run = [p.job.job_id for p in plan_jobs(spec, RUN + "x")]
    assert first == again
    assert len(set(first)) == len(first)
    assert not set(first) & set(other_run)
    allowed = set(string.ascii_letters + string.digits + string.punctuation)
    for job_id in first:
        assert job_id.startswith(f"{RUN}:")
        assert len(job_id) <= MAX_JOB_ID_LENGTH
        assert set(job_id) <= allowed
    assert first[0] == job_id_for(RUN, Target(cluster="prod", service="api", region="eu-west-1"))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (Target(cluster="prod", service="api"), Target(cluster="prod", service="web")),
        (Target(cluster="prod", service="api"), Target(cluster="staging", service="api")),
        (Target(cluster="a/b", service="c"), Target(cluster="a", service="b/c")),
        # The same names in another region or account are another service.
        (Target(cluster="prod", service="api", region="eu-west-1"), Target(cluster="prod", service="api")),
        (
            Target(cluster="prod", service="api", region="eu-west-1", account="111111111111"),
            Target(cluster="prod", service="api", region="eu-west-1", account="222222222222"),
        ),
    ],
)
def test_job_ids_differ_per_target(a: Target, b: Target) -> None:
    assert job_id_for(RUN, a) != job_id_for(RUN, b)
    assert a.key != b.key


def test_a_service_named_by_arn_and_by_name_is_one_target() -> None:
    arn = "arn:aws:ecs:eu-west-1:123456789012:service/prod/api"
    spec = make_spec(entry(container="app"), entry(service=arn, container="envoy"), region="eu-west-1")
    [planned] = plan_jobs(spec, RUN)
    assert [c.container for c in planned.job.changes] == ["app", "envoy"]
    named, by_arn = Target(cluster="prod", service="api"), Target(cluster="prod", service=arn)
    assert named.key == by_arn.key and job_id_for(RUN, named) == job_id_for(RUN, by_arn)


@pytest.mark.parametrize("run_id", ["", "has space", "é-run", "x" * 68, "tab\t"])
def test_bad_run_ids_are_refused(run_id: str) -> None:
    spec = make_spec(entry())
    with pytest.raises(ConfigError, match="invalid run id"):
        plan_jobs(spec, run_id)


def test_longest_run_id_fits() -> None:
    assert len(job_id_for("x" * 67, Target(cluster="prod", service="api"))) == MAX_JOB_ID_LENGTH


@pytest.mark.parametrize(
    ("top", "override", "argument", "expected"),
    [
        ({}, None, None, 900.0),
        ({"timeout": "10m"}, None, None, 600.0),
        ({"timeout": "10m"}, "20m", None, 1200.0),
        ({"timeout": "10m"}, "20m", 30.0, 30.0),
        ({}, None, 45.5, 45.5),
    ],
)
def test_timeout_precedence(
    top: dict[str, Any], override: str | None, argument: float | None, expected: float
) -> None:
    extra: dict[str, Any] = {} if override is None else {"timeout": override}
    spec = make_spec(entry(**extra), entry(container="side"), entry(service="other"), **top)
    planned = plan_jobs(spec, RUN, timeout_s=argument)
    assert planned[0].job.options.timeout_s == expected
    # The override belongs to prod/api only; prod/other keeps the default unless the flag is set.
    assert planned[1].job.options.timeout_s == (argument or spec.timeout)


@pytest.mark.parametrize(
    ("top", "override", "argument", "expected"),
    [
        ({}, None, None, True),
        ({"rollback": False}, None, None, False),
        ({"rollback": False}, True, None, True),
        ({"rollback": True}, False, None, False),
        ({"rollback": True}, False, True, True),
        ({}, True, False, False),
    ],
)
def test_rollback_precedence(
    top: dict[str, Any], override: bool | None, argument: bool | None, expected: bool
) -> None:
    extra: dict[str, Any] = {} if override is None else {"rollback": override}
    spec = make_spec(entry(container="first"), entry(**extra), **top)
    assert plan_jobs(spec, RUN, rollback=argument)[0].job.options.rollback is expected


@pytest.mark.parametrize(
    ("top", "argument", "expected"),
    [
        ({}, None, None),
        ({"region": "eu-west-1"}, None, "eu-west-1"),
        ({"region": "eu-west-1"}, "us-east-1", "us-east-1"),
    ],
)
def test_region_precedence(top: dict[str, Any], argument: str | None, expected: str | None) -> None:
    spec = make_spec(entry(), **top)
    assert plan_jobs(spec, RUN, region=argument)[0].target.region == expected


@pytest.mark.parametrize(("wait", "expected"), [(None, True), (True, True), (False, False)])
def test_no_wait_reaches_every_job(wait: bool | None, expected: bool) -> None:
    spec = make_spec(entry(), entry(service="web", timeout="5m"))
    planned = plan_jobs(spec, RUN) if wait is None else plan_jobs(spec, RUN, wait=wait)
    assert [p.job.options.wait_for_target for p in planned] == [expected, expected]


@pytest.mark.parametrize(
    ("top", "given", "expected"),
    [
        ({}, None, "events"),
        ({}, "poll", "poll"),
        ({"follow": "poll"}, None, "poll"),
        ({"follow": "poll"}, "events", "events"),
    ],
)
def test_follow_comes_from_the_command_line_else_from_the_spec(
    top: dict[str, Any], given: str | None, expected: str
) -> None:
    """`--follow` wins over the spec's `follow`, like every other setting; the spec's default is
    events (the run falls back to polling where it cannot set ECS's events up)."""
    spec = make_spec(entry(), **top)
    planned = plan_jobs(spec, RUN) if given is None else plan_jobs(spec, RUN, follow=Follow(given))
    assert planned[0].job.options.follow == Follow(expected)


@pytest.mark.parametrize(
    ("top", "poll_min", "poll_max", "heartbeat"),
    [
        ({}, 1.0, 15.0, 60.0),
        ({"heartbeat": "12s", "poll_interval": "1s"}, 1.0, 4.0, 12.0),
        ({"heartbeat": "10m", "poll_interval": "30s"}, 30.0, 30.0, 600.0),
    ],
)
def test_polling_and_heartbeat(
    top: dict[str, Any], poll_min: float, poll_max: float, heartbeat: float
) -> None:
    options = plan_jobs(make_spec(entry(), **top), RUN)[0].job.options
    assert (options.poll_min_s, options.poll_max_s, options.heartbeat_s) == (poll_min, poll_max, heartbeat)


@pytest.mark.parametrize(
    ("top", "api_budget", "keep_revisions"),
    [({}, True, None), ({"api_budget": False, "keep_revisions": 3}, False, 3)],
)
def test_safety_settings_reach_every_job(
    top: dict[str, Any], api_budget: bool, keep_revisions: int | None
) -> None:
    jobs = plan_jobs(make_spec(entry(), entry(service="web"), **top), RUN)
    assert {(j.job.options.api_budget, j.job.options.keep_revisions) for j in jobs} == {
        (api_budget, keep_revisions)
    }


@pytest.mark.parametrize("top", [{"keep_revisions": 0}, {"api_budget": "no"}, {"pin_digests": 1}])
def test_bad_safety_settings_are_refused(top: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(top))):
        make_spec(entry(), **top)


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_timeout_argument(timeout_s: float) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        plan_jobs(make_spec(entry()), RUN, timeout_s=timeout_s)


def test_new_run_id_sorts_by_time() -> None:
    start = datetime(2026, 11, 29, 1, 59, 0, tzinfo=UTC)
    ids = [new_run_id(start + timedelta(seconds=s)) for s in (0, 1, 61, 3600)]
    assert ids == sorted(ids)
    assert re.fullmatch(r"20261129T015900Z-[0-9a-f]{6}", ids[0])
    assert new_run_id() != new_run_id()
    assert len(job_id_for(new_run_id(), Target(cluster="prod", service="api"))) <= MAX_JOB_ID_LENGTH
