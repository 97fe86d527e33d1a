"""SEARCH/ESEARCH, VANISHED, sequence sets and mailbox quoting (R-C2: what was removed on the server).

The companion of ``test_parse.py``: lines are given without the leading "* ".
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bimmaild.imap.parse import (
    ParseError,
    parse_search,
    parse_uid_set,
    quote_mailbox,
    uid_set,
    uids_in_ranges,
    vanished_ranges,
)


@pytest.mark.parametrize(
    ("lines", "found"),
    [
        ([b"SEARCH 1 2 3"], [1, 2, 3]),
        ([b"SEARCH", b"SEARCH "], []),
        ([b"SEARCH 9 3 3", b"SEARCH 5 1"], [1, 3, 5, 9]),
        ([b"SEARCH 2 1 (MODSEQ 917162500)"], [1, 2]),
        ([b'ESEARCH (TAG "A5") UID ALL 1:3,5,7:9'], [1, 2, 3, 5, 7, 8, 9]),
        ([b'ESEARCH (TAG "A5") UID MIN 2 MAX 9 COUNT 3 ALL 2,4,9 MODSEQ 7'], [2, 4, 9]),
        ([b'ESEARCH (TAG "A5") UID COUNT 0'], []),
        ([b"ESEARCH UID ALL 4"], [4]),
        ([b"search 1", b"3 EXISTS", b"1 EXPUNGE", b'1 FETCH (FLAGS ("x"))'], [1]),
    ],
)
def test_search(lines: list[bytes], found: list[int]) -> None:
    assert parse_search(lines) == found


def test_search_many() -> None:
    assert parse_search([b"SEARCH " + b" ".join(b"%d" % n for n in range(100_000, 0, -1))]) == list(range(1, 100_001))


@pytest.mark.parametrize(
    "line", [b"SEARCH 1 x", b"SEARCH 1 -2", b"SEARCH (1)", b"SEARCH " + b"9" * 5000, b"ESEARCH UID ALL 1:x"]
)
def test_search_malformed(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_search([line])


@pytest.mark.parametrize(
    ("uids", "text"),
    [([1, 2, 3, 5, 7, 8, 9], "1:3,5,7:9"), ([9, 1, 1, 2], "1:2,9"), ([4], "4"), (range(1, 100_001), "1:100000")],
)
def test_uid_set(uids: list[int], text: str) -> None:
    assert uid_set(uids) == text


@pytest.mark.parametrize("uids", [[], [0, 1], [-3]])
def test_uid_set_refuses(uids: list[int]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # the message is not the point
        uid_set(uids)


@pytest.mark.parametrize(
    ("text", "max_uid", "uids"),
    [
        ("1:3,5,7:9", None, [1, 2, 3, 5, 7, 8, 9]),
        ("9:7,8", None, [7, 8, 9]),
        ("*", 4, [4]),
        ("5:*", 7, [5, 6, 7]),
        ("*:5", 3, [3, 4, 5]),
    ],
)
def test_parse_uid_set(text: str, max_uid: int | None, uids: list[int]) -> None:
    assert parse_uid_set(text, max_uid=max_uid) == uids


@pytest.mark.parametrize("text", ["", "1,,2", "a", "1:", ":1", "0", "1:0", " 1", "1 ", "١", "1:4294967295", "-1"])
def test_parse_uid_set_malformed(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uid_set(text)


def test_parse_uid_set_star_needs_max_uid() -> None:
    with pytest.raises(ValueError, match="max_uid"):
        parse_uid_set("1:*")


@given(st.sets(st.integers(1, 5000), min_size=1))
def test_uid_set_round_trip(uids: set[int]) -> None:
    text = uid_set(uids)
    assert parse_uid_set(text) == sorted(uids)
    runs = sum(1 for uid in uids if uid - 1 not in uids)
    assert text.count(",") + 1 == runs, "maximal ranges only"


@pytest.mark.parametrize(
    ("line", "ranges"),
    [
        (b"VANISHED (EARLIER) 1:3,7", [(1, 3), (7, 7)]),
        (b"VANISHED 5", [(5, 5)]),
        (b"vanished (earlier) 9:8", [(8, 9)]),
    ],
)
def test_vanished(line: bytes, ranges: list[tuple[int, int]]) -> None:
    assert vanished_ranges(line) == ranges


@pytest.mark.parametrize("line", [b"VANISHED", b"VANISHED (EARLIER)", b"VANISHED *", b"EXPUNGE 3", b"VANISHED 1,,2"])
def test_vanished_malformed(line: bytes) -> None:
    with pytest.raises(ParseError):
        vanished_ranges(line)


def test_vanished_ranges_stay_ranges() -> None:
    """A server without expunge history may answer every absent UID: no expansion, no limit."""
    assert vanished_ranges(b"VANISHED (EARLIER) 1:4000000000") == [(1, 4_000_000_000)]
    assert vanished_ranges(b"VANISHED 9:8,3") == [(8, 9), (3, 3)]
    with pytest.raises(ParseError):
        vanished_ranges(b"VANISHED (EARLIER) 5:*")


@given(st.sets(st.integers(1, 300)), st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), max_size=8))
def test_uids_in_ranges_matches_a_plain_scan(uids: set[int], pairs: list[tuple[int, int]]) -> None:
    ranges = [(min(a, b), max(a, b)) for a, b in pairs]  # overlapping and nested ones included
    expected = sorted(uid for uid in uids if any(low <= uid <= high for low, high in ranges))
    assert uids_in_ranges(uids, ranges) == expected


@pytest.mark.parametrize(
    ("wire_name", "quoted"),
    [("INBOX", '"INBOX"'), ("Sent Items", '"Sent Items"'), ('a"b\\c', '"a\\"b\\\\c"'), ("", '""')],
)
def test_quote_mailbox(wire_name: str, quoted: str) -> None:
    assert quote_mailbox(wire_name) == quoted


@pytest.mark.parametrize("wire_name", ["a\rb", "a\nb", "a\x00b"])
def test_quote_mailbox_refuses_line_breaks(wire_name: str) -> None:
    with pytest.raises(ValueError, match="CR, LF and NUL"):
        quote_mailbox(wire_name)
