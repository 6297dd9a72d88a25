"""A region that is not one is refused before anything runs, wherever it comes from: the spec
(tests/test_spec_scale.py), `--region`, `AWS_REGION` or `ECS_FANOUT_REGION`: exit 2, one line
naming where it came from and the likely fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.exits import ExitCode
from tests.cli import run_cli
from tests.test_boundary import OWN_SETTINGS, one_line

SPEC = '[[deploy]]\ncluster = "c0"\nservice = "s0"\ncontainer = "app"\nimage = "r/app"\ntag = "2"\n'
COMMANDS = [
    pytest.param(["SPEC", "--plain"], id="deploy"),
    pytest.param(["SPEC", "--dry-run"], id="dry-run"),
    pytest.param(["plan", "SPEC"], id="plan"),
    pytest.param(["status", "20261129T000000Z-abcdef"], id="status"),
    pytest.param(["rollback", "20261129T000000Z-abcdef"], id="rollback"),
]


def argv(args: list[str], tmp_path: Path) -> list[str]:
    spec = tmp_path / "one.toml"
    spec.write_text(SPEC)
    return [str(spec) if arg == "SPEC" else arg for arg in args]


@pytest.mark.parametrize("args", COMMANDS)
def test_a_bad_region_flag_is_one_line(redis_url: str, tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*argv(args, tmp_path), "--region", "us_east_1", redis_url=redis_url, drop=OWN_SETTINGS)
    one_line(result, ExitCode.CONFIG, "--region: 'us_east_1' is not an AWS region name", "'us-east-1'")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("variable", "value", "hint"),
    [
        ("AWS_REGION", "us_east_1", "did you mean 'us-east-1'?"),
        ("AWS_DEFAULT_REGION", "US-EAST-1", "did you mean 'us-east-1'?"),
        ("ECS_FANOUT_REGION", "eu-west-1a", "its region is 'eu-west-1'"),
    ],
)
@pytest.mark.parametrize("args", COMMANDS)
def test_a_bad_region_in_the_environment_is_one_line(
    redis_url: str, tmp_path: Path, args: list[str], variable: str, value: str, hint: str
) -> None:
    result = run_cli(*argv(args, tmp_path), redis_url=redis_url, env={variable: value}, drop=OWN_SETTINGS)
    one_line(result, ExitCode.CONFIG, f"{variable}: {value!r} is not an AWS region name", hint)
