"""Our modules import each other without cycles.

A cycle makes import order matter (a module half-initialised when its partner reads from it)
and ties layers together that should stack: worker <- orchestrator <- tui <- the CLI. The graph
is built from the source with `ast`, so it sees every import, module-level and inside
functions alike (a lazy import is still a dependency); only `if TYPE_CHECKING:` blocks are
left out, as they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("worker", "orchestrator", "tui")
SINGLE_MODULES = ("pack",)


def module_files() -> dict[str, Path]:
    """Dotted name -> file, for every module of our packages (sub-packages included) and pack.py."""
    found = {name: ROOT / f"{name}.py" for name in SINGLE_MODULES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, at any depth, except under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for orelse in child.orelse:
                yield from _imports(orelse)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _imports(child)


def _absolute(module: str, statement: ast.ImportFrom, is_package: bool) -> str:
    if not statement.level:
        return statement.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (statement.level - 1)]
    return ".".join([*base, *([statement.module] if statement.module else [])])


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (`from a import b` counts as `a.b` when that is a module)."""
    files = module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for statement in _imports(tree):
            targets: list[str] = []
            if isinstance(statement, ast.Import):
                targets = [alias.name for alias in statement.names]
            else:
                source = _absolute(name, statement, path.name == "__init__.py")
                for alias in statement.names:
                    submodule = f"{source}.{alias.name}"
                    targets.append(submodule if submodule in files else source)
            graph[name] |= {target for target in targets if target in files and target != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that starts and ends with the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return [*path[path.index(successor) :], successor]
            if successor not in state and (cycle := visit(successor)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_sees_our_modules_and_their_lazy_imports() -> None:
    graph = import_graph()
    assert {"pack", "worker.engine", "orchestrator.cli", "orchestrator.sandbox.session", "tui.app"} <= set(
        graph
    )
    # The CLI imports the deploy command inside a function: still an edge of the graph.
    assert "orchestrator.deploy" in graph["orchestrator.cli"]
    # A `from package import name` of a module names the module, not the package.
    assert "tui.app" in graph["tui"]


def test_the_cli_is_imported_by_nothing_it_runs() -> None:
    """The commands take their parser pieces from `options`: `cli` dispatches, nothing calls back."""
    importers = {module for module, imported in import_graph().items() if "orchestrator.cli" in imported}
    assert importers == {"orchestrator.__main__"}


def test_the_renderer_protocol_is_shared_not_borrowed() -> None:
    """The TUI implements `Renderer` from its own module, not from the run core's."""
    graph = import_graph()
    assert "orchestrator.renderer" in graph["tui.app"]
    assert not any(
        target == "orchestrator.run"
        for module in graph
        if module.startswith("tui")
        for target in graph[module]
    )


def test_a_cycle_is_found_and_named() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_our_modules_import_each_other_without_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
