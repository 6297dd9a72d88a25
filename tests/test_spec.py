"""The spec file: loading, validation and the plain-words problem list of SpecError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import ConfigError, FanoutError, SpecError
from orchestrator.spec import DeployEntry, Spec, load_spec, spec_from_data

REPO = Path(__file__).resolve().parent.parent
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def entry_toml(
    cluster: str = "prod", service: str = "api", container: str = "app", **fields: str | bool
) -> str:
    """One [[deploy]] table; the image defaults to an ECR repository without a tag."""
    values: dict[str, str | bool] = {"cluster": cluster, "service": service, "container": container}
    values["image"] = f"{ECR}/api"
    values.update(fields)
    lines = ["[[deploy]]"]
    for key, value in values.items():
        rendered = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n\n"


GOOD = entry_toml(tag="v1.4.2")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value


# Each case: file name, content, and the fragments one line of the error must hold.
BAD_SPECS: list[Any] = [
    pytest.param(
        "spec.toml",
        'regoin = "eu-west-1"\n' + GOOD,
        ["top level", "unknown key 'regoin'", "'region'"],
        id="top-key",
    ),
    pytest.param(
        "spec.toml",
        'cluster = "prod"\n' + GOOD,
        ["top level", "unknown key 'cluster'", "[[deploy]]"],
        id="entry-key-at-top",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(tga="v1"),
        ["entry 1 (prod/api/app)", "unknown key 'tga'", "did you mean 'tag'"],
        id="entry-key",
    ),
    pytest.param(
        "spec.toml",
        GOOD + entry_toml(service="web", container="x").replace('container = "x"\n', ""),
        ["entry 2 (prod/web/?)", "missing field 'container'"],
        id="missing-field",
    ),
    pytest.param(
        "spec.toml", entry_toml(), ["entry 1 (prod/api/app)", "missing field 'tag'"], id="missing-tag"
    ),
    pytest.param(
        "spec.toml",
        entry_toml(image="My-Registry/API", tag="v1"),
        ["entry 1 (prod/api/app)", "invalid image reference 'My-Registry/API'", "lowercase"],
        id="bad-image",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(tag="v 1"),
        ["entry 1 (prod/api/app)", "invalid image reference", "tag 'v 1'"],
        id="bad-tag",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(digest="sha256:abc"),
        ["entry 1 (prod/api/app)", "invalid image reference", "64 hex"],
        id="bad-digest",
    ),
    pytest.param("spec.toml", 'region = "eu-west-1"\n', ["no [[deploy]] entries"], id="empty"),
    pytest.param("spec.toml", "deploy = []\n", ["no [[deploy]] entries"], id="empty-array"),
    pytest.param(
        "spec.toml",
        GOOD.replace("[[deploy]]", "[deploy]"),
        ["'deploy'", "not [deploy]"],
        id="table-not-array",
    ),
    pytest.param(
        "spec.toml",
        GOOD + entry_toml(service="web", tag="v1") + entry_toml(tag="v1.5.0"),
        ["entry 3 (prod/api/app)", "entry 1", "conflicts", "v1.5.0", "v1.4.2"],
        id="duplicate-other-image",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(image=f"{ECR}/api:v1", tag="v2"),
        ["entry 1 (prod/api/app)", "'tag' conflicts", "already carries tag 'v1'"],
        id="tag-in-image-and-tag",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(image=f"{ECR}/api@{DIGEST}", digest=DIGEST),
        ["entry 1 (prod/api/app)", "'digest' conflicts", "already carries digest"],
        id="digest-in-image-and-digest",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(image=f"{ECR}/api:v1", digest=DIGEST),
        ["entry 1 (prod/api/app)", "'digest' conflicts", "already carries tag 'v1'"],
        id="tag-in-image-and-digest",
    ),
    pytest.param(
        "spec.toml",
        'timeout = "soon"\n' + GOOD,
        ["top level", "'timeout'", "invalid duration 'soon'", "'15m'"],
        id="bad-duration",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(tag="v1", timeout="-5m"),
        ["entry 1 (prod/api/app)", "'timeout'", "invalid duration '-5m'"],
        id="negative-entry-duration",
    ),
    pytest.param(
        "spec.toml",
        'heartbeat = "10s"\npoll_interval = "30s"\n' + GOOD,
        ["top level", "poll_interval (30s)", "heartbeat (10s)"],
        id="poll-vs-heartbeat",
    ),
    pytest.param(
        "spec.toml",
        'follow = "polling"\n' + GOOD,
        ["top level", "'follow'", "'events' or 'poll'", "did you mean 'poll'"],
        id="unknown-follow",
    ),
    pytest.param(
        "spec.toml",
        "max_parallel = 0\n" + GOOD,
        ["top level", "'max_parallel' must be greater than 0"],
        id="zero",
    ),
    pytest.param(
        "spec.toml",
        'max_parallel = "lots"\n' + GOOD,
        ["top level", "'max_parallel' must be a whole number, got a string"],
        id="wrong-type",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(tag="v1", rollback="no"),
        ["entry 1 (prod/api/app)", "'rollback' must be true or false"],
        id="string-bool",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(container="app one", tag="v1"),
        ["entry 1 (prod/api/app one)", "'container'", "spaces"],
        id="space-in-name",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(tag="v1", timeout="5m") + entry_toml(container="worker", tag="v1", timeout="10m"),
        ["entry 2 (prod/api/worker)", "timeout = 600s", "entry 1 (prod/api/app)", "300s", "prod/api"],
        id="conflicting-overrides",
    ),
    pytest.param(
        "spec.toml",
        entry_toml(tag="v1", rollback=True) + entry_toml(container="worker", tag="v1", rollback=False),
        ["entry 2 (prod/api/worker)", "rollback = false", "entry 1 (prod/api/app)", "true"],
        id="conflicting-rollback",
    ),
    pytest.param("spec.toml", 'region = "eu-west-1\n' + GOOD, ["invalid TOML", "line 1"], id="toml-syntax"),
    pytest.param(
        "spec.json",
        json.dumps(
            {
                "deploy": [
                    {"cluster": "prod", "service": "api", "container": "app", "image": "nginx", "tga": "1"}
                ]
            }
        ),
        ["entry 1 (prod/api/app)", "unknown key 'tga'"],
        id="json-fields",
    ),
    pytest.param(
        "spec.json", '{"deploy": [\n  {"cluster": }\n]}', ["invalid JSON at line 2"], id="json-syntax"
    ),
    pytest.param("spec.json", "[1, 2]", ["top level must be a table", "array"], id="json-top-type"),
    pytest.param(
        "spec.json", '{"region": "a", "region": "b"}', ["duplicate key 'region'"], id="json-dup-key"
    ),
    pytest.param("spec.yaml", "region: x\n", ["unsupported spec file type '.yaml'"], id="suffix"),
    pytest.param("spec.json", b"\xff\xfe{}", ["not UTF-8"], id="not-utf8"),
]


@pytest.mark.parametrize(("name", "text", "fragments"), BAD_SPECS)
def test_bad_spec_names_file_entry_and_problem(
    tmp_path: Path, name: str, text: str | bytes, fragments: list[str]
) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    error = problems_of(path)
    lines = str(error).splitlines()
    assert lines, "a SpecError always says something"
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    assert any(all(fragment in line for fragment in fragments) for line in lines), lines
    assert error.path == str(path)
    assert len(error.problems) == len(lines)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    error = problems_of(path)
    assert str(error) == f"{path}: cannot read the spec file: No such file or directory"


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "dir.toml"
    path.mkdir()
    assert "cannot read the spec file" in str(problems_of(path))


def test_every_problem_is_listed(tmp_path: Path) -> None:
    text = (
        'regoin = "x"\ntimeout = "later"\n'
        + entry_toml(tga="v1")
        + entry_toml(service="web", image="UPPER", tag="v1")
        + entry_toml(service="db", tag="v1", timeout="1m")
        + entry_toml(service="db", container="side", tag="v1", timeout="2m")
    )
    error = problems_of(write(tmp_path, "spec.toml", text))
    text_out = str(error)
    for fragment in (
        "unknown key 'regoin'",
        "invalid duration 'later'",
        "entry 1 (prod/api/app): unknown key 'tga'",
        "entry 2 (prod/web/app): invalid image reference 'UPPER'",
        "entry 4 (prod/db/side): timeout = 120s conflicts with entry 3 (prod/db/app)",
    ):
        assert fragment in text_out, text_out


def test_spec_error_is_a_config_error() -> None:
    error = SpecError("a.toml", ["one", "two"])
    assert isinstance(error, ConfigError)
    assert isinstance(error, FanoutError)
    assert str(error) == "a.toml: one\na.toml: two"
    assert error.problems == ("one", "two")


def test_good_spec(tmp_path: Path) -> None:
    text = (
        'region = "eu-west-1"\ntimeout = "20m"\nrollback = false\nmax_parallel = 7\n'
        'heartbeat = "2m"\npoll_interval = "500ms"\n'
        + entry_toml(tag="v1.4.2", timeout="1h30m")
        + entry_toml(container="sidecar", image=f"{ECR}/envoy:v1.30")
        + entry_toml(container="app", tag="v1.4.2")  # the same image twice: fine
        + entry_toml(cluster="staging", image="nginx", digest=DIGEST, rollback=True)
        + entry_toml(service="web", image="nginx", tag="1.27", digest=DIGEST)
    )
    spec = load_spec(write(tmp_path, "spec.toml", text))
    assert (spec.region, spec.timeout, spec.rollback, spec.max_parallel) == ("eu-west-1", 1200.0, False, 7)
    assert (spec.heartbeat, spec.poll_interval) == (120.0, 0.5)
    assert [e.reference for e in spec.deploy] == [
        f"{ECR}/api:v1.4.2",
        f"{ECR}/envoy:v1.30",
        f"{ECR}/api:v1.4.2",
        f"nginx@{DIGEST}",
        f"nginx:1.27@{DIGEST}",
    ]
    assert spec.deploy[0].timeout == 5400.0
    assert spec.deploy[1].timeout is None
    assert spec.deploy[3].rollback is True


def test_defaults_and_fields_set(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "spec.toml", "timeout = 60\n" + GOOD))
    assert spec.model_fields_set == {"timeout", "deploy"}
    assert (spec.region, spec.timeout, spec.rollback, spec.max_parallel) == (None, 60.0, True, 50)
    assert (spec.heartbeat, spec.poll_interval) == (60.0, 1.0)


def test_json_equals_toml(tmp_path: Path) -> None:
    entries = [
        {"cluster": "prod", "service": "api", "container": "app", "image": f"{ECR}/api", "tag": "v1"},
        {"cluster": "prod", "service": "web", "container": "web", "image": "nginx", "digest": DIGEST},
    ]
    data = {"region": "eu-west-1", "timeout": "15m", "deploy": entries}
    toml = 'region = "eu-west-1"\ntimeout = "15m"\n' + "".join(entry_toml(**e) for e in entries)
    from_json = load_spec(write(tmp_path, "spec.json", json.dumps(data)))
    from_toml = load_spec(write(tmp_path, "spec.toml", toml))
    assert from_json == from_toml
    assert from_json == spec_from_data(data, "inline")


def test_spec_models_check_themselves() -> None:
    entry = DeployEntry(cluster="prod", service="api", container="app", image="nginx", tag="1.27")
    assert entry.reference == "nginx:1.27"
    with pytest.raises(ValueError, match="conflicts with entry 1"):
        Spec(deploy=[entry, entry.model_copy(update={"tag": "1.28"})])
    with pytest.raises(ValueError):
        Spec(deploy=[])


@pytest.mark.parametrize("path", sorted((REPO / "specs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_specs_are_valid(path: Path) -> None:
    assert load_spec(path).deploy


# --- property: any JSON-like data gives a Spec or a SpecError, nothing else ---------------

SPEC_WORDS = st.sampled_from(
    [
        "prod",
        "api",
        "app",
        "nginx",
        "nginx:1",
        "UPPER",
        "v1",
        "15m",
        "0s",
        "baked",
        "traffic_shifted",
        "-1",
        DIGEST,
        f"nginx@{DIGEST}",
        "",
    ]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | SPEC_WORDS
JSON_LIKE = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
)
ENTRY_KEYS = st.sampled_from([*DeployEntry.model_fields, "tga"]) | st.text(max_size=4)
TOP_KEYS = st.sampled_from([*Spec.model_fields, "regoin"]) | st.text(max_size=4)
ENTRY = st.dictionaries(ENTRY_KEYS, SCALARS | JSON_LIKE, max_size=9)
TOP = st.dictionaries(TOP_KEYS, SCALARS | JSON_LIKE | st.lists(ENTRY | JSON_LIKE, max_size=4), max_size=7)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=TOP | JSON_LIKE)
def test_any_data_gives_a_spec_or_a_spec_error(data: Any) -> None:
    try:
        spec = spec_from_data(data, "prop.json")
    except SpecError as error:
        assert error.problems
        assert all(line.startswith("prop.json: ") for line in str(error).splitlines())
    else:
        assert isinstance(spec, Spec)
        assert spec.deploy
