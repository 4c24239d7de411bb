"""The dependency rule, checked on the source: edges → features → core, never back; a feature
never imports another; no module past one sitting (400 lines).

Nodes are the packages directly under ``src/strata`` (``core``, ``features``, ``edges``), the
top-level modules (``__init__``, ``__main__``) and ``bench``. Every import counts, including
the ones inside functions and under ``TYPE_CHECKING``: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "strata"
MAX_LINES = 400

# What each node may import (besides itself).
ALLOWED = {
    "core": set(),
    "features": {"core"},
    "edges": {"core", "features", "__init__"},
    "__init__": {"core"},
    "__main__": {"edges"},
    "bench": {"core", "features", "edges", "__init__"},
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        yield "strata." + ".".join(path.relative_to(SRC).with_suffix("").parts), path
    for path in sorted((ROOT / "bench").glob("*.py")):
        yield "bench." + path.stem, path


def _node(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "bench":
        return "bench"
    if len(parts) == 1 or parts[1] == "__init__":
        return "__init__"
    return parts[1]


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "strata":  # ``from strata import catalog`` names a submodule
                for alias in node.names:
                    sub = SRC / alias.name
                    has_module = sub.is_dir() or sub.with_suffix(".py").exists()
                    yield f"strata.{alias.name}" if has_module else "strata"
            else:
                yield node.module


def _edges() -> list[tuple[str, str, str]]:
    """(importing module, imported module, importing file) for every strata import."""
    found = []
    for module, path in _modules():
        for target in _imports(path):
            if target == "strata" or target.startswith("strata."):
                found.append((module, target, str(path.relative_to(ROOT))))
    return found


def _feature(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "features" else None


def test_every_import_runs_down_the_layers() -> None:
    wrong = [
        f"{where}: {module} imports {target}"
        for module, target, where in _edges()
        if _node(target) != _node(module) and _node(target) not in ALLOWED[_node(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_node_graph_has_no_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for module, target, _ in _edges():
        if _node(module) != _node(target):
            graph.setdefault(_node(module), set()).add(_node(target))
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in visiting, "cycle: " + " → ".join([*path, node])
        if node in done:
            return
        visiting.add(node)
        for nxt in graph.get(node, ()):
            visit(nxt, [*path, node])
        visiting.discard(node)
        done.add(node)

    for node in list(graph):
        visit(node, [])


def test_no_feature_imports_another() -> None:
    wrong = [
        f"{where}: {module} imports {target}"
        for module, target, where in _edges()
        if _feature(module) and _feature(target) and _feature(module) != _feature(target)
    ]
    assert not wrong, "\n".join(wrong)


def test_modules_fit_one_sitting() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_the_checks_see_the_tree() -> None:
    """Guards the checks above against passing on nothing."""
    edges = _edges()
    assert len(edges) > 200
    assert {_node(m) for m, _, _ in edges} >= {"core", "features", "edges", "bench"}
    assert any(_feature(m) == "knowledge" for m, _, _ in edges)
