"""The reference tables of docs/contracts.md, built from the code they describe.

The settings table (3.2) is built from ``lof.config.Settings``: each variable, its default and
its bounds come from the class, the meaning column is the one already written in the document.
The CLI reference (3.3) is built whole from the ``lof`` command's own help. The API routes
(3.5) are read from the app's OpenAPI document. ``tests/docs/test_contracts.py`` fails when the
document and the code disagree; ``make docs`` rewrites the generated parts:

    .venv/bin/python -m tests.docs.reference --write
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, get_args

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "docs" / "contracts.md"
SETTINGS_BEGIN, SETTINGS_END = "<!-- settings:begin -->", "<!-- settings:end -->"
CLI_BEGIN, CLI_END = "<!-- cli:begin -->", "<!-- cli:end -->"
SETTINGS_HEADER = "| variable | default | accepted | meaning |\n|---|---|---|---|"
NO_MEANING = "(to be written)"


# --- settings -----------------------------------------------------------------------------------


def env_name(name: str, info: FieldInfo) -> str:
    """The environment variable a settings field is read from."""
    alias = info.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        upper = [c for c in choices if isinstance(c, str) and c.isupper()]
        if upper:
            return upper[0]
    return f"LOF_{name.upper()}"


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory({"home": Path("$LOF_HOME")})  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "empty"
    return f"`{value}`"


def _accepted(info: FieldInfo) -> str:
    choices = get_args(info.annotation)
    literal = [c for c in choices if isinstance(c, str)]
    inner = [get_args(c) for c in choices]
    literal += [v for group in inner for v in group if isinstance(v, str)]
    if literal:
        return ", ".join(f"`{c}`" for c in literal)
    parts = []
    for item in info.metadata:
        for kind, attribute, sign in (
            (annotated_types.Ge, "ge", "≥"),
            (annotated_types.Gt, "gt", ">"),
            (annotated_types.Le, "le", "≤"),
            (annotated_types.Lt, "lt", "<"),
        ):
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attribute):,}".replace(",", " "))
    if parts:
        return ", ".join(parts)
    text = str(info.annotation)
    for marker, description in (
        ("SecretStr", "secret"),
        ("bool", "`true`, `false`"),
        ("Path", "path"),
        ("int", "integer"),
        ("float", "number"),
    ):
        if marker in text:
            return description
    return "text"


def settings_fields() -> list[tuple[str, FieldInfo]]:
    """(environment variable, field) of every setting, in the class's order."""
    from lof.core.config import Settings

    return [(env_name(name, info), info) for name, info in Settings.model_fields.items()]


def settings_table(meanings: dict[str, str]) -> str:
    """The settings table; a variable without a written meaning gets ``NO_MEANING``."""
    rows = [SETTINGS_HEADER]
    for variable, info in settings_fields():
        meaning = meanings.get(variable, NO_MEANING)
        rows.append(f"| `{variable}` | {_default(info)} | {_accepted(info)} | {meaning} |")
    return "\n".join(rows)


def section(text: str, begin: str, end: str) -> str:
    """The text between two markers (stripped)."""
    start = text.index(begin) + len(begin)
    return text[start : text.index(end, start)].strip()


def documented_settings(text: str) -> dict[str, list[str]]:
    """Each row of the document's settings table: variable -> its cells."""
    rows: dict[str, list[str]] = {}
    for line in section(text, SETTINGS_BEGIN, SETTINGS_END).splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        if match:
            rows[match.group(1)] = cells
    return rows


# --- CLI ----------------------------------------------------------------------------------------


def _first_paragraph(text: str | None) -> str:
    paragraph = (text or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def _option_name(param: Any) -> str:
    if type(param).__name__.endswith("Argument"):
        return str(param.name).upper()
    names = "/".join([*param.opts, *param.secondary_opts])
    return names


def _placeholder(param: Any) -> str:
    """What an option's value looks like: a day, or the option's name."""
    if "YYYYMMDD" in (getattr(param, "help", None) or ""):
        return "YYYYMMDD"
    return str(param.name).upper()


def _option_default(param: Any) -> str:
    if param.required:
        return "required"
    default = param.default
    if default is None:
        return "—"
    if isinstance(default, bool):
        return "yes" if default else "no"
    return f"`{default}`"


def cli_commands() -> list[tuple[str, Any]]:
    """(name, click command) of every ``lof`` command, in the order they are defined."""
    import typer.main

    from lof.cli import app

    group = typer.main.get_command(app)
    return list(group.commands.items())  # type: ignore[attr-defined]


def cli_reference() -> str:
    """One block per command: its usage, what it does, and its options."""
    blocks = []
    for name, command in cli_commands():
        usage = []
        for param in command.params:
            text = _option_name(param)
            if not type(param).__name__.endswith("Argument") and not param.is_flag:
                text += f" {_placeholder(param)}"
            if getattr(param, "multiple", False):
                text += " ..."
            usage.append(text if param.required else f"[{text}]")
        lines = [
            f"#### `lof {name}`",
            "",
            f"`lof {' '.join([name, *usage])}`".replace(f"`lof {name} `", f"`lof {name}`"),
            "",
            _first_paragraph(command.help) or NO_MEANING,
        ]
        if command.params:
            lines += ["", "| option | default | meaning |", "|---|---|---|"]
            for param in command.params:
                help_text = getattr(param, "help", None) or NO_MEANING
                lines.append(
                    f"| `{_option_name(param)}` | {_option_default(param)} | {help_text} |"
                )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --- API ----------------------------------------------------------------------------------------


def api_routes() -> list[str]:
    """``METHOD /path`` of every route of the app (its OpenAPI document, documents on)."""
    from lof.api.factory import create_app
    from lof.core.config import get_settings

    app = create_app(get_settings(api_docs=True))
    paths = app.openapi()["paths"]
    return [f"{method.upper()} {path}" for path, item in paths.items() for method in sorted(item)]


# --- writing ------------------------------------------------------------------------------------


def _replace(text: str, begin: str, end: str, content: str) -> str:
    start = text.index(begin) + len(begin)
    stop = text.index(end, start)
    return f"{text[:start]}\n{content}\n{text[stop:]}"


def rewrite(path: Path = CONTRACTS) -> None:
    """Rewrite the generated parts of the document, keeping the written meanings."""
    text = path.read_text(encoding="utf-8")
    meanings = {v: cells[3] for v, cells in documented_settings(text).items() if len(cells) > 3}
    text = _replace(text, SETTINGS_BEGIN, SETTINGS_END, settings_table(meanings))
    text = _replace(text, CLI_BEGIN, CLI_END, cli_reference())
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        rewrite()
    else:
        print(settings_table({}))
        print()
        print(cli_reference())
