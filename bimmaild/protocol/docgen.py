"""Generate the reference part of docs/PROTOCOL.md from protocol.methods.

The prose of PROTOCOL.md is written by hand; the method, event and error
reference between the GENERATED markers comes from the declarations, so it
cannot drift from what the daemon validates.  ``python -m
bimmaild.protocol.docgen docs/PROTOCOL.md`` rewrites it; a test fails when it
is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bimmaild.protocol.errors import ERROR_CLASSES, ErrorCode, Retry
from bimmaild.protocol.methods import EVENTS, METHODS, Method
from bimmaild.protocol.schema import Param

BEGIN = "<!-- BEGIN GENERATED REFERENCE: python -m bimmaild.protocol.docgen docs/PROTOCOL.md -->"
END = "<!-- END GENERATED REFERENCE -->"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: GFM ends a cell at every unescaped ``|``, even inside
    backticks, so a type such as ``str|int`` would otherwise split the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _row(*cells: str) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _param_rows(params: tuple[Param, ...], prefix: str = "") -> list[str]:
    rows = []
    for p in params:
        path = f"{prefix}{p.name}"
        kind = p.kind + (f" of {p.item_kind}" if p.item_kind else "") + (" or nil" if p.nullable else "")
        flags = []
        if p.required:
            flags.append("required")
        if p.has_default:
            flags.append(f"default `{p.default!r}`")
        if p.choices:
            flags.append("one of " + ", ".join(f"`{c}`" for c in p.choices))
        if p.min is not None or p.max is not None:
            flags.append(f"{p.min if p.min is not None else ''}…{p.max if p.max is not None else ''}")
        if p.secret:
            flags.append("secret, never echoed")
        rows.append(_row(f"`{path}`", kind, "; ".join(flags), p.doc))
        if p.fields:
            rows += _param_rows(p.fields, prefix=f"{path}[]." if p.kind == "list" else f"{path}.")
    return rows


def _method(m: Method) -> str:
    lines = [f"### `{m.name}`", "", m.summary, ""]
    if m.params:
        lines += ["| param | type | constraints | meaning |", "|---|---|---|---|", *_param_rows(m.params), ""]
    else:
        lines += ["No params (send an empty map).", ""]
    lines += [f"**Result**: {m.result}", ""]
    if m.errors:
        lines += ["**Errors**: " + ", ".join(f"`{e.wire_name}` ({int(e)})" for e in m.errors), ""]
    if m.before_hello:
        lines += ["Allowed before `hello`.", ""]
    if m.access == "configure":
        lines += ["**Access**: the right to configure one's accounts (administrators always have it).", ""]
    elif m.access == "admin":
        lines += ["**Access**: administrators only.", ""]
    return "\n".join(lines)


def _errors() -> str:
    lines = ["| code | name | retry |", "|---|---|---|"]
    for code in ErrorCode:
        retry = ERROR_CLASSES[code]("").retry
        lines.append(_row(str(int(code)), f"`{code.wire_name}`", str(retry)))
    lines.append("")
    lines.append(
        f"`retry`: `{Retry.NOW}` = retry at once after fixing the request, `{Retry.LATER}` = "
        f"retry later unchanged, `{Retry.NEVER}` = retrying unchanged cannot succeed."
    )
    return "\n".join(lines)


def render_reference() -> str:
    parts = [BEGIN, "", "## Methods", ""]
    parts += [_method(m) for m in METHODS]
    parts += ["## Events", "", "| event | when | params |", "|---|---|---|"]
    parts += [_row(f"`{e.name}`", e.summary, e.params) for e in EVENTS]
    parts += ["", "## Error codes", "", _errors(), "", END]
    return "\n".join(parts)


def rewrite(text: str) -> str:
    """``text`` with its generated section replaced (appended when absent)."""
    start, end = text.find(BEGIN), text.find(END)
    if start == -1 or end == -1:
        return text.rstrip("\n") + "\n\n" + render_reference() + "\n"
    return text[:start] + render_reference() + text[end + len(END) :]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bimmaild.protocol.docgen docs/PROTOCOL.md", file=sys.stderr)
        return 2
    path = Path(argv[0])
    path.write_text(rewrite(path.read_text(encoding="utf-8") if path.exists() else ""), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
