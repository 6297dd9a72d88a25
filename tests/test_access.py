"""Regions and ways into accounts: spec validation, the wire model, the plan's targets, identity
lines and the refresh windows. Pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.errors import SpecError
from orchestrator.identity import accesses_of, refusal_line
from orchestrator.plan import plan_jobs
from orchestrator.preflight import ecr_locations
from orchestrator.spec import Spec, load_spec, spec_from_data
from orchestrator.spec_access import conflicting_access
from worker.access import CALLER, Access, role_account, session_name
from worker.contract import DeployJob
from worker.credentials import refresh_windows

ROLE_A = "arn:aws:iam::111111111111:role/deployer"
ROLE_A2 = "arn:aws:iam::111111111111:role/ops/other"
ROLE_B = "arn:aws-cn:iam::222222222222:role/deployer"
RUN = "20261129T120000Z-abcdef"


def entry(**fields: str) -> dict[str, str]:
    return {
        "cluster": "prod",
        "service": "api",
        "container": "app",
        "image": "r.example.com/api",
        "tag": "2",
    } | fields


def spec_of(*entries: dict[str, str], **top: str) -> Spec:
    return spec_from_data({**top, "deploy": list(entries)}, "spec.toml")


def problems(tmp_path: Path, data: dict[str, object]) -> list[str]:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return lines


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        pytest.param(
            {"deploy": [entry(role_arn="arn:aws:iam::1111:role/x")]},
            ["entry 1 (prod/api/app)", "'role_arn'", "is not an IAM role ARN"],
            id="short-account",
        ),
        pytest.param(
            {"deploy": [entry(role_arn="arn:aws:iam::111111111111:user/bob")]},
            ["entry 1 (prod/api/app)", "not an IAM role ARN"],
            id="user-not-role",
        ),
        pytest.param(
            {"role_arn": "arn:aws:sts::111111111111:role/x", "deploy": [entry()]},
            ["top level", "not an IAM role ARN"],
            id="top-level-sts",
        ),
        pytest.param(
            {"deploy": [entry(role_arn=ROLE_A, profile="ops")]},
            ["entry 1 (prod/api/app)", "a role given two ways", "'role_arn' and 'profile'"],
            id="role-two-ways",
        ),
        pytest.param(
            {"role_arn": ROLE_A, "profile": "ops", "deploy": [entry()]},
            ["top level", "a role given two ways"],
            id="top-two-ways",
        ),
        pytest.param(
            {"deploy": [entry(external_id="xyz")]},
            ["entry 1 (prod/api/app)", "'external_id' without 'role_arn'"],
            id="external-id-alone",
        ),
        pytest.param(
            {"deploy": [entry(role_arn=ROLE_A), entry(container="side", role_arn=ROLE_A2)]},
            ["entry 2 (prod/api/side)", f"role {ROLE_A2}", "entry 1 (prod/api/app)", "same account"],
            id="two-roles-one-account",
        ),
        pytest.param(
            {
                "deploy": [
                    entry(role_arn=ROLE_A),
                    entry(container="side", role_arn=ROLE_A, external_id="other"),
                ]
            },
            ["entry 2 (prod/api/side)", "one way in"],
            id="external-ids-disagree",
        ),
        pytest.param(
            {"deploy": [entry(region="eu-west-1a")]},
            ["entry 1 (prod/api/app)", "'region'", "availability zone"],
            id="bad-entry-region",
        ),
        pytest.param(
            {"deploy": [entry(profile="")]},
            ["entry 1 (prod/api/app)", "'profile' must not be empty"],
            id="empty-profile",
        ),
    ],
)
def test_bad_access_is_one_line_naming_file_and_entry(
    tmp_path: Path, data: dict[str, object], fragments: list[str]
) -> None:
    lines = problems(tmp_path, data)
    assert any(all(fragment in line for fragment in fragments) for line in lines), lines


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([entry(role_arn=ROLE_A), entry(role_arn=ROLE_B)], id="two-accounts"),
        pytest.param(
            [entry(role_arn=ROLE_A, region="us-east-1"), entry(role_arn=ROLE_A2, region="eu-west-1")],
            id="two-regions",
        ),
        pytest.param([entry(role_arn=ROLE_A), entry(container="side")], id="role-and-caller"),  # STS decides
        pytest.param(
            [entry(role_arn=ROLE_A, tag="2"), entry(role_arn=ROLE_B, tag="3")], id="other-images-elsewhere"
        ),
    ],
)
def test_the_same_names_elsewhere_are_no_conflict(entries: list[dict[str, str]]) -> None:
    assert len(spec_of(*entries).deploy) == 2


def test_an_entry_overrides_the_top_level_way_in_and_region() -> None:
    spec = spec_of(
        entry(),
        entry(service="web", role_arn=ROLE_B, region="eu-west-1"),
        entry(service="db", profile="ops"),
        role_arn=ROLE_A,
        external_id="ext-1",
        region="us-east-1",
    )
    jobs = plan_jobs(spec, RUN)
    assert [j.job.access for j in jobs] == [
        Access(role_arn=ROLE_A, external_id="ext-1"),
        Access(role_arn=ROLE_B),  # the top level's external id goes with the top level's role only
        Access(profile="ops"),
    ]
    assert [(j.target.account, j.target.region) for j in jobs] == [
        ("111111111111", "us-east-1"),
        ("222222222222", "eu-west-1"),
        (None, "us-east-1"),  # a profile's account only STS knows
    ]


def test_the_same_service_in_two_accounts_is_two_targets_everywhere() -> None:
    spec = spec_of(entry(role_arn=ROLE_A), entry(role_arn=ROLE_B), entry(), region="eu-west-1")
    jobs = plan_jobs(
        spec,
        RUN,
        accounts={
            Access(role_arn=ROLE_A): "111111111111",
            Access(role_arn=ROLE_B): "222222222222",
            CALLER: "123456789012",
        },
    )
    assert [j.target.account for j in jobs] == ["111111111111", "222222222222", "123456789012"]
    assert len({j.job.job_id for j in jobs}) == 3
    assert len({j.target.key for j in jobs}) == 3


def test_cli_region_wins_then_entry_then_top_then_environment() -> None:
    spec = spec_of(entry(region="eu-west-1"), entry(service="web"), region="us-west-2")
    assert [j.target.region for j in plan_jobs(spec, RUN, default_region="ap-south-1")] == [
        "eu-west-1",
        "us-west-2",
    ]
    assert [j.target.region for j in plan_jobs(spec, RUN, region="sa-east-1")] == ["sa-east-1", "sa-east-1"]
    bare = spec_of(entry())
    assert plan_jobs(bare, RUN, default_region="ap-south-1")[0].target.region == "ap-south-1"


def test_a_profile_and_a_role_into_one_account_conflict_once_sts_told() -> None:
    spec = spec_of(entry(role_arn=ROLE_A), entry(container="side", profile="ops"))
    accounts = {Access(role_arn=ROLE_A): "111111111111", Access(profile="ops"): "111111111111"}
    lines = conflicting_access(enumerate(spec.deploy, 1), spec, spec.region, accounts)
    assert len(lines) == 1 and "entry 2 (prod/api/side)" in lines[0] and "profile 'ops'" in lines[0]
    elsewhere = accounts | {Access(profile="ops"): "999999999999"}
    assert conflicting_access(enumerate(spec.deploy, 1), spec, spec.region, elsewhere) == []


def test_each_distinct_way_in_is_asked_once_in_its_first_region() -> None:
    spec = spec_of(
        entry(role_arn=ROLE_A, region="eu-west-1"),
        entry(service="web", role_arn=ROLE_A, region="us-east-1"),
        entry(service="db"),
    )
    assert accesses_of(spec, default_region="us-west-2") == {
        Access(role_arn=ROLE_A): "eu-west-1",
        CALLER: "us-west-2",
    }


@pytest.mark.parametrize(
    ("access", "line"),
    [
        (Access(role_arn=ROLE_A), f"role {ROLE_A} cannot be assumed: AccessDenied: no"),
        (Access(profile="ops"), "profile 'ops' does not resolve: AccessDenied: no"),
        (CALLER, "the caller's credentials do not work: AccessDenied: no"),
    ],
)
def test_refusal_lines_name_the_way_in(access: Access, line: str) -> None:
    assert refusal_line(access, "AccessDenied: no") == line


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role_arn": ROLE_A, "profile": "x"}, "not both"),
        ({"external_id": "abc"}, "needs 'role_arn'"),
        ({"role_arn": "arn:aws:iam::1:role/x"}, "not an IAM role ARN"),
        ({"role_arn": ROLE_A, "secret": "x"}, "Extra inputs"),  # credentials never travel
    ],
)
def test_access_on_the_wire_is_strict(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Access.model_validate(fields)


def test_a_job_defaults_to_the_callers_access_and_round_trips_its_role() -> None:
    job = plan_jobs(spec_of(entry(role_arn=ROLE_A, external_id="e-1")), RUN)[0].job
    assert DeployJob.model_validate_json(job.model_dump_json()).access == Access(
        role_arn=ROLE_A, external_id="e-1"
    )
    assert "SecretAccessKey" not in job.model_dump_json()
    bare = DeployJob.model_validate(
        {"run_id": "r", "job_id": "r:1", "target": {"cluster": "c", "service": "s"}, "revision": "x:1"}
    )
    assert bare.access == CALLER


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        (RUN, f"ecs-fanout-{RUN}"),
        ("run id/with:odd#chars", "ecs-fanout-run-id-with-odd-chars"),
        ("x" * 80, ("ecs-fanout-" + "x" * 80)[:64]),
    ],
)
def test_session_names_name_the_tool_and_run_in_stss_characters(run_id: str, expected: str) -> None:
    assert session_name(run_id) == expected and len(session_name(run_id)) <= 64


@pytest.mark.parametrize(
    ("arn", "account"),
    [
        (ROLE_A, "111111111111"),
        (ROLE_B, "222222222222"),
        ("arn:aws-us-gov:iam::333333333333:role/a/b/c", "333333333333"),
    ],
)
def test_a_roles_account_is_in_its_arn(arn: str, account: str) -> None:
    assert role_account(arn) == account == Access(role_arn=arn).account


@pytest.mark.parametrize(
    ("lifetime_s", "windows"),
    [(3600.0, (900.0, 600.0)), (43200.0, (900.0, 600.0)), (900.0, (225.0, 150.0)), (6.0, (1.5, 1.0))],
)
def test_refresh_windows_are_botocores_or_a_share_of_a_short_lifetime(
    lifetime_s: float, windows: tuple[float, float]
) -> None:
    assert refresh_windows(lifetime_s) == windows


def test_ecr_images_are_checked_through_their_registrys_account() -> None:
    registry_a = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/api"
    registry_c = "333333333333.dkr.ecr.us-east-1.amazonaws.com/web"
    spec = spec_of(
        entry(role_arn=ROLE_A),
        entry(service="web", role_arn=ROLE_B, image=registry_a),
        entry(service="db", role_arn=ROLE_B, image=registry_c),
    )
    found = ecr_locations(plan_jobs(spec, RUN))
    assert found[f"{registry_a}:2"][1:] == ("111111111111", "eu-west-1", Access(role_arn=ROLE_A))
    assert found[f"{registry_c}:2"][1:] == ("333333333333", "us-east-1", Access(role_arn=ROLE_B))


def test_iam_policy_with_a_spec_allows_assuming_exactly_its_roles(tmp_path: Path) -> None:
    from tests.cli import run_cli

    path = tmp_path / "spec.json"
    entries = [
        entry(role_arn=ROLE_A, external_id="ext-1"),
        entry(service="web", role_arn=ROLE_B),
        entry(service="db"),
    ]
    path.write_text(json.dumps({"region": "eu-west-1", "deploy": entries}))
    worker = "arn:aws:iam::999999999999:role/ecs-fanout-worker"
    result = run_cli(
        "iam-policy",
        "--spec",
        str(path),
        "--account",
        "999999999999",
        "--worker-role-arn",
        worker,
        redis_url="",
        env={"ECS_FANOUT_LAMBDA_EVENTS_ROLE": "ecs-fanout-events"},
    )
    assert result.returncode == 0, result.stderr
    policies = json.loads(result.stdout)
    for name in ("caller", "worker"):
        assumes = [s for s in policies[name]["Statement"] if s["Action"] == "sts:AssumeRole"]
        assert [s["Resource"] for s in assumes] == [[ROLE_A, ROLE_B]], name
    roles = policies["target_roles"]
    assert list(roles) == [ROLE_A, ROLE_B]
    # Forwarding ECS's events of other regions: the caller and each role hand the events role on.
    passed = [s["Resource"] for s in policies["caller"]["Statement"] if s["Action"] == "iam:PassRole"]
    assert "arn:aws:iam::999999999999:role/ecs-fanout-events" in passed
    events_trust = policies["events_role"]["trust"]["Statement"][0]
    assert events_trust["Principal"] == {"Service": "events.amazonaws.com"}
    [forward] = policies["events_role"]["permissions"]["Statement"]
    assert forward["Action"] == "events:PutEvents" and forward["Resource"].endswith(":event-bus/default")
    assert any(
        s["Resource"] == "arn:aws-cn:iam::222222222222:role/ecs-fanout-events"
        for s in roles[ROLE_B]["permissions"]["Statement"]
    )
    trust = roles[ROLE_A]["trust"]["Statement"][0]
    assert trust["Principal"]["AWS"] == [worker, "arn:aws:iam::999999999999:root"]
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": ["ext-1"]}}
    assert "Condition" not in roles[ROLE_B]["trust"]["Statement"][0]
    assert {"ecs:UpdateService", "ecs:RegisterTaskDefinition", "ecs:DescribeClusters"} <= {
        action
        for s in roles[ROLE_B]["permissions"]["Statement"]
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert all(
        "222222222222" in s["Resource"]
        for s in roles[ROLE_B]["permissions"]["Statement"]
        if s["Sid"] == "DeployServices"
    )
