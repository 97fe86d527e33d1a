"""IMAP response parsers (R-C1 folder lists, R-C2 sync), on responses as Dovecot, Gmail and Exchange send them.

Parts are given as the connection delivers them: without the leading "* ",
text segments as bytes, literal contents as bytearray.
"""

from __future__ import annotations

import contextlib
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bimmaild.imap import mutf7
from bimmaild.imap.parse import (
    FetchItem,
    ListEntry,
    MailboxState,
    ParseError,
    parse_fetch,
    parse_list,
    parse_select,
    parse_status,
    quote_mailbox,
)

MESSAGE = b'From: a@example.org\r\nSubject: (hi) "* " {5}\r\nMessage-ID: <x@y>\r\n\r\nHello ) world (\r\n'


# -- FETCH ---------------------------------------------------------------------


def test_fetch_full_item() -> None:
    head = b'12 FETCH (UID 5 FLAGS (\\Seen $Forwarded) RFC822.SIZE 83 INTERNALDATE "04-Dec-2026 20:30:00 +0000" MODSEQ (77) BODY[] {%d}'
    item = parse_fetch([head % len(MESSAGE), bytearray(MESSAGE), b")"])
    assert item == FetchItem(
        seq=12, uid=5, flags=("\\Seen", "$Forwarded"), size=83, internal_date="04-Dec-2026 20:30:00 +0000",
        modseq=77, sections={"BODY[]": MESSAGE},
    )  # fmt: skip
    assert type(item.sections["BODY[]"]) is bytes


def test_fetch_flags_only_dovecot_and_gmail() -> None:
    assert parse_fetch([b"1 FETCH (UID 1 FLAGS ())"]) == FetchItem(1, 1, (), None, None, None, {})
    gmail = parse_fetch([
        b'3 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334865 X-GM-LABELS (\\Inbox \\Sent Important "Muy (Importante)") UID 4 FLAGS (\\Seen) MODSEQ (1006437))'
    ])  # fmt: skip
    assert (gmail.seq, gmail.uid, gmail.flags, gmail.modseq) == (3, 4, ("\\Seen",), 1006437)


def test_fetch_exchange_order_and_case() -> None:
    item = parse_fetch([b"7 FETCH (flags (\\Seen \\Answered $MDNSent) uid 31 rfc822.size 2345)"])
    assert (item.uid, item.flags, item.size) == (31, ("\\Seen", "\\Answered", "$MDNSent"), 2345)


def test_fetch_several_literals_and_section_keys() -> None:
    header = b"Message-ID: <x@y>\r\n\r\n"
    item = parse_fetch([
        b"2 FETCH (UID 9 BODY[HEADER.FIELDS (Message-ID)] {%d}" % len(header), bytearray(header),
        b" BODY.PEEK[1.MIME] NIL BODY[TEXT] {0}", bytearray(),
        b" BODY[]<0> {5}", bytearray(b"From:"), b" BINARY.SIZE[1] 42 BODY[header.fields  ( X-A  Date )] \"q\")",
    ])  # fmt: skip
    assert item.sections == {
        "BODY[HEADER.FIELDS (MESSAGE-ID)]": header,
        "BODY[TEXT]": b"",
        "BODY[]<0>": b"From:",
        "BODY[HEADER.FIELDS (X-A DATE)]": b"q",
    }


@pytest.mark.parametrize(
    ("text", "sections"),
    [
        (b'1 FETCH (UID 2 BODY[] "short")', {"BODY[]": b"short"}),
        (b'1 FETCH (UID 2 BODY[] "a \\"q\\" \\\\ b")', {"BODY[]": b'a "q" \\ b'}),
        (b"1 FETCH (UID 2 BODY[] NIL)", {}),
        (b"1 FETCH (UID 2 BODY.PEEK[] NIL RFC822.HEADER NIL)", {}),
        (b'1 FETCH (UID 2 RFC822 "x" RFC822.TEXT "y")', {"RFC822": b"x", "RFC822.TEXT": b"y"}),
        (b'1 FETCH (UID 2 BODY[HEADER.FIELDS ("Message-ID")] "m")', {"BODY[HEADER.FIELDS (MESSAGE-ID)]": b"m"}),
        (b'1 FETCH (UID 2 BINARY[1] "b" BINARY.SIZE[1] 1)', {"BINARY[1]": b"b"}),
    ],
)
def test_fetch_quoted_and_nil_bodies(text: bytes, sections: dict[str, bytes]) -> None:
    assert parse_fetch([text]).sections == sections


