"""The architecture's rules, checked on every import statement (type-only ones included):
`router` imports nothing from `dal` or `pool`, `dal` nothing from `tools`, the modules of `dal/`
import one another without a cycle, and no module of `dal/`, `router/` or `pool/` is over 500
lines (docs/design-notes.md, "The engine's shape")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 500


def _modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package``."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every module name ``path`` imports, anywhere in the file, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _top(name: str) -> str:
    return name.partition(".")[0]


def test_router_imports_nothing_from_dal_or_pool() -> None:
    bad = {(name, imported) for name, path in _modules("router").items()
           for imported in _imports(name, path) if _top(imported) in ("dal", "pool")}
    assert not bad, sorted(bad)


def test_dal_imports_nothing_from_tools() -> None:
    bad = {(name, imported) for name, path in _modules("dal").items()
           for imported in _imports(name, path) if _top(imported) == "tools"}
    assert not bad, sorted(bad)


def test_no_import_cycle_among_dal_modules() -> None:
    modules = _modules("dal")
    edges = {name: {imported for imported in _imports(name, path)
                    if imported in modules and imported != name and imported != "dal"}
             for name, path in modules.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for nxt in sorted(edges[name]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(modules):
        if name not in state:
            cycle = visit(name)
            assert cycle is None, " -> ".join(cycle)


def test_no_module_of_the_engine_packages_is_over_500_lines() -> None:
    long = {str(path.relative_to(ROOT)): lines
            for package in ("dal", "router", "pool")
            for path in _modules(package).values()
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long
