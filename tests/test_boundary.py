"""What a user sees when something outside ecs-fanout is wrong: one line, the documented exit code.

Each failure a new user met (no AWS account, no region, no Redis, a bad variable, a closed
pipe, an AWS endpoint that does not answer) is driven through the CLI as a subprocess: stderr
says what is wrong and what to do in one line, never with a traceback, and the exit code is
the one `--help` and the README document. A bug, on the other hand, keeps its traceback.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, NoRegionError

from orchestrator.boundary import explain
from orchestrator.cli import build_parser
from orchestrator.errors import SpecError
from orchestrator.exits import ExitCode
from orchestrator.sandbox import AwsEmulator, RolloutScenario
from tests.cli import ROOT, run_cli, spawn_cli
from tests.fleet import Fleets

OWN_SETTINGS = ("AWS_", "ECS_FANOUT_", "REDIS_URL")  # a developer's own setup must not leak in
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}
HOW_TO_GIVE_CREDENTIALS = ("AWS_PROFILE", "--profile", "AWS_ACCESS_KEY_ID", "aws sso login")


def one_line(result: subprocess.CompletedProcess[str], code: ExitCode, *words: str) -> str:
    """The one line on stderr, once the exit code, the absence of a traceback and `words` are checked."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def no_aws_account(tmp_path: Path) -> dict[str, str]:
    """An environment in which the credential chain finds nothing (and does not wait for EC2's)."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("")
    credentials.write_text("")
    return {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    """One service, no region: the region comes from --region or the environment."""
    path = tmp_path / "one.toml"
    path.write_text(
        '[[deploy]]\ncluster = "c0"\nservice = "s0"\ncontainer = "app"\nimage = "r/app"\ntag = "2"\n'
    )
    return path


COMMANDS = [
    pytest.param(["--dry-run"], id="dry-run"),
    pytest.param(["plan"], id="plan"),
    pytest.param(["--plain"], id="deploy"),
]


def command(args: list[str], spec: Path) -> list[str]:
    return ["plan", str(spec), *args[1:]] if args[0] == "plan" else [str(spec), *args]


@pytest.mark.parametrize(
    "args", [*COMMANDS, pytest.param(["--plain", "--skip-preflight"], id="no-preflight")]
)
def test_no_credentials_says_how_to_give_them(
    redis_url: str, spec_path: Path, no_aws_account: dict[str, str], args: list[str]
) -> None:
    result = run_cli(
        *command(args, spec_path),
        redis_url=redis_url,
        env=no_aws_account | {"AWS_REGION": "us-east-1"},
        drop=OWN_SETTINGS,
    )
    line = one_line(result, ExitCode.CONFIG, "no AWS credentials", *HOW_TO_GIVE_CREDENTIALS)
    assert "--skip-preflight" not in line  # skipping the checks gives no credentials
    assert result.stdout == ""


@pytest.mark.parametrize("args", COMMANDS)
def test_no_region_says_where_to_give_one(
    redis_url: str, spec_path: Path, no_aws_account: dict[str, str], args: list[str]
) -> None:
    result = run_cli(
        *command(args, spec_path), redis_url=redis_url, env=no_aws_account | FAKE_KEYS, drop=OWN_SETTINGS
    )
    one_line(result, ExitCode.CONFIG, "no AWS region", "--region", "AWS_REGION")


@pytest.mark.parametrize("args", COMMANDS)
def test_an_endpoint_nobody_listens_on_fails_within_seconds(
    redis_url: str, spec_path: Path, args: list[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_cli(
        *command(args, spec_path),
        redis_url=redis_url,
        env=FAKE_KEYS | {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint},
        drop=OWN_SETTINGS,
    )
    elapsed = time.monotonic() - started
    one_line(result, ExitCode.CONFIG, f"cannot reach AWS at {endpoint}", "AWS_ENDPOINT_URL")
    assert elapsed < 10, f"{elapsed:.1f}s before the error"


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port whose accept queue is full: the kernel drops new SYNs, so a connect never completes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for sock in [*fillers, server]:
            sock.close()


def test_an_endpoint_that_does_not_answer_is_retried_aloud_and_briefly(
    redis_url: str, spec_path: Path, silent_endpoint: str
) -> None:
    started = time.monotonic()
    result = run_cli(
        str(spec_path),
        "--dry-run",
        redis_url=redis_url,
        env=FAKE_KEYS | {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": silent_endpoint},
        drop=OWN_SETTINGS,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == ExitCode.CONFIG and "Traceback" not in result.stderr, result.stderr
    retrying, error = result.stderr.strip().splitlines()
    assert f"no answer from {silent_endpoint}" in retrying and "retrying" in retrying
    assert f"cannot reach AWS at {silent_endpoint}" in error
    assert elapsed < 15, f"{elapsed:.1f}s before the error"  # botocore's defaults: minutes


def test_rollback_of_a_sandbox_run_uses_the_runs_region(
    redis_url: str, spec_path: Path, no_aws_account: dict[str, str]
) -> None:
    deployed = run_cli(
        str(spec_path), "--sandbox", "--json", redis_url=redis_url, drop=OWN_SETTINGS, timeout=180
    )
    # Its plan is saved before any job starts: how the rollout ends does not matter here.
    assert deployed.returncode in (ExitCode.OK, ExitCode.FAILED), deployed.stderr
    run_id = json.loads(deployed.stdout.splitlines()[0])["run_id"]

    # No region anywhere in the environment: the run's plan says us-east-1. No credentials
    # either (the sandbox is gone; this is a real account now): that is what is said.
    result = run_cli(
        "rollback", run_id, "--plain", redis_url=redis_url, env=no_aws_account, drop=OWN_SETTINGS
    )

    one_line(result, ExitCode.CONFIG, "no AWS credentials", *HOW_TO_GIVE_CREDENTIALS)
    assert "region" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["attach", "20261129T000000Z-abcdef", "--plain"], id="attach"),
        pytest.param(["rollback", "20261129T000000Z-abcdef", "--plain"], id="rollback"),
    ],
)
def test_unreachable_redis_is_one_line(args: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli(*args, redis_url=url, drop=OWN_SETTINGS)
    one_line(result, ExitCode.CONFIG, f"cannot reach Redis at {url}", "REDIS_URL")


def test_unreachable_redis_stops_a_deploy_before_it_starts(aws: AwsEmulator, fleet: Fleets) -> None:
    spec = fleet(1)
    before = aws.request_counts()
    result = run_cli(str(spec.path), "--plain", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    one_line(result, ExitCode.CONFIG, "cannot reach Redis at redis://127.0.0.1:", "REDIS_URL")
    assert aws.request_counts().get("UpdateService") == before.get("UpdateService")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["attach", "20261129T000000Z-abcdef"], id="attach"),
        pytest.param(["rollback", "20261129T000000Z-abcdef"], id="rollback"),
        pytest.param(["SPEC", "--dry-run"], id="dry-run"),
        pytest.param(["plan", "SPEC"], id="plan"),
    ],
)
def test_a_redis_url_that_is_no_url_names_the_variable(spec_path: Path, args: list[str]) -> None:
    argv = [str(spec_path) if arg == "SPEC" else arg for arg in args]
    result = run_cli(*argv, redis_url="notaurl", drop=OWN_SETTINGS)
    one_line(result, ExitCode.CONFIG, "REDIS_URL", "redis://")


def test_an_empty_redis_url_counts_as_unset(redis_url: str, spec_path: Path) -> None:
    result = run_cli(str(spec_path), "--sandbox", "--json", redis_url="", drop=OWN_SETTINGS, timeout=180)
    assert result.returncode == ExitCode.OK, result.stderr
    assert "REDIS_URL" not in result.stderr.replace("REDIS_URL=redis://", "")  # only the private one's
    assert json.loads(result.stdout.splitlines()[-1])["results"][0]["status"] == "succeeded"


def test_lambda_settings_are_read_only_for_the_lambda_executor(
    aws: AwsEmulator, redis_url: str, fleet: Fleets
) -> None:
    spec = fleet(1)
    not_json = {"ECS_FANOUT_LAMBDA_SUBNET_IDS": "subnet-1"}

    local = run_cli(str(spec.path), "--json", redis_url=redis_url, env=not_json)
    assert local.returncode == ExitCode.OK, local.stderr

    for args in ([str(spec.path), "--executor", "lambda", "--json"], ["iam-policy"]):
        result = run_cli(*args, redis_url=redis_url, env=not_json)
        one_line(result, ExitCode.CONFIG, "ECS_FANOUT_LAMBDA_SUBNET_IDS", "JSON")


def test_diff_without_dry_run_is_refused_and_changes_nothing(
    aws: AwsEmulator, redis_url: str, fleet: Fleets
) -> None:
    spec = fleet(1)
    before = aws.request_counts()
    result = run_cli(str(spec.path), "--diff", redis_url=redis_url)
    one_line(result, ExitCode.CONFIG, "--diff", "--dry-run", "plan")
    assert aws.request_counts() == before, "a refused run must not reach AWS"


def test_a_closed_stdout_ends_a_run_quietly(aws: AwsEmulator, redis_url: str, fleet: Fleets) -> None:
    """`ecs-fanout SPEC --plain | head -3`: the run stops when head does, saying so on stderr."""
    aws.set_scenario(RolloutScenario(rollout_s=30.0))
    spec = fleet(2)
    process = spawn_cli(str(spec.path), "--plain", redis_url=redis_url)
    assert process.stdout is not None and process.stderr is not None
    head = [process.stdout.readline() for _ in range(3)]
    process.stdout.close()
    process.wait(timeout=60)
    stderr = process.stderr.read()

    assert head[0].startswith("run ")
    assert process.returncode == ExitCode.FAILED, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr and "BrokenPipe" not in stderr
    assert "stdout was closed" in stderr


def test_a_closed_stdout_before_the_first_line_is_quiet() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "iam-policy"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| true`: nobody reads
    process.wait(timeout=30)
    assert process.stderr.read() == ""
    assert process.returncode == ExitCode.FAILED


def test_a_bug_keeps_its_traceback() -> None:
    """Expected failures are one line; anything else is a bug, and a bug must be visible."""
    code = (
        "from botocore.exceptions import NoRegionError\n"
        "from orchestrator.boundary import run_command\n"
        "def command():\n"
        "    raise ExceptionGroup('tasks', [NoRegionError(), ZeroDivisionError('a bug')])\n"
        "raise SystemExit(run_command(command))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError: a bug" in result.stderr


def test_groups_of_expected_failures_are_unwrapped() -> None:
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [NoRegionError()]), NoRegionError()])
    failure = explain(nested)
    assert failure is not None and failure.code == ExitCode.CONFIG
    assert failure.message.startswith("ecs-fanout: no AWS region")
    assert explain(ExceptionGroup("g", [SpecError("s.toml", ["bad"]), BrokenPipeError()])) is not None
    assert explain(ExceptionGroup("g", [NoRegionError(), KeyError("bug")])) is None


def test_aws_refusals_say_what_to_do_and_others_are_said_as_aws_said_them() -> None:
    def refused(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "no"}}, "DescribeServices")

    expired = explain(refused("ExpiredTokenException"))
    denied = explain(refused("AccessDeniedException"))
    other = explain(ExceptionGroup("tasks", [refused("ServiceUnavailableException")]))
    assert expired is not None and "aws sso login" in expired.message and expired.code == ExitCode.CONFIG
    assert denied is not None and "ecs-fanout iam-policy" in denied.message and denied.code == ExitCode.CONFIG
    assert other is not None and other.code == ExitCode.FAILED
    assert other.message == "ecs-fanout: AWS refused DescribeServices: ServiceUnavailableException: no"


def test_the_readme_and_help_list_the_same_exit_codes() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", readme, re.M))
    epilog = build_parser().epilog or ""
    helped = dict(re.findall(r"^\s+(\d+)\s+(.+)$", epilog, re.M))
    assert documented == helped
    assert sorted(int(code) for code in helped) == sorted(code.value for code in ExitCode)
