"""`done_when` in the spec and the plan, and the timeout a worker may extend by the bake time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import SpecError
from orchestrator.plan import plan_jobs
from orchestrator.spec import load_spec, spec_from_data
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