def test_fetch_skips_envelope_and_bodystructure() -> None:
    subject = b'Subject (with "quotes" and * )'
    parts: list[bytes | bytearray] = [
        b'7 FETCH (UID 42 ENVELOPE ("Wed, 03 Dec 2026 10:00:00 +0100" {%d}' % len(subject),
        bytearray(subject),
        b' (("Jean (Work)" NIL "jean" "example.org")) (("* Jean" NIL "jean" "example.org")) NIL'
        b' ((NIL NIL "team" "example.org")) NIL NIL "<a@b>" "<c@d>") BODYSTRUCTURE (("text" "plain" ("charset" "utf-8")'
        b' NIL NIL "7bit" 12 1 NIL NIL NIL NIL)("application" "pdf" ("name" "a (1).pdf") NIL NIL "base64" 1000 NIL'
        b' ("attachment" ("filename" "a (1).pdf")) NIL NIL) "mixed" ("boundary" "xx") NIL NIL NIL)'
        b' INTERNALDATE "03-Dec-2026 10:00:01 +0100" X-UNKNOWN (a (b c) "d)") FLAGS (\\Seen))',
    ]
    item = parse_fetch(parts)
    assert (item.uid, item.flags, item.internal_date, item.sections) == (
        42, ("\\Seen",), "03-Dec-2026 10:00:01 +0100", {},
    )  # fmt: skip


def test_fetch_literal_forms_and_star() -> None:
    item = parse_fetch([b"* 4 FETCH (UID 8 BINARY[] ~{3}", bytearray(b"\x00\xff\n"), b" BODY[1] {2+}", b"ab", b")"])
    assert item.sections == {"BINARY[]": b"\x00\xff\n", "BODY[1]": b"ab"}


