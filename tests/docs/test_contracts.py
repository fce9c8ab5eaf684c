"""docs/ against the code: every setting, command, option and route is documented as it is.

Pure reads of the documents, the settings class, the command's help and the app's OpenAPI
document (built in process, no server). ``make docs`` rewrites the generated parts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import reference

DOCS = reference.ROOT / "docs"
CONTRACTS_TEXT = reference.CONTRACTS.read_text(encoding="utf-8")
FIX = "run `make docs` and write the meaning of any new setting"


def _section(text: str, number: str) -> str:
    """The text of the section headed ``number`` (e.g. 3.5) up to the next one of its level."""
    match = re.search(rf"^(#+) {re.escape(number)} .*$", text, flags=re.MULTILINE)
    assert match, f"no section {number}"
    level = len(match.group(1))
    rest = text[match.end() :]
    following = re.search(rf"^#{{1,{level}}} ", rest, flags=re.MULTILINE)
    return rest[: following.start()] if following else rest


def test_every_setting_is_documented() -> None:
    documented = reference.documented_settings(CONTRACTS_TEXT)
    variables = [variable for variable, _ in reference.settings_fields()]
    missing = [v for v in variables if v not in documented]
    assert not missing, f"settings missing from docs/contracts.md 3.2: {missing}; {FIX}"
    stale = sorted(set(documented) - set(variables))
    assert not stale, f"docs/contracts.md 3.2 documents settings lof does not have: {stale}"


def test_settings_table_matches_the_settings_class() -> None:
    documented = reference.documented_settings(CONTRACTS_TEXT)
    meanings = {v: cells[3] for v, cells in documented.items() if len(cells) > 3}
    table = reference.section(CONTRACTS_TEXT, reference.SETTINGS_BEGIN, reference.SETTINGS_END)
    assert table == reference.settings_table(meanings), f"defaults or bounds changed; {FIX}"
    unwritten = [v for v, meaning in meanings.items() if meaning in ("", reference.NO_MEANING)]
    assert not unwritten, f"settings without a meaning in docs/contracts.md: {unwritten}"


def test_every_command_is_documented() -> None:
    names = [name for name, _ in reference.cli_commands()]
    assert "daily" in names and "forget" in names
    missing = [n for n in names if f"#### `lof {n}`" not in CONTRACTS_TEXT]
    assert not missing, f"commands missing from docs/contracts.md 3.3: {missing}; run `make docs`"


def test_command_reference_matches_the_help() -> None:
    documented = reference.section(CONTRACTS_TEXT, reference.CLI_BEGIN, reference.CLI_END)
    assert documented == reference.cli_reference(), "commands or options changed; run `make docs`"


def test_every_route_is_documented() -> None:
    api = _section(CONTRACTS_TEXT, "3.5")
    routes = reference.api_routes()
    assert "GET /predictions" in routes
    missing = [r for r in routes if not re.search(rf"`{re.escape(r)}[`?\[]", api)]
    assert not missing, f"routes missing from the table of docs/contracts.md 3.5: {missing}"


@pytest.mark.parametrize("number", ["2.1", "2.2", "2.3", "2.4", "2.5"])
def test_domain_keeps_the_design_numbers(number: str) -> None:
    assert _section((DOCS / "domain.md").read_text(encoding="utf-8"), number).strip()


@pytest.mark.parametrize("number", ["3.1", "3.2", "3.3", "3.4", "3.5", "3.6"])
def test_contracts_keep_the_design_numbers(number: str) -> None:
    assert _section(CONTRACTS_TEXT, number).strip()


def test_design_references_in_the_code_point_at_a_section() -> None:
    """A "docs/domain.md §2.3" in the code names a section that document holds, and no comment
    cites a design document the repository does not have."""
    cited: dict[tuple[str, str], list[str]] = {}
    foreign: list[str] = []
    for folder in ("lof", "flows"):
        for path in (reference.ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            where = str(path.relative_to(reference.ROOT))
            for document, number in re.findall(r"docs/(\w+\.md) §(\d\.\d)", text):
                cited.setdefault((document, number), []).append(where)
            if re.search(r"DESIGN \d\.\d", text):
                foreign.append(where)
    assert cited
    assert not foreign, f"cite docs/domain.md or docs/contracts.md instead of DESIGN: {foreign}"
    absent = {
        f"{document} §{number}": files
        for (document, number), files in cited.items()
        if not (DOCS / document).is_file()
        or not re.search(
            rf"^#+ {re.escape(number)} ",
            (DOCS / document).read_text(encoding="utf-8"),
            flags=re.MULTILINE,
        )
    }
    assert not absent, f"sections cited in the code but not in docs/: {absent}"


def test_the_index_lists_every_document() -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    documents = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    missing = [name for name in documents if f"]({name})" not in index]
    assert not missing, f"docs/README.md does not list {missing}"


def test_readme_links_the_design() -> None:
    readme = (reference.ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/README.md)" in readme
    assert Path(reference.ROOT / "docs" / "README.md").is_file()
