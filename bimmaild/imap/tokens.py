"""The tokenizer under every IMAP response parser (``parse.py``); sans-IO.

A response item arrives as *parts*: text segments (protocol lines without
CRLF) alternating with the contents of the literals they announce.  A text
segment followed by a literal ends with ``{n}`` (or ``{n+}``, ``~{n}``); the
literal is the next part and the item's text goes on in the part after it.

``parse_parts`` turns the parts into one nested value — atoms are ``str``,
quoted strings and literals ``bytes``, NIL ``None``, parenthesised lists
``list`` — in a single pass with an explicit stack: linear in the size of the
text, no recursion limit, and each literal copied exactly once
(``bytes(bytearray)``).  It runs on every FETCH item of a sync (20,000+ per
folder, R-C2), hence two paths: segments of plain atoms and parentheses (the
``n FETCH (UID … FLAGS (…) MODSEQ (…))`` lines that dominate a flag sync) are
split by ``bytes.split`` in C; any other segment is scanned by one compiled
regular expression matched once per token, never per byte.  Property tests
serialise generated values (literals included) and parse them back, through
both paths.

Atoms are decoded as UTF-8 with ``surrogateescape``: lossless, so a name
that a broken server sent in 8-bit can be sent back byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import cast

Value = str | bytes | None | list["Value"]


class ParseError(ValueError):
    """The server sent something that is not the IMAP response we expected."""


def excerpt(data: bytes | bytearray | str) -> str:
    """A short printable excerpt of bad input, for error messages."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    return repr(text if len(text) <= 80 else text[:77] + "...")


# Anything that the split path cannot handle: quoted strings, literals, sections,
# control characters, 8-bit bytes.
_NOT_SIMPLE = re.compile(rb'[^\t\n\r\x20-\x7e]|["{\[]')

# Group numbers are the token kinds (``match.lastindex``); the last alternative,
# an empty match at the end of the segment, has none.
_OPEN, _CLOSE, _QUOTED, _LITERAL, _ATOM, _BAD = 1, 2, 3, 4, 5, 6
_TOKEN = re.compile(
    rb"[ \t\r\n]*(?:"
    rb"(\()"
    rb"|(\))"
    rb'|"([^"\\]*(?:\\.[^"\\]*)*)"'
    rb"|~?\{([0-9]{1,19})\+?\}[ \t\r\n]*\Z"  # a literal follows; only at the end of a segment
    # An atom; "[...]" may hold spaces and parentheses (BODY[HEADER.FIELDS (X)]), and "]"
    # alone is an atom character so that unquoted names like [Gmail]/Spam stay one token.
    rb'|((?:[^\x00-\x20()"{\[\x7f]+|\[[^\]]*\])+)'
    rb"|(.)"
    rb"|\Z)",
    re.DOTALL,
)
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def parse_parts(parts: Sequence[bytes | bytearray]) -> list[Value]:
    """All the tokens of one response item, parenthesised lists nested."""
    top: list[Value] = []
    stack: list[list[Value]] = []
    current = top
    count = len(parts)
    index = 0
    while index < count:
        text = bytes(parts[index])  # a text segment: short, and a no-op for bytes
        literal = -1
        if _NOT_SIMPLE.search(text) is None:
            current = _split_segment(text, current, stack)
        else:
            current, literal = _scan_segment(text, current, stack)
        if literal < 0:
            if index != count - 1:
                raise ParseError(f"a part follows {excerpt(text)}, which announces no literal")
            break
        if index + 1 >= count:
            raise ParseError(f"the literal announced by {excerpt(text)} is missing")
        content = parts[index + 1]
        if len(content) != literal:
            raise ParseError(f"literal of {len(content)} bytes where {excerpt(text)} announces {literal}")
        current.append(bytes(content))  # the one copy (none for bytes)
        index += 2
    if stack:
        raise ParseError(f"{len(stack)} unclosed '(' in {excerpt(parts[-1])}")
    return top


def _split_segment(text: bytes, current: list[Value], stack: list[list[Value]]) -> list[Value]:
    """Atoms and parentheses only (ASCII, no quote, brace or bracket): split in C."""
    for word in text.decode("ascii").replace("(", " ( ").replace(")", " ) ").split():
        if word == "(":
            child: list[Value] = []
            current.append(child)
            stack.append(current)
            current = child
        elif word == ")":
            if not stack:
                raise ParseError(f"')' without '(' in {excerpt(text)}")
            current = stack.pop()
        else:
            current.append(None if len(word) == 3 and word.upper() == "NIL" else word)
    return current


def _scan_segment(text: bytes, current: list[Value], stack: list[list[Value]]) -> tuple[list[Value], int]:
    """Any segment, one regular-expression match per token; returns the announced literal's size or -1."""
    literal = -1
    for match in _TOKEN.finditer(text):
        kind = match.lastindex
        if kind == _ATOM:
            atom = match.group(_ATOM).decode("utf-8", "surrogateescape")
            current.append(None if len(atom) == 3 and atom.upper() == "NIL" else atom)
        elif kind == _OPEN:
            child: list[Value] = []
            current.append(child)
            stack.append(current)
            current = child
        elif kind == _CLOSE:
            if not stack:
                raise ParseError(f"')' without '(' in {excerpt(text)}")
            current = stack.pop()
        elif kind == _QUOTED:
            quoted = match.group(_QUOTED)
            current.append(_ESCAPE.sub(rb"\1", quoted) if b"\\" in quoted else quoted)
        elif kind == _LITERAL:
            literal = int(match.group(_LITERAL))
        elif kind == _BAD:
            raise ParseError(f"unexpected {match.group(_BAD)!r} at offset {match.start(_BAD)} in {excerpt(text)}")
    return current, literal


_QUOTED_RUN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)


def paren_delta(line: bytes | bytearray) -> int:
    """Net change of parenthesis depth over one text line, quoted strings ignored.

    Literal contents never come here (they are separate parts), so a line's
    quotes are balanced except from a broken server: an unclosed quote hides
    the rest of the line.  Used by the connection to know when a FETCH item
    that spans several parts is complete.
    """
    if b'"' in line:
        line = _QUOTED_RUN.sub(b"", line)
    return line.count(b"(") - line.count(b")")


# -- helpers for the parsers ------------------------------------------------------


def number(value: Value, what: str) -> int:
    """A non-negative decimal number of at most 20 digits (IMAP's largest, mod-sequences, are 63-bit)."""
    if isinstance(value, str) and len(value) <= 20 and value.isascii() and value.isdigit():
        return int(value)
    raise ParseError(f"{what}: expected a number, got {value!r}")


def is_word(value: Value, *words: str) -> bool:
    """Whether ``value`` is an atom equal to one of ``words`` (upper case), ignoring case."""
    return isinstance(value, str) and value.upper() in words


def astring(value: Value, what: str) -> str:
    """An astring (atom, quoted string or literal) as text, lossless for 8-bit bytes."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    raise ParseError(f"{what}: expected a string, got {value!r}")


def flag_list(value: Value, what: str) -> tuple[str, ...]:
    """A parenthesised list of atoms (flags, mailbox attributes), as sent."""
    if not isinstance(value, list) or not all(isinstance(flag, str) for flag in value):
        raise ParseError(f"{what}: expected a list of flags, got {value!r}")
    return cast("tuple[str, ...]", tuple(value))  # checked just above