def test_fetch_literal_is_copied_once() -> None:
    body = bytearray(b"x" * 8_000_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        item = parse_fetch([b"1 FETCH (UID 1 BODY[] {%d}" % len(body), body, b")"])
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert item.sections["BODY[]"] == body
    assert peak < 1.5 * len(body), f"{peak} bytes allocated for a {len(body)}-byte literal"
    shared = b"y" * 100
    assert parse_fetch([b"1 FETCH (BODY[] {100}", shared, b")"]).sections["BODY[]"] is shared


@pytest.mark.parametrize(
    "parts",
    [
        [b""],
        [b"1 FETCH"],
        [b"1 FETCH (UID 1"],
        [b"1 FETCH (UID 1))"],
        [b"1 FETCH UID 1"],
        [b"1 FETCH (UID 1) extra"],
        [b"1 STORE (UID 1)"],
        [b"x FETCH (UID 1)"],
        [b"1 FETCH (UID)"],
        [b"1 FETCH (UID abc)"],
        [b"1 FETCH (UID -1)"],
        [b"1 FETCH (UID 1_0)"],
        [b"1 FETCH (UID " + b"9" * 5000 + b")"],  # int() would raise its own ValueError
        [b"1 FETCH (UID (1))"],
        [b"1 FETCH (FLAGS \\Seen)"],
        [b'1 FETCH (FLAGS ("quoted"))'],
        [b"1 FETCH (MODSEQ 5)"],
        [b"1 FETCH (MODSEQ (5 6))"],
        [b"1 FETCH (RFC822.SIZE NIL)"],
        [b"1 FETCH (BODY[] 5)"],
        [b"1 FETCH (BODY[] (a))"],
        [b'1 FETCH ("UID" 1)'],
        [b"1 FETCH (UID 1 BODY[] {5}"],
        [b"1 FETCH (UID 1 BODY[] {5}", bytearray(b"abc"), b")"],
        [b'1 FETCH (INTERNALDATE "unclosed)'],
        [b"1 FETCH (UID 1\x00)"],
    ],
)
def test_fetch_malformed(parts: list[bytes | bytearray]) -> None:
    with pytest.raises(ParseError):
        parse_fetch(parts)


FLAG = st.from_regex(r"\\?[A-Za-z$][A-Za-z0-9$_.-]{0,10}", fullmatch=True).filter(lambda f: f.upper() != "NIL")


@given(
    seq=st.integers(1, 2**32 - 1),
    uid=st.integers(1, 2**32 - 1),
    flags=st.lists(FLAG, max_size=5),
    modseq=st.integers(1, 2**63 - 1),
    body=st.binary(max_size=300),
    quoted=st.booleans(),
    order=st.permutations(range(4)),
)
def test_fetch_round_trip(
    seq: int, uid: int, flags: list[str], modseq: int, body: bytes, quoted: bool, order: list[int]
) -> None:
    attributes = [
        b"UID %d" % uid,
        b"FLAGS (%s)" % " ".join(flags).encode(),
        b"MODSEQ (%d)" % modseq,
        b'INTERNALDATE "01-Jan-2026 00:00:00 +0000"',
    ]
    head = b"%d FETCH (" % seq + b" ".join(attributes[i] for i in order)
    if quoted and b"\r" not in body and b"\n" not in body:
        parts: list[bytes | bytearray] = [
            head + b' BODY[] "' + body.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'")'
        ]
    else:
        parts = [head + b" BODY[] {%d}" % len(body), bytearray(body), b")"]
    item = parse_fetch(parts)
    assert item == FetchItem(seq, uid, tuple(flags), None, "01-Jan-2026 00:00:00 +0000", modseq, {"BODY[]": body})


@given(st.data())
def test_fetch_mutations_raise_only_parse_error(data: st.DataObject) -> None:
    text = b'5 FETCH (UID 6 FLAGS (\\Seen) ENVELOPE ("d" "s (x)" NIL NIL NIL NIL NIL NIL "<i>" NIL) BODY[] {3}'
    where = data.draw(st.integers(0, len(text)))
    junk = data.draw(st.binary(max_size=3))
    cut = data.draw(st.integers(0, 2))
    mutated = text[:where] + junk + text[where + cut :]
    with contextlib.suppress(ParseError):
        parse_fetch([mutated, bytearray(b"abc"), b")"])


def test_fetch_many_items() -> None:
    """A sync's worth of items (the speed itself is measured outside the suite)."""
    items = [
        parse_fetch([b"%d FETCH (UID %d FLAGS (\\Seen $Forwarded) MODSEQ (%d))" % (i, i + 100, i * 3)])
        for i in range(1, 30_001)
    ]
    assert [item.uid for item in items] == list(range(101, 30_101))
    assert items[-1].modseq == 90_000 and items[-1].flags == ("\\Seen", "$Forwarded")


# -- LIST ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([b'LIST (\\HasNoChildren \\Sent) "/" Sent'], ({"\\HasNoChildren", "\\Sent"}, "/", "Sent", "Sent")),
        ([b'LIST () "." "Sent Items"'], (set(), ".", "Sent Items", "Sent Items")),
        ([b'LIST (\\Noselect) NIL ""'], ({"\\Noselect"}, None, "", "")),
        ([b'LIST (\\HasNoChildren) "/" "INBOX"'], ({"\\HasNoChildren"}, "/", "INBOX", "INBOX")),
        ([b'LIST (\\HasNoChildren) "." inbox'], ({"\\HasNoChildren"}, ".", "INBOX", "INBOX")),
        ([b'LSUB () "/" Inbox'], (set(), "/", "INBOX", "INBOX")),
        ([b'LIST (\\HasChildren \\Noselect) "/" "[Gmail]"'], ({"\\HasChildren", "\\Noselect"}, "/", "[Gmail]", "[Gmail]")),
        ([b'LIST (\\All \\HasNoChildren) "/" "[Gmail]/All Mail"'], ({"\\All", "\\HasNoChildren"}, "/", "[Gmail]/All Mail", "[Gmail]/All Mail")),
        ([b'LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Messages envoy&AOk-s"'], ({"\\HasNoChildren", "\\Sent"}, "/", "[Gmail]/Messages envoy&AOk-s", "[Gmail]/Messages envoyés")),
        ([b'LIST (\\Marked \\HasNoChildren \\Junk) "/" "Junk Email"'], ({"\\Marked", "\\HasNoChildren", "\\Junk"}, "/", "Junk Email", "Junk Email")),
        ([b'LIST (\\HasNoChildren) "/" &AMk-l&AOk-ments&AKA-supprim&AOk-s'], ({"\\HasNoChildren"}, "/", "&AMk-l&AOk-ments&AKA-supprim&AOk-s", "Éléments\xa0supprimés")),
        ([b'LIST (\\HasNoChildren) "." INBOX.Sent'], ({"\\HasNoChildren"}, ".", "INBOX.Sent", "INBOX.Sent")),
        ([b'LIST () "/" "say \\"hi\\" \\\\o/"'], (set(), "/", 'say "hi" \\o/', 'say "hi" \\o/')),
        ([b'LIST () "/" {11}', bytearray(b"Hello World")], (set(), "/", "Hello World", "Hello World")),
        ([b'LIST () "\\\\" "a\\\\b"'], (set(), "\\", "a\\b", "a\\b")),
        ([b'LIST (\\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))'], ({"\\Subscribed"}, "/", "Foo", "Foo")),
        ([b'LIST (\\hasnochildren \\sent) "/" Sent'], ({"\\hasnochildren", "\\sent"}, "/", "Sent", "Sent")),
        ([b'LIST () "/" [Gmail]/Spam'], (set(), "/", "[Gmail]/Spam", "[Gmail]/Spam")),
        ([b'LIST () "/" "&Jjo"'], (set(), "/", "&Jjo", "&Jjo")),  # not modified UTF-7: shown as sent
        ([b'LIST () "/" "R\xc3\xa9unions"'], (set(), "/", "Réunions", "Réunions")),  # UTF-8 (UTF8=ACCEPT)
    ],
)  # fmt: skip
def test_list(parts: list[bytes | bytearray], expected: tuple[set[str], str | None, str, str]) -> None:
    attributes, delimiter, wire_name, name = expected
    assert parse_list(parts) == ListEntry(frozenset(attributes), delimiter, wire_name, name)


