"""docs/PROTOCOL.md documents every method the daemon serves, as the code declares it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from bimmailctl.client import Client
from bimmaild.protocol.docgen import render_reference, rewrite

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def test_generated_reference_is_up_to_date() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert rewrite(text) == text, "run: make docs (python -m bimmaild.protocol.docgen docs/PROTOCOL.md)"


async def test_every_served_method_and_event_is_documented(client: Client) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert client.hello["methods"], "daemon announced no methods"
    for method in client.hello["methods"]:
        assert f"### `{method}`" in text, f"{method} is served but not documented"
    for event in client.hello["events"]:
        assert f"| `{event}` |" in text, f"event {event} is not documented"


_DELIMITER_ROW = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def _cells(row: str) -> int:
    """How many cells GFM sees in a table row: every ``|`` not escaped ends one, backticks or not."""
    return len(re.split(r"(?<!\\)\|", row.strip().removeprefix("|").removesuffix("|")))


def _table_rows(text: str) -> Iterator[tuple[int, str, int]]:
    """(line number, row, cells of its header) for every body row of every table outside code blocks."""
    lines = text.split("\n")
    header_cells, in_code = 0, False
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("|"):
            header_cells = 0
        elif header_cells == 0 and number < len(lines) and _DELIMITER_ROW.match(lines[number]):
            header_cells = _cells(line)
        elif header_cells and not _DELIMITER_ROW.match(line):
            yield number, line, header_cells


def test_every_table_row_has_its_headers_cells() -> None:
    """Issue 2 (PROTOCOL.md for front-end authors; audit 23 gap 6): a ``|`` in a type (str|int) or a
    text (added|modified) is escaped, so no row has a cell more than its header (GFM drops it)."""
    text = DOC.read_text(encoding="utf-8")
    rows = list(_table_rows(text))
    assert len(rows) > 100, "the tables of PROTOCOL.md were not found"
    broken = [
        f"line {n}: {cells} cells, not {header}: {row[:80]}"
        for n, row, header in rows
        if (cells := _cells(row)) != header
    ]
    assert not broken, "\n".join(broken)
    assert "| str\\|int |" in render_reference()  # the case that was broken
