"""The index's header scanner (bimmaild.sync.headers), sans-IO: best-effort, linear, never failing (R-C2).

The hostile messages of tests/reliability/test_hostile_data.py go through it end to end; these
are its rules one by one.
"""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from bimmaild.sync import headers


def test_each_encoded_word_is_decoded_on_its_own() -> None:
    """A word in a charset that does not exist no longer leaves the whole header raw."""
    value = "=?x-no-such-charset?Q?caf=E9?= and =?utf-8?B?w6l0w6k=?="
    assert headers.text(value) == "café and été"  # unknown charset: not UTF-8, so Windows-1252
    assert headers.text("=?nope?B?w6l0w6k=?=") == "été"  # unknown charset: UTF-8 when it is
    assert headers.text("=?utf-8?Q?caf=E9?=") == "café", "bytes that do not match their charset"
    assert headers.text("=?utf-8*fr?Q?=C3=A9t=C3=A9?=") == "été", "RFC 2231 language suffix"
    assert headers.text("=?rot13?Q?abc?=") == "abc", "a codec that is not a text encoding"


def test_encoded_words_mixed_with_8bit_text_and_whitespace() -> None:
    assert headers.text("Réf. =?utf-8?Q?caf=C3=A9?= ok") == "Réf. café ok", "8-bit text around a word"
    assert headers.text("=?utf-8?Q?a?=   =?utf-8?Q?b?=") == "ab", "space between two words goes (RFC 2047 §6.2)"
    assert headers.text("=?utf-8?Q?a?= x =?utf-8?Q?b?=") == "a x b"
    assert headers.text("=?utf-8?Q?hello_world?=") == "hello world"
    assert headers.text("=?utf-8?B?w6k?=") == "é", "missing base64 padding"
    assert headers.text("=?utf-8?X?abc?=") == "=?utf-8?X?abc?=", "not an encoding: kept as written"


def test_control_characters_never_reach_the_index() -> None:
    """NUL, ESC (terminal escape sequences), DEL and C1 controls go; whitespace collapses."""
    assert headers.text("a\x00b\x1b[2Jc\x7fd\x9be\r\n\tf") == "ab[2Jcde f"
    assert headers.text("=?utf-8?Q?x=1B]0;pwned=07y?=") == "x]0;pwnedy", "also inside encoded words"


def test_long_hostile_headers_are_linear() -> None:
    """Encoded words that are never closed took the email package's regex 13 s for 530 KB."""
    bomb = ("=?a?q?" + "x" * 100) * 5000
    start = time.perf_counter()
    assert headers.text(bomb) == bomb[:1000]
    assert headers.text("=?utf-8?q?a?= " * 100_000) == "a" * 1000
    raw = b"Subject: " + bomb.encode() + b"\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10_000)) + b"\r\n"
    assert headers.summary(raw).subject == bomb[:1000]
    assert time.perf_counter() - start < 3


def test_line_endings() -> None:
    crlf = headers.summary(b"Subject: one\r\n two\r\nFrom: a@b\r\n\r\nSubject: body\r\n")
    assert (crlf.subject, crlf.sender) == ("one two", "a@b")
    lf = headers.summary(b"Subject: lf\nMessage-ID: <x@y>\n\nbody\n")
    assert (lf.subject, lf.message_id) == ("lf", "<x@y>")
    cr = headers.summary(b"Subject: cr only\rFrom: cr@example.org\r\rbody\rSubject: no\r")
    assert (cr.subject, cr.sender) == ("cr only", "cr@example.org"), "old Mac line endings"
    bare = headers.summary(b"Subject: one\rtwo\r\nFrom: a@b\r\n\r\n")
    assert (bare.subject, bare.sender) == ("one two", "a@b"), "a bare CR in a CRLF message stays in its line"


def test_8bit_headers_and_messages_without_a_header() -> None:
    latin1 = headers.summary(b"From: Jos\xe9 <j@x.org>\r\nSubject: caf\xe9\r\n\r\n")
    assert (latin1.sender, latin1.subject) == ("José <j@x.org>", "café")
    assert headers.summary(b"") == headers.Summary(None, None, None, None, None)
    assert headers.summary(b"no header, just text\r\n").subject is None
    assert headers.summary(b"\r\nSubject: in the body\r\n").subject is None


def test_fields_reads_the_names_asked_for() -> None:
    raw = b"To: a@b\r\nCc: c@d\r\nCC: second@d\r\nReply-To: r@s\r\n\r\n"
    assert headers.fields(raw, ["cc", "reply-to"]) == {"cc": "c@d", "reply-to": "r@s"}


@given(st.binary(max_size=2000))
def test_summary_never_fails_and_gives_clean_text(raw: bytes) -> None:
    summary = headers.summary(raw)
    for value in (summary.subject, summary.sender, summary.recipients, summary.message_id):
        assert value is None or (len(value) <= headers.MAX_FIELD and not any(ch in value for ch in "\x00\r\n\x1b"))
        if value is not None:
            value.encode("utf-8")  # storable: no lone surrogate


@given(st.text(max_size=300))
def test_text_never_fails(value: str) -> None:
    result = headers.text("=?utf-8?B?" + value + "?= " + value)
    assert result is not None and len(result) <= headers.MAX_FIELD