def test_list_8bit_name_is_lossless_and_displayable() -> None:
    entry = parse_list([b'LIST () "/" "R\xe9union"'])  # Latin-1 from a broken server
    assert entry.wire_name.encode("utf-8", "surrogateescape") == b"R\xe9union"
    assert entry.name == "R\ufffdunion"


@pytest.mark.parametrize(
    "line",
    [
        b"LIST",
        b'LIST () "/"',
        b'LIST \\Sent "/" Sent',
        b'LIST ("\\Sent") "/" Sent',
        b'LIST () "ab" Sent',
        b'LIST () "/" NIL',
        b'LIST () "/" Sent extra',
        b'LIST () "/" Sent () ()',
        b'STATUS () "/" Sent',
        b'LIST () "/" (Sent)',
    ],
)
def test_list_malformed(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_list([line])


@given(st.text().filter(lambda n: n.upper() != "INBOX"), st.sampled_from(["/", ".", "\\"]))
def test_list_round_trip_through_quote_mailbox(name: str, delimiter: str) -> None:
    wire_name = mutf7.encode(name)
    line = f"LIST (\\HasNoChildren) {quote_mailbox(delimiter)} {quote_mailbox(wire_name)}".encode()
    assert parse_list([line]) == ListEntry(frozenset({"\\HasNoChildren"}), delimiter, wire_name, name)


# -- STATUS, SELECT -----------------------------------------------------------


def test_status() -> None:
    line = b'STATUS "Sent Items" (MESSAGES 3 UIDNEXT 10 UIDVALIDITY 123 HIGHESTMODSEQ 45 UNSEEN 1)'
    expected = {"MESSAGES": 3, "UIDNEXT": 10, "UIDVALIDITY": 123, "HIGHESTMODSEQ": 45, "UNSEEN": 1}
    assert parse_status(line) == ("Sent Items", expected)
    assert parse_status(b"STATUS inbox (messages 0 MAILBOXID (F0123) size 99)") == (
        "INBOX", {"MESSAGES": 0, "SIZE": 99},
    )  # fmt: skip
    assert parse_status(b"STATUS &AMk-l&AOk-ments ()") == ("&AMk-l&AOk-ments", {})


@pytest.mark.parametrize(
    "line",
    [b"STATUS Sent", b"STATUS Sent (MESSAGES)", b"STATUS Sent (MESSAGES x)", b"LIST Sent ()", b"STATUS Sent {3}"],
)
def test_status_malformed(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_status(line)


DOVECOT_SELECT = [
    b"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
    b"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.",
    b"3 EXISTS",
    b"0 RECENT",
    b"OK [UNSEEN 2] First unseen.",
    b"OK [UIDVALIDITY 1733000000] UIDs valid",
    b"OK [UIDNEXT 4] Predicted next UID",
    b"OK [HIGHESTMODSEQ 12] Highest",
    b"[READ-WRITE] Select completed (0.001 + 0.000 secs).",
]
GMAIL_SELECT = [
    b"FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)",
    b"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing \\*)] Flags permitted.",
    b"OK [UIDVALIDITY 1] UIDs valid.",
    b"251 EXISTS",
    b"0 RECENT",
    b"OK [UIDNEXT 7453] Predicted next UID.",
    b"OK [HIGHESTMODSEQ 1006437]",
]
EXCHANGE_SELECT = [
    b"10 EXISTS",
    b"0 RECENT",
    b"FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)",
    b"OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent)] Permanent flags",
    b"OK [UNSEEN 3] Is the first unseen message",
    b"OK [UIDVALIDITY 14] UIDVALIDITY value",
    b"OK [UIDNEXT 1234] The next unique identifier value",
    b"[READ-WRITE] SELECT completed.",
]


@pytest.mark.parametrize(
    ("lines", "state"),
    [
        (DOVECOT_SELECT, MailboxState(3, 1733000000, 4, 12, False, ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\*"))),
        (GMAIL_SELECT, MailboxState(251, 1, 7453, 1006437, False, ("\\Answered", "\\Flagged", "\\Draft", "\\Deleted", "\\Seen", "$NotPhishing", "$Phishing", "\\*"))),
        (EXCHANGE_SELECT, MailboxState(10, 14, 1234, None, False, ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "$MDNSent"))),
        ([b"OK [NOMODSEQ] No permanent modsequences", b"ok [uidnext 5] x", b"0 exists"], MailboxState(0, None, 5, None, True, None)),
        ([b"OK [PERMANENTFLAGS ()] Read-only", b"[READ-ONLY] Examine completed"], MailboxState(permanent_flags=())),
        ([], MailboxState()),
    ],
)  # fmt: skip
def test_select(lines: list[bytes], state: MailboxState) -> None:
    assert parse_select(lines) == state
    assert parse_select([bytearray(line) for line in lines]) == state


def test_select_ignores_unknown_lines_and_restarts_after_closed() -> None:
    lines = [
        b"7 EXISTS",  # the previous folder's
        b"OK [UIDNEXT 99] old",
        b"OK [CLOSED] Previous mailbox closed.",
        b"2 EXISTS",
        b"OK [MAILBOXID (F1234)] Ok",
        b"BYE later",
        b"\x00\xff garbage [",
        b"OK [UIDVALIDITY 5]",
    ]
    assert parse_select(lines) == MailboxState(exists=2, uidvalidity=5)


def test_select_with_qresync_collects_what_vanished_and_changed() -> None:
    """RFC 7162 §3.2.5.2's example answer, after an earlier folder's report that CLOSED ends."""
    lines = [
        b"VANISHED (EARLIER) 1:1000",  # the previous folder's
        b"OK [CLOSED]",
        b"314 EXISTS",
        b"OK [UIDVALIDITY 3857529045] UIDVALIDITY",
        b"OK [HIGHESTMODSEQ 20010715194045319] Highest",
        b"VANISHED (EARLIER) 41,43:116,118,120:211,214:540",
        b"49 FETCH (UID 117 FLAGS (\\Seen \\Answered) MODSEQ (20010715194045007))",
        b"50 FETCH (UID 119 FLAGS (\\Draft $MDNSent) MODSEQ (20010715194045008))",
    ]
    state = parse_select(lines)
    assert (state.exists, state.uidvalidity, state.highestmodseq) == (314, 3857529045, 20010715194045319)
    assert state.vanished == [(41, 41), (43, 116), (118, 118), (120, 211), (214, 540)]
    assert [(i.seq, i.uid, i.flags, i.modseq) for i in state.changed] == [
        (49, 117, ("\\Seen", "\\Answered"), 20010715194045007),
        (50, 119, ("\\Draft", "$MDNSent"), 20010715194045008),
    ]


@pytest.mark.parametrize(
    "line", [b"OK [UIDVALIDITY abc] x", b"OK [UIDNEXT] x", b"OK [HIGHESTMODSEQ -1]", b"OK [PERMANENTFLAGS (\\Seen] x"]
)
def test_select_malformed_known_code(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_select([line])
