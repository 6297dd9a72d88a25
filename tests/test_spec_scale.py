"""Specs at the edges: region names, and 10,000 entries checked, planned and named right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.loaders import create_loader
from botocore.utils import validate_region_name

from orchestrator.errors import SpecError
from orchestrator.plan import plan_jobs
from orchestrator.regions import check_region
from orchestrator.sandbox import AwsEmulator
from orchestrator.spec import Spec, load_spec, spec_from_data
from tests.cli import run_cli

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
ARN = "arn:aws:ecs:eu-west-1:123456789012"
N = 10_000


def entry(cluster: str, service: str, container: str = "app", tag: str = "v1") -> dict[str, str]:
    return {"cluster": cluster, "service": service, "container": container, "image": f"{ECR}/app", "tag": tag}


def spec_with(entries: list[dict[str, str]], **top: str) -> Spec:
    return spec_from_data({**top, "deploy": entries}, "inline.toml")


def refusal(entries: list[dict[str, str]], **top: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_with(entries, **top)
    return list(info.value.problems)


# --- region names -------------------------------------------------------------------------

GOOD_REGIONS = [
    "us-east-1",
    "eu-central-2",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "ap-southeast-5",
    "il-central-1",
    "us-isob-east-1",
    "eusc-de-east-1",
]


def known_regions() -> list[str]:
    """Every region botocore's own endpoint data lists (the pseudo-region `aws-global` aside)."""
    partitions = create_loader().load_data("endpoints")["partitions"]
    return sorted(name for p in partitions for name in p["regions"] if not name.endswith("global"))


@pytest.mark.parametrize("name", GOOD_REGIONS)
def test_region_names_are_accepted(name: str) -> None:
    assert check_region(name) == name
    assert spec_with([entry("prod", "api")], region=name).region == name
    validate_region_name(name)  # what botocore itself requires, so a client can be made


def test_every_region_botocore_knows_is_accepted() -> None:
    regions = known_regions()
    assert len(regions) > 30 and "us-east-1" in regions
    assert [name for name in regions if check_region(name) != name] == []


# Each: the value and the words the refusal must hold besides the field and the value.
BAD_REGIONS = [
    pytest.param("us_east_1", ["did you mean 'us-east-1'?"], id="underscores"),
    pytest.param("US-EAST-1", ["did you mean 'us-east-1'?"], id="upper-case"),
    pytest.param("eu-west-1a", ["availability zone", "its region is 'eu-west-1'"], id="zone"),
    pytest.param("eu-west", ["such as 'eu-west-1'"], id="no-number"),
    pytest.param("euwest1", ["such as 'eu-west-1'"], id="no-dashes"),
    pytest.param("local", ["such as 'eu-west-1'"], id="word"),
    pytest.param("eu-west-1.", ["such as 'eu-west-1'"], id="trailing-dot"),
    pytest.param("eu-west-1\n", ["did you mean 'eu-west-1'?"], id="newline"),
    pytest.param("eu-wést-1", ["such as 'eu-west-1'"], id="non-ascii"),
    pytest.param("us-east-\u0661", ["such as 'eu-west-1'"], id="non-ascii-digit"),
    pytest.param("aws-global", ["such as 'eu-west-1'"], id="pseudo-region"),
]


@pytest.mark.parametrize(("name", "words"), BAD_REGIONS)
def test_bad_region_names_are_refused(tmp_path: Path, name: str, words: list[str]) -> None:
    with pytest.raises(ValueError, match="is not an AWS region name") as direct:
        check_region(name)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"region": name, "deploy": [entry("p", "a")]}), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{path}: top level: 'region': {name!r} is not an AWS region name")
    for expected in words:
        assert expected in line and expected in str(direct.value)


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_region_is_refused(name: str) -> None:
    (line,) = refusal([entry("p", "a")], region=name)
    assert line == (
        "top level: 'region': must not be empty: "
        "give an AWS region name such as 'eu-west-1' or 'us-gov-west-1'"
    )


def test_a_region_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(SpecError) as info:
        spec_from_data({"region": 1, "deploy": [entry("p", "a")]}, "inline.toml")
    assert info.value.problems == ("top level: 'region' must be a string, got an integer",)


