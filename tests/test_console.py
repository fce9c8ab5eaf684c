"""`lof demo` and the `lof` command share terminal helpers without importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

import lof


def _imported(module: str) -> set[str]:
    """Every module a file of lof imports, at the top or inside a function."""
    tree = ast.parse((Path(lof.__file__).parent / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_demo_does_not_import_the_cli() -> None:
    assert "lof.cli" not in _imported("demo")
    assert "lof.cli" not in _imported("console")
    assert "lof.demo" not in _imported("console")


def test_cli_and_demo_print_through_the_same_consoles() -> None:
    import lof.cli
    import lof.console

    assert lof.cli.out is lof.console.out
    assert lof.cli.console is lof.console.console
