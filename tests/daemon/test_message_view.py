"""messages.show's view of a stored message (bimmaild.message_view), sans-IO: hostile bytes in,
readable and encodable answers out.  End to end: tests/reliability/test_hostile_data.py.
"""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from bimmaild import message_view


def nested(depth: int) -> bytes:
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    return b"Subject: deep\r\nFrom: a@b\r\n" + opening + b"Content-Type: text/plain\r\n\r\ninnermost\r\n"


def test_headers_survive_a_mime_structure_the_email_package_cannot_read() -> None:
    shown = message_view.content(nested(5000))  # RecursionError inside the email package
    assert shown["headers"] == {"Subject": "deep", "From": "a@b"}
    assert shown["text"] is None and shown["attachments"] == []
    assert "innermost" in (message_view.content(nested(100))["text"] or "")


def test_headers_are_decoded_as_the_index_decodes_them() -> None:
    raw = (
        b"From: Jos\xe9 <j@x.org>\r\nTo: =?nope?Q?M=FCller?= <m@x.de>\r\nSubject: caf\xe9\x00\x1b[2J\r\n"
        b"X-Other: not shown\r\n\r\nbody\r\n"
    )
    assert message_view.content(raw)["headers"] == {
        "From": "José <j@x.org>",
        "To": "Müller <m@x.de>",
        "Subject": "café[2J",
    }


def test_text_is_decoded_best_effort() -> None:
    def text(content_type: bytes, body: bytes) -> str | None:
        result = message_view.content(b"Content-Type: " + content_type + b"\r\n\r\n" + body)["text"]
        assert result is None or isinstance(result, str)
        return result

    assert text(b'text/plain; charset="x-no-such-charset"', b"caf\xe9") == "café", "unknown charset: a guess"
    assert text(b"text/plain", b"d\xe9j\xe0 vu") == "déjà vu", "undeclared 8-bit: Windows-1252"
    assert text(b"text/plain", b"d\xc3\xa9j\xc3\xa0") == "déjà", "undeclared 8-bit: UTF-8 when it is"
    assert text(b"text/plain; charset=utf-8", b"\xc3\xa9t\xe9") == "ét\ufffd", "declared: bad bytes replaced only"
    assert text(b"text/plain; charset=iso-8859-15", b"\xa4") == "€"


def test_attachments_of_broken_mime() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="q"\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
        b"--q\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="x.png"\r\n\r\n%%%%^^^^\r\niVBORw0KGgo=garbage\r\n'
    )  # base64 garbage, no end boundary
    shown = message_view.content(raw)
    assert shown["text"] == "hi"
    assert [(a["filename"], a["content_type"]) for a in shown["attachments"]] == [("x.png", "image/png")]


@settings(max_examples=200)
@given(st.binary(max_size=3000))
def test_content_never_fails_and_is_encodable(raw: bytes) -> None:
    msgpack.packb(message_view.content(raw), use_bin_type=True)


@settings(max_examples=200)
@given(
    st.lists(
        st.sampled_from(
            [b"Content-Type: multipart/mixed; boundary=x\r\n", b"--x\r\n", b"--x--\r\n", b"\r\n", b"\xff\xfe\x00",
             b"Content-Transfer-Encoding: base64\r\n", b"Content-Type: text/plain; charset=nope\r\n", b"=?x?q?=E9?=",
             b"Subject: s\r\n", b"Content-Disposition: attachment; filename*=x''%E9\r\n", b"\r", b"\n"]
        ),
        max_size=40,
    )
)  # fmt: skip
def test_content_of_mime_shaped_junk_is_encodable(pieces: list[bytes]) -> None:
    msgpack.packb(message_view.content(b"".join(pieces)), use_bin_type=True)