def test_bad_region_exits_2_before_anything_is_sent(aws: AwsEmulator, redis_url: str, tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(
        'region = "us_east_1"\n[[deploy]]\ncluster = "c"\nservice = "s"\ncontainer = "app"\n'
        'image = "r/app"\ntag = "1"\n'
    )
    before = aws.request_counts()

    result = run_cli(str(spec_path), "--dry-run", redis_url=redis_url)

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert f"{spec_path}: top level: 'region': 'us_east_1' is not an AWS region name" in result.stderr
    assert "did you mean 'us-east-1'?" in result.stderr
    assert "Traceback" not in result.stderr and "InvalidRegionError" not in result.stderr
    assert aws.request_counts() == before, "a refused spec must not reach AWS"


# --- 10,000 entries -----------------------------------------------------------------------


def test_ten_thousand_entries_with_duplicated_keys_name_every_problem_right() -> None:
    # Entries 2k+1 and 2k+2 (numbered from 1) name the same container; the second of each pair
    # gives it another image, and every third pair spells the cluster as an ARN in its second.
    entries = []
    for i in range(N):
        pair = i // 2
        cluster = f"c{pair % 7}"
        if i % 2 and pair % 3 == 0:
            cluster = f"{ARN}:cluster/{cluster}"
        entries.append(entry(cluster, f"s{pair}", tag=f"v{i % 2}"))

    problems = refusal(entries)

    expected = []
    for pair in range(N // 2):
        first, second = 2 * pair + 1, 2 * pair + 2
        label = "/".join(entries[second - 1][part] for part in ("cluster", "service", "container"))
        expected.append(
            f"entry {second} ({label}): image '{ECR}/app:v1' conflicts with entry {first}, "
            f"which gives the same container '{ECR}/app:v0'"
        )
    assert problems == expected


def test_ten_thousand_entries_are_planned_and_every_target_names_its_first_entry() -> None:
    # 10,000 entries on 2,500 services: each service has containers a and b, and each container
    # is listed twice with the same image (allowed); the second listing of every 4th service
    # names cluster and service by ARN.
    entries = []
    first_entry: dict[tuple[str, str, str], int] = {}
    for i in range(N):
        service_number, rest = divmod(i, 4)
        cluster, service, container = f"c{service_number % 10}", f"s{service_number}", "ab"[rest % 2]
        first_entry.setdefault((cluster, service, container), i + 1)
        if rest >= 2 and service_number % 4 == 0:
            cluster, service = f"{ARN}:cluster/{cluster}", f"{ARN}:service/{cluster}/{service}"
        entries.append(entry(cluster, service, container))
    spec = spec_with(entries, region="eu-west-1")

    planned = plan_jobs(spec, "run-1")

    assert len(planned) == N // 4
    named = {}
    for job in planned:
        assert [change.container for change in job.job.changes] == ["a", "b"]
        for change in job.job.changes:  # what preflight's refusal calls for each problem
            named[job.target.name, change.container] = spec.entry_name(
                job.target.cluster, job.target.service, change.container
            )
    assert named == {
        (f"{cluster}/{service}", container): f"entry {number} ({cluster}/{service}/{container})"
        for (cluster, service, container), number in first_entry.items()
    }
    # A container named by ARN finds the same entry as by its name.
    assert spec.entry_name(f"{ARN}:cluster/c0", f"{ARN}:service/c0/s0", "b") == "entry 2 (c0/s0/b)"


def test_a_container_named_by_arn_and_by_name_cannot_get_two_images() -> None:
    arn = f"{ARN}:service/prod/api"
    problems = refusal([entry("prod", "api", tag="v1"), entry("prod", arn, tag="v2")])
    assert problems == [
        f"entry 2 (prod/{arn}/app): image '{ECR}/app:v2' conflicts with entry 1, "
        f"which gives the same container '{ECR}/app:v1'"
    ]


def test_an_unknown_container_is_still_named() -> None:
    spec = spec_with([entry("prod", "api")])
    assert spec.entry_name("prod", "api", "app") == "entry 1 (prod/api/app)"
    assert spec.entry_name("prod", "api", "sidecar") == "prod/api/sidecar"


@pytest.mark.parametrize("cluster", ["prod\n", "pr\rod", "prod\u2028", "\x1b[2Jprod"])
def test_a_control_character_in_a_name_stays_on_the_problem_line(cluster: str) -> None:
    problems = refusal([entry(cluster, "api")])
    assert problems == [
        f"entry 1 ({cluster!r}/api/app): 'cluster': {cluster!r} must not contain spaces or control characters"
    ]
    assert all(len(str(SpecError("spec.toml", [line])).splitlines()) == 1 for line in problems)


def test_a_service_named_by_arn_and_by_name_cannot_get_two_timeouts() -> None:
    arn = f"{ARN}:cluster/prod"
    first, second = entry("prod", "api") | {"timeout": "20m"}, entry(arn, "api", "log") | {"timeout": "30m"}
    problems = refusal([first, second])
    assert problems == [
        f"entry 2 ({arn}/api/log): timeout = 1800s conflicts with entry 1 (prod/api/app), "
        "which sets 1200s for the same service prod/api"
    ]
