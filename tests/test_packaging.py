"""The core without its test bed: `pip install ecs-fanout` brings no moto, `[sandbox]` does.

- The installed distribution's metadata (what pip reads) names moto, Flask and Werkzeug only
  under `extra == "sandbox"`, and the dev extra pulls the sandbox in.
- No module outside `orchestrator/sandbox/` imports them, at module level or inside a function
  (read from the source with `ast`), so the core runs where they are not installed.
- `--sandbox` without the extra is bad configuration: a real CLI process in which moto cannot be
  imported prints one line naming the extra and exits 2, no traceback.
"""

from __future__ import annotations

import ast
import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement

from tests.cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_ONLY = ("moto", "flask", "werkzeug")  # what `moto[server]` brings
SANDBOX_PACKAGE = ROOT / "orchestrator" / "sandbox"
PRODUCT = [
    ROOT / "pack.py",
    *(p for top in ("worker", "orchestrator", "tui") for p in (ROOT / top).rglob("*.py")),
]
EXTRA_HINT = "pip install 'ecs-fanout[sandbox]'"


def _requirements() -> list[Requirement]:
    return [Requirement(text) for text in importlib.metadata.requires("ecs-fanout") or []]


def _extras_of(requirement: Requirement) -> set[str]:
    """The extras under which pip installs `requirement` (empty set: always)."""
    marker = requirement.marker
    if marker is None:
        return {""}
    extras = {"", "sandbox", "dev"}
    return {extra for extra in extras if marker.evaluate({"extra": extra})}


def test_metadata_lists_moto_only_under_the_sandbox_extra() -> None:
    requirements = _requirements()
    sandbox_only = [r for r in requirements if r.name.lower() in SANDBOX_ONLY]
    assert [r.name for r in sandbox_only] == ["moto"], sandbox_only
    assert all(_extras_of(r) == {"sandbox"} for r in sandbox_only), [str(r) for r in sandbox_only]
    assert "server" in sandbox_only[0].extras  # the emulator is moto's HTTP server
    core = [r.name for r in requirements if "" in _extras_of(r)]
    assert core and not [name for name in core if name.lower() in SANDBOX_ONLY], core
    dev_pulls_sandbox = [
        r
        for r in requirements
        if r.name == "ecs-fanout" and "sandbox" in r.extras and _extras_of(r) == {"dev"}
    ]
    assert dev_pulls_sandbox, "the dev extra must install the sandbox extra (the tests need moto)"


def _imported_roots(path: Path) -> Iterator[str]:
    """The top-level package of every absolute import in the file, wherever it stands."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0]


def test_only_the_sandbox_package_imports_moto() -> None:
    outside = [path for path in PRODUCT if not path.is_relative_to(SANDBOX_PACKAGE)]
    assert ROOT / "orchestrator" / "cli.py" in outside and len(outside) > 20
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in outside
        if (found := set(_imported_roots(path)) & set(SANDBOX_ONLY))
    }
    assert offenders == {}, f"only orchestrator/sandbox/ may import {SANDBOX_ONLY}: {offenders}"
    # and the sandbox really is where moto is used (the scan reads what it should)
    inside = {root for path in SANDBOX_PACKAGE.rglob("*.py") for root in _imported_roots(path)}
    assert "moto" in inside


def test_sandbox_without_the_extra_names_it_and_exits_2(tmp_path: Path) -> None:
    """moto made unimportable, as in a core install: `ecs-fanout --sandbox` says what to install."""
    fake = tmp_path / "site" / "moto"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'moto'\", name='moto')  # as if not installed\n"
    )
    proc = run_cli(
        "specs/demo.toml",
        "--sandbox",
        "--plain",
        redis_url="",
        env={"PYTHONPATH": str(fake.parent)},
        drop=("AWS_",),
    )
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and EXTRA_HINT in lines[0] and "--sandbox" in lines[0], proc.stderr
    assert proc.stdout == ""
