"""The import graph of lof and flows, read from the source: no cycle, no layer importing up.

Every import counts, at the top of a module or inside a function (``TYPE_CHECKING`` ones too):
an import put inside a function to dodge a cycle is still a dependency. ``from pkg import name``
depends on ``pkg.name`` when that is a module, else on ``pkg``; a package's ``__init__`` running
before its modules is not counted as a dependency of theirs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Low to high: a module may import its own layer (cycles aside) and the layers below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("lof", "lof.core"),
    ("lof.features", "lof.feedback", "lof.interventions"),
    ("lof.sources", "lof.stores", "lof.synthetic"),
    ("lof.model", "lof.legacy", "lof.governance"),
    ("lof.registry", "lof.scoring"),
    ("lof.training",),
    ("lof.api",),
    ("flows",),
    ("lof.automations", "lof.console", "lof.demo", "lof.demo_followup", "lof.cli"),
)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for top in ("lof", "flows"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _known(name: str) -> str | None:
    """The longest prefix of ``name`` that is a module of lof or flows."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            for alias in node.names:
                full = f"{origin}.{alias.name}"
                yield full if full in MODULES else origin


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {_known(name) for name in _imports(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching prefix, layer)
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), rank)
    if best is None:
        raise AssertionError(f"{module} is in no layer of LAYERS; add it where it belongs")
    return best[1]


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    # lof.cli imports the flows inside its commands only (a fast `lof --help`)
    assert "flows.daily_scoring" in graph["lof.cli"]
    assert "lof.core.errors" in graph["lof.core.calendar"]


def test_no_import_cycle() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_layer_imports_a_higher_one() -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("package", ["lof.stores"])
def test_persistence_imports_no_model_code(package: str) -> None:
    graph = import_graph()
    leaks = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module == package or module.startswith(package + ".")
        for target in targets
        if target.startswith(("lof.model", "lof.training", "lof.registry"))
    )
    assert not leaks, "\n".join(leaks)


# What each package may import besides itself, as its ``__init__`` docstring says.
MAY_IMPORT: dict[str, set[str]] = {
    "lof.core": set(),
    "lof.features": {"lof.core"},
    "lof.feedback": {"lof.core"},
    "lof.interventions": {"lof.core", "lof.feedback"},
    "lof.sources": {"lof.core", "lof.features"},
    "lof.stores": {"lof.core", "lof.features", "lof.feedback", "lof.interventions"},
    "lof.synthetic": {"lof.core", "lof.sources", "lof.interventions"},
    "lof.model": {"lof.core", "lof.features", "lof.stores.records"},
    "lof.legacy": {"lof.core", "lof.features", "lof.model"},
    "lof.governance": {"lof.core", "lof.features", "lof.sources", "lof.stores"},
    "lof.registry": {
        *("lof.core", "lof.features", "lof.model"),
        *("lof.governance.pseudonyms", "lof.governance.groups"),
    },
    "lof.scoring": {"lof.core", "lof.features", "lof.governance", "lof.sources", "lof.stores"},
    "lof.api": {
        *("lof.core", "lof.features", "lof.feedback", "lof.interventions", "lof.sources"),
        "lof.stores",
        *("lof.model", "lof.governance", "lof.registry"),
    },
}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_each_package_imports_only_what_its_docstring_allows(package: str) -> None:
    allowed = MAY_IMPORT[package]
    outside = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if _package(module) == package
        for target in targets
        if _package(target) != package
        and not any(target == a or target.startswith(a + ".") for a in allowed)
    )
    assert not outside, "\n".join(outside)


def test_at_most_twelve_modules_directly_in_lof() -> None:
    direct = sorted(p.name for p in (ROOT / "lof").glob("*.py"))
    assert len(direct) <= 12, direct
