"""The tokenizer under every IMAP parser, and ``paren_delta`` used to frame FETCH items.

Both of its paths (``bytes.split`` for plain segments, one regex match per
token otherwise) are checked against values generated, serialised as the
server would (with literals as separate parts), and parsed back; random and
mutated input may only ever raise ParseError.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bimmaild.imap.parse import ParseError, paren_delta
from bimmaild.imap.tokens import Value, parse_parts

ATOMS = st.from_regex(r"[A-Za-z0-9\\$.*%_<>+-]{1,12}", fullmatch=True).filter(lambda a: a.upper() != "NIL")
STRINGS = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
VALUES: st.SearchStrategy[Value] = st.recursive(
    st.one_of(ATOMS, STRINGS, st.none()),
    lambda children: st.lists(children, max_size=5),
    max_leaves=25,
)


def serialise(
    values: list[Value], literals: Callable[[], bool], spaces: Callable[[bool], int]
) -> list[bytes | bytearray]:
    """The wire form of ``values``: strings quoted or as literals (each ending a text segment)."""
    parts: list[bytes | bytearray] = []
    segment = bytearray()

    def emit(value: Value) -> None:
        nonlocal segment
        if isinstance(value, list):
            segment += b"("
            for i, child in enumerate(value):
                segment += b" " * spaces(i > 0)
                emit(child)
            segment += b")"
        elif isinstance(value, bytes) and literals():
            segment += b"{%d}" % len(value)
            parts.extend([bytes(segment), bytearray(value)])
            segment = bytearray()
        elif isinstance(value, bytes):
            segment += b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        else:
            segment += b"NIL" if value is None else value.encode()

    for i, value in enumerate(values):
        segment += b" " * spaces(i > 0)
        emit(value)
    if segment or not parts:
        parts.append(bytes(segment))
    return parts


@st.composite
def wire(draw: st.DrawFn) -> tuple[list[Value], list[bytes | bytearray]]:
    values = draw(st.lists(VALUES, max_size=6))
    parts = serialise(
        values,
        literals=lambda: draw(st.booleans()),
        spaces=lambda needed: draw(st.integers(1 if needed else 0, 2)),
    )
    return values, parts


@given(wire())
def test_parts_parse_back_to_their_values(case: tuple[list[Value], list[bytes | bytearray]]) -> None:
    values, parts = case
    assert parse_parts(parts) == values


@given(wire())
def test_paren_delta_frames_an_item(case: tuple[list[Value], list[bytes | bytearray]]) -> None:
    """What the connection does: the depth over the text parts returns to zero at the end only."""
    _, parts = case
    texts = parts[::2]
    assert sum(paren_delta(t) for t in texts) == 0


def test_both_paths_agree() -> None:
    plain = parse_parts([b"1 FETCH (UID 5 FLAGS (\\Seen nil $X) MODSEQ (7))"])
    scanned = parse_parts([b'1 FETCH (UID 5 FLAGS (\\Seen nil $X) MODSEQ (7)) "x"'])
    assert plain == ["1", "FETCH", ["UID", "5", "FLAGS", ["\\Seen", None, "$X"], "MODSEQ", ["7"]]]
    assert scanned == [*plain, b"x"]


def test_sections_and_bracketed_names_are_one_atom() -> None:
    assert parse_parts([b"BODY[HEADER.FIELDS (Message-ID (x))]<0> [Gmail]/Spam BODY[]"]) == [
        "BODY[HEADER.FIELDS (Message-ID (x))]<0>",
        "[Gmail]/Spam",
        "BODY[]",
    ]


def test_quoted_escapes_and_8bit() -> None:
    assert parse_parts([b'"a\\"b\\\\c" "caf\xc3\xa9" ""']) == [b'a"b\\c', "café".encode(), b""]


def test_literal_forms_and_copy() -> None:
    body = b"x" * 10
    values = parse_parts([b"A {10}", body, b" B {0+}", bytearray(), b" C ~{3}", bytearray(b"a\x00b"), b""])
    assert values == ["A", body, "B", b"", "C", b"a\x00b"]
    assert values[1] is body, "a bytes literal is not copied at all"
    assert type(values[5]) is bytes


def test_8bit_atom_is_lossless() -> None:
    (atom,) = parse_parts([b"R\xe9union"])
    assert isinstance(atom, str)
    assert atom.encode("utf-8", "surrogateescape") == b"R\xe9union"


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([b"(a"], "unclosed"),
        ([b"a)"], "without"),
        ([b"(a))"], "without"),
        ([b'"open'], "unexpected"),
        ([b"a\x00b"], "unexpected"),
        ([b"a\x7f"], "unexpected"),
        ([b"{5} a"], "unexpected"),  # a literal marker must end its segment
        ([b"[Gmail"], "unexpected"),
        ([b"a {5}"], "missing"),
        ([b"a {5}", bytearray(b"abc")], "announces 5"),
        ([b"a", bytearray(b"abc")], "announces no literal"),
        ([b"a {1}", b"b", b"c", b"d"], "announces no literal"),
    ],
)
def test_malformed(parts: list[bytes | bytearray], message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_parts(parts)


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4))
def test_random_input_raises_only_parse_error(parts: list[bytes]) -> None:
    with contextlib.suppress(ParseError):
        parse_parts(parts)


@given(st.binary(max_size=30))
def test_paren_delta_matches_a_reference(line: bytes) -> None:
    assert paren_delta(line) == reference_delta(line)


@given(st.lists(st.sampled_from([b"(", b")", b'"', b"\\", b" ", b"a", b"{1}"]), max_size=30).map(b"".join))
def test_paren_delta_matches_a_reference_on_tricky_bytes(line: bytes) -> None:
    assert paren_delta(line) == reference_delta(line)
    assert paren_delta(bytearray(line)) == reference_delta(line)


def reference_delta(line: bytes) -> int:
    """Byte by byte: the obvious, slow definition."""
    depth, quoted, escaped = 0, False, False
    for byte in line:
        if quoted:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                quoted = False
        elif byte == ord('"'):
            quoted = True
        else:
            depth += (byte == ord("(")) - (byte == ord(")"))
    return depth


@pytest.mark.parametrize(
    ("line", "delta"),
    [
        (b"1 FETCH (UID 1 FLAGS (\\Seen))", 0),
        (b"1 FETCH (UID 1 BODY[] {12}", 1),
        (b")", -1),
        (b' ENVELOPE ("a (b" "c\\" (" ((NIL NIL "x" "y")) BODY[] {5}', 1),
        (b'"\\\\" (', 1),  # an escaped backslash does not escape the closing quote
        (b'(x "unclosed (((', 1),  # a broken line: the rest is inside the quote
        (b"BODY[HEADER.FIELDS (MESSAGE-ID)] {40}", 0),
    ],
)
def test_paren_delta_examples(line: bytes, delta: int) -> None:
    assert paren_delta(line) == delta
