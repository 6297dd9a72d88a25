"""`done_when` in the spec and the plan, the timeout a worker may extend by the bake time, and what
a run shows when a rollout ends `baking` (done_when = "traffic_shifted")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import SpecError
from orchestrator.plan import plan_jobs
from orchestrator.sandbox import AwsEmulator, RolloutScenario, seed_services
from orchestrator.spec import load_spec, spec_from_data
from tests.cli import run_cli
from tests.test_cli_e2e import REGION
from worker.contract import DoneWhen

RUN = "20261129T015900Z-ab12cd"
ALLOWED = "must be 'baked' or 'traffic_shifted'"


def entry(service: str = "api", container: str = "app", **extra: Any) -> dict[str, Any]:
    return {"cluster": "prod", "service": service, "container": container, "image": "nginx:1.27", **extra}


def problems(tmp_path: Path, toml: str) -> list[str]:
    path = tmp_path / "spec.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    prefix = f"{path}: "
    lines = str(info.value).splitlines()
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def toml_entry(container: str = "app", service: str = "api", extra: str = "") -> str:
    return (
        f'[[deploy]]\ncluster = "prod"\nservice = "{service}"\ncontainer = "{container}"\n'
        f'image = "nginx:1.27"\n{extra}\n'
    )


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        pytest.param(
            'done_when = "shifted"\n' + toml_entry(),
            [f"top level: 'done_when': {ALLOWED}, got 'shifted' (did you mean 'traffic_shifted'?)"],
            id="top-level-word",
        ),
        pytest.param(
            toml_entry(extra='done_when = "Traffic-Shifted"'),
            [
                f"entry 1 (prod/api/app): 'done_when': {ALLOWED}, got 'Traffic-Shifted' "
                "(did you mean 'traffic_shifted'?)"
            ],
            id="entry-spelling",
        ),
        pytest.param(
            toml_entry(extra="done_when = true"),
            [f"entry 1 (prod/api/app): 'done_when': {ALLOWED}, got a boolean"],
            id="entry-type",
        ),
        pytest.param(
            "done_when = 100\n" + toml_entry(),
            [f"top level: 'done_when': {ALLOWED}, got an integer"],
            id="top-level-type",
        ),
        pytest.param(
            toml_entry(extra='done_when = "traffic_shifted"')
            + toml_entry("envoy")
            + toml_entry("otel", extra='done_when = "baked"'),
            [
                "entry 3 (prod/api/otel): done_when = 'baked' conflicts with entry 1 (prod/api/app), "
                "which sets 'traffic_shifted' for the same service prod/api"
            ],
            id="one-service-two-values",
        ),
        pytest.param(
            toml_entry(extra='done_when = "baked"')
            + toml_entry(
                "envoy",
                service="arn:aws:ecs:us-east-1:123456789012:service/prod/api",
                extra='done_when = "traffic_shifted"',
            ),
            [
                "entry 2 (prod/arn:aws:ecs:us-east-1:123456789012:service/prod/api/envoy): done_when = "
                "'traffic_shifted' conflicts with entry 1 (prod/api/app), which sets 'baked' for the "
                "same service prod/api"
            ],
            id="by-name-and-by-arn",
        ),
    ],
)
def test_a_bad_done_when_is_one_line_naming_file_entry_and_the_allowed_values(
    tmp_path: Path, toml: str, expected: list[str]
) -> None:
    assert problems(tmp_path, toml) == expected


def test_done_when_applies_to_the_whole_service_most_specific_first() -> None:
    spec = spec_from_data(
        {
            "done_when": "traffic_shifted",
            "deploy": [
                entry("api", "app"),
                entry("api", "envoy", done_when="baked"),  # the whole of prod/api bakes
                entry("web"),  # the top level's
                entry("db", done_when="traffic_shifted"),
                entry("api", "app", region="eu-west-1", done_when="baked"),  # another service
            ],
        },
        "spec.json",
    )
    planned = plan_jobs(spec, RUN)
    assert [(p.target.service, p.target.region, p.job.options.done_when) for p in planned] == [
        ("api", None, DoneWhen.BAKED),
        ("web", None, DoneWhen.TRAFFIC_SHIFTED),
        ("db", None, DoneWhen.TRAFFIC_SHIFTED),
        ("api", "eu-west-1", DoneWhen.BAKED),
    ]


def test_without_done_when_a_rollout_is_done_once_baked() -> None:
    [planned] = plan_jobs(spec_from_data({"deploy": [entry()]}, "spec.json"), RUN)
    assert planned.job.options.done_when is DoneWhen.BAKED


@pytest.mark.parametrize(
    ("top", "override", "argument", "timeout_s", "extended"),
    [
        pytest.param({}, None, None, 900.0, True, id="nobody-gave-one"),
        pytest.param({"timeout": "15m"}, None, None, 900.0, False, id="top-level-even-the-default"),
        pytest.param({}, "20m", None, 1200.0, False, id="entry"),
        pytest.param({}, None, 30.0, 30.0, False, id="command-line"),
        pytest.param({"timeout": "10m"}, "20m", 30.0, 30.0, False, id="all-three"),
    ],
)
def test_only_a_timeout_nobody_gave_extends_by_the_bake_time(
    top: dict[str, Any], override: str | None, argument: float | None, timeout_s: float, extended: bool
) -> None:
    extra = {} if override is None else {"timeout": override}
    spec = spec_from_data({**top, "deploy": [entry(**extra), entry("web")]}, "spec.json")
    api, web = plan_jobs(spec, RUN, timeout_s=argument)
    assert (api.job.options.timeout_s, api.job.options.extend_for_bake) == (timeout_s, extended)
    # An entry's timeout is its service's: the other service still has nobody's timeout.
    web_given = argument is not None or "timeout" in top
    assert web.job.options.extend_for_bake is not web_given


def test_traffic_shifted_ends_baking_a_success_the_summary_qualifies(
    aws: AwsEmulator, redis_url: str, tmp_path: Path
) -> None:
    """Two blue/green services held by a lifecycle hook: prod/api with done_when = "traffic_shifted"
    ends `baking` as soon as production traffic is on its new revision, prod/web (the default,
    "baked") `succeeded` after its bake. Exit 0, and --all-or-nothing puts nothing back."""
    hook = "arn:aws:lambda:us-east-1:123456789012:function:payments-smoke-test"
    blue_green = {
        "strategy": "BLUE_GREEN",
        "bakeTimeInMinutes": 5,
        "lifecycleHooks": [
            {
                "hookTargetArn": hook,
                "roleArn": "arn:aws:iam::123456789012:role/ecs-hooks",
                "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
            }
        ],
    }
    aws.set_scenario(RolloutScenario(rollout_s=0.6, minute_s=0.4, stage_s=0.2, hook_hold_s=1.5))
    seed_services(
        aws.endpoint_url,
        REGION,
        [("prod", name, {"app": f"registry.example.com/{name}:1"}) for name in ("api", "web")],
        deployments={("prod", "api"): blue_green, ("prod", "web"): blue_green},
    )
    spec_path = tmp_path / "blue-green.toml"
    spec_path.write_text(
        'poll_interval = "200ms"\nheartbeat = "10s"\n'
        + "".join(
            f'[[deploy]]\ncluster = "prod"\nservice = "{name}"\ncontainer = "app"\n'
            f'image = "registry.example.com/{name}:2"\n{extra}\n'
            for name, extra in (("api", 'done_when = "traffic_shifted"'), ("web", ""))
        )
    )

    result = run_cli(str(spec_path), "--plain", "--all-or-nothing", redis_url=redis_url)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    held = [
        line for line in lines if " prod/api " in line and "waiting for hook payments-smoke-test for" in line
    ]
    assert held, result.stdout  # a deployment held by its hook says so, not silent
    ends = {line.split()[1]: line.split()[2] for line in lines if re.match(r"\d\d:\d\d:\d\d prod/", line)}
    assert ends == {"prod/api": "baking", "prod/web": "succeeded"}
    run_id = lines[0].split()[1].rstrip(":")
    assert lines[-2] == f"run {run_id}: 1 baking, 1 succeeded"
    assert lines[-1] == (
        "1 service is still baking: traffic is on the new revision, ECS may yet roll back "
        f"(`ecs-fanout status {run_id}` asks ECS)"
    )
    assert [row.split()[:2] for row in lines[-5:-2]] == [
        ["TARGET", "STATUS"],
        ["prod/api/app", "baking"],
        ["prod/web/app", "succeeded"],
    ]
    assert "--all-or-nothing" not in result.stderr  # a success: nothing is put back
    assert aws.request_counts().get("UpdateService") == 2
