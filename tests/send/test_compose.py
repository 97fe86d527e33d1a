"""Composed messages and signatures, parsed back as a receiver would (R-F2, R-G1).

R-F2: plain signatures follow the RFC 3676 "-- " line; rich ones are sent as
``multipart/alternative`` with their images as inline ``multipart/related``
parts referenced by ``cid:``.  R-G1: the preview (``signature_parts``) is
exactly what a built message carries — checked here against real messages.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage, MIMEPart

import pytest

from bimmaild.send.compose import (
    Attachment,
    Signature,
    SignatureImage,
    build_message,
    image_content_id,
    mime_tree,
    signature_parts,
)
from bimmaild.send.sanitize import html_to_text

DOMAIN = "acme.example"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
GIF = b"GIF89a\x01\x00\x01\x00" + bytes(range(255, -1, -1))

PLAIN_SIGNATURE = Signature("plain", "text", "Jörg Müller\nACME SA  \n+33 1 23 45 67 89")
RICH_HTML = (
    '<table style="font-family: Arial"><tr><td><img src="logo.png" alt="ACME" width="80"></td>'
    '<td><b>Jörg&nbsp;Müller</b><br>Directeur technique<br><a href="https://acme.example/">acme.example</a>'
    '<br><img src="badge.gif"></td></tr></table>'
)
RICH_SIGNATURE = Signature(
    "rich",
    "html",
    RICH_HTML,
    (SignatureImage("logo.png", "image/png", PNG), SignatureImage("badge.gif", "image/gif", GIF)),
)


def _build(**overrides: object) -> EmailMessage:
    params: dict[str, object] = {
        "sender": "Jörg Müller <joerg@acme.example>",
        "to": '"Dupont, Jean" <jean@example.net>, bob@example.net',
        "cc": "",
        "bcc": "",
        "subject": "Grüße",
        "text": "Bonjour,\n\nvoici le document.",
        "html": None,
        "signature": None,
        "attachments": [],
        "domain": DOMAIN,
    }
    params.update(overrides)
    return build_message(**params)  # type: ignore[arg-type]


def _received(message: EmailMessage) -> EmailMessage:
    """The message as the receiving side parses it, from the bytes the SMTP layer sends."""
    parsed = email.message_from_bytes(message.as_bytes(policy=email.policy.SMTP), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _parts(message: EmailMessage, content_type: str) -> list[MIMEPart]:
    return [p for p in message.walk() if p.get_content_type() == content_type]


def _one(message: EmailMessage, content_type: str) -> MIMEPart:
    (part,) = _parts(message, content_type)
    return part


def _text(part: MIMEPart) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content


def _structure(part: MIMEPart) -> object:
    if part.is_multipart():
        return (part.get_content_type(), [_structure(p) for p in part.iter_parts()])
    return part.get_content_type()


# -- plain messages ------------------------------------------------------------------------------------------------


def test_plain_message_without_signature_is_a_single_text_part() -> None:
    received = _received(_build())
    assert _structure(received) == "text/plain"
    assert received.get_content_charset() == "utf-8"
    assert _text(received) == "Bonjour,\r\n\r\nvoici le document.\r\n"


def test_plain_signature_follows_the_rfc3676_delimiter_with_its_trailing_space() -> None:
    raw = _build(signature=PLAIN_SIGNATURE).as_bytes(policy=email.policy.SMTP)
    received = _received(_build(signature=PLAIN_SIGNATURE))
    assert _structure(received) == "text/plain"
    assert "format" not in received["Content-Type"]  # never format=flowed
    assert _text(received).endswith("voici le document.\r\n-- \r\nJörg Müller\r\nACME SA  \r\n+33 1 23 45 67 89\r\n")
    assert "\r\n-- \r\nJörg Müller\r\n".encode() in raw  # 8bit: the space is on the wire as is


def test_plain_signature_survives_a_transfer_encoding() -> None:
    long_line = "é" * 120  # too long for 7bit/8bit lines: quoted-printable or base64
    message = _build(text=long_line, signature=PLAIN_SIGNATURE)
    assert message["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    decoded = _text(_received(message)).replace("\r\n", "\n")  # the decoder gives "\n" line ends here
    assert decoded.endswith("\n-- \nJörg Müller\nACME SA  \n+33 1 23 45 67 89\n")


def test_a_delimiter_typed_in_the_signature_is_not_doubled() -> None:
    signature = Signature("s", "text", "-- \r\nJean\r\n\r\n")
    assert _text(_received(_build(text="x", signature=signature))) == "x\r\n-- \r\nJean\r\n"


# -- rich messages -------------------------------------------------------------------------------------------------


def test_rich_signature_with_images_makes_alternative_and_related_parts() -> None:
    received = _received(_build(signature=RICH_SIGNATURE))
    assert _structure(received) == (
        "multipart/alternative",
        ["text/plain", ("multipart/related", ["text/html", "image/png", "image/gif"])],
    )
    plain = _text(_one(received, "text/plain"))
    assert plain.endswith("\r\n-- \r\n" + html_to_text(RICH_HTML).replace("\n", "\r\n") + "\r\n")
    assert plain.endswith("\r\n-- \r\nJörg Müller\r\nDirecteur technique\r\nacme.example <https://acme.example/>\r\n")
    html = _text(_one(received, "text/html"))
    assert '<div style="white-space: pre-wrap">Bonjour,\r\n\r\nvoici le document.</div>' in html
    assert '<div class="signature">-- <br><table style="font-family: Arial">' in html
    for part, original in ((_one(received, "image/png"), PNG), (_one(received, "image/gif"), GIF)):
        cid = part["Content-ID"]
        assert cid.startswith("<") and cid.endswith(f"@{DOMAIN}>")
        assert f'src="cid:{cid[1:-1]}"' in html
        assert part.get_content_disposition() == "inline"
        assert part.get_content() == original  # decodes back to the very bytes


def test_rich_signature_without_images_and_text_body() -> None:
    signature = Signature("r", "html", '<p style="color: navy">Jean &amp; <i>co</i></p>')
    received = _received(_build(text="1 < 2 & 3", signature=signature))
    assert _structure(received) == ("multipart/alternative", ["text/plain", "text/html"])
    assert _text(_one(received, "text/plain")) == "1 < 2 & 3\r\n-- \r\nJean & co\r\n"
    html = _text(_one(received, "text/html"))
    assert html.startswith('<html><body><div style="white-space: pre-wrap">1 &lt; 2 &amp; 3</div>')
    assert '<div class="signature">-- <br><p style="color: navy">Jean &amp; <i>co</i></p></div></body></html>' in html


def test_html_body_with_plain_signature() -> None:
    body = "<html><head></head><body><p>Bonjour <b>Jean</b></p></BODY></html>"
    received = _received(_build(html=body, signature=PLAIN_SIGNATURE))
    assert _structure(received) == ("multipart/alternative", ["text/plain", "text/html"])
    assert _text(_one(received, "text/plain")).endswith("\r\n-- \r\nJörg Müller\r\nACME SA  \r\n+33 1 23 45 67 89\r\n")
    html = _text(_one(received, "text/html"))
    assert html.replace("\r\n", "\n").startswith(
        '<html><head></head><body><p>Bonjour <b>Jean</b></p><div class="signature">-- <br>'
        '<div style="white-space: pre-wrap">Jörg Müller\nACME SA  \n+33 1 23 45 67 89</div></div></BODY></html>'
    )


def test_html_body_without_signature_is_sent_unchanged() -> None:
    received = _received(_build(html="<p>Bonjour</p>"))
    assert _structure(received) == ("multipart/alternative", ["text/plain", "text/html"])
    assert _text(_one(received, "text/html")) == "<p>Bonjour</p>\r\n"


def test_remote_content_in_a_stored_body_is_never_sent() -> None:
    stored = '<b>Jean</b><img src="https://track.example/p.gif"><script>alert(1)</script><img src="logo.png">'
    signature = Signature("r", "html", stored, (SignatureImage("logo.png", "image/png", PNG),))
    html = _text(_one(_received(_build(signature=signature)), "text/html"))
    assert "track.example" not in html and "script" not in html and "alert" not in html
    assert f'<img src="cid:{image_content_id(signature.images[0], DOMAIN)}">' in html


def test_unreferenced_signature_images_are_not_sent() -> None:
    signature = Signature("r", "html", '<img src="logo.png">', RICH_SIGNATURE.images)
    received = _received(_build(signature=signature))
    assert [p.get_filename() for p in received.walk() if p.get_content_maintype() == "image"] == ["logo.png"]


# -- attachments and headers ------------------------------------------------------------------------------------------


def test_attachments_come_back_with_their_names() -> None:
    attachments = [
        Attachment("rapport.pdf", "application/pdf", b"%PDF-1.7\n..."),
        Attachment("résumé d'été.txt", "text/plain", "Grüße\n".encode()),
        Attachment("weird.bin", "not a type", b"\x00\x01"),
        Attachment("fw.eml", "message/rfc822", b"Subject: x\r\n\r\nbody\r\n"),
    ]
    received = _received(_build(signature=RICH_SIGNATURE, attachments=attachments))
    assert _structure(received) == (
        "multipart/mixed",
        [
            ("multipart/alternative", ["text/plain", ("multipart/related", ["text/html", "image/png", "image/gif"])]),
            "application/pdf",
            "text/plain",
            "application/octet-stream",
            "application/octet-stream",
        ],
    )
    found = [p for p in received.iter_attachments()]
    assert [p.get_filename() for p in found] == [a.filename for a in attachments]
    assert [p.get_payload(decode=True) for p in found] == [a.data for a in attachments]
    raw = _build(attachments=attachments).as_bytes(policy=email.policy.SMTP)
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9%20d%27%C3%A9t%C3%A9.txt" in raw  # RFC 2231


def test_headers() -> None:
    date = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=1)))
    message = _build(cc="carol@example.net", bcc="Secret <eve@example.net>", date=date)
    received = _received(message)
    assert message["Bcc"] == "Secret <eve@example.net>"  # kept in the message object (Sent copy)
    assert received["Bcc"] == "Secret <eve@example.net>"
    assert received["Cc"] == "carol@example.net"
    assert [a.display_name for a in received["To"].addresses] == ["Dupont, Jean", ""]
    assert received["Subject"] == "Grüße"
    assert received["From"].addresses[0].display_name == "Jörg Müller"
    assert received["Date"].datetime == date
    assert received["Message-ID"].startswith("<") and received["Message-ID"].endswith(f"@{DOMAIN}>")
    assert received["MIME-Version"] == "1.0"


def test_empty_recipient_fields_make_no_header_and_defaults_apply() -> None:
    message = _build(to="", cc="", bcc="eve@example.net")
    assert message["To"] is None and message["Cc"] is None
    assert message["Date"].datetime.tzinfo is not None
    assert datetime.now(UTC) - message["Date"].datetime < timedelta(minutes=1)
    assert _build()["Message-ID"] != _build()["Message-ID"]


def test_given_message_id_is_used() -> None:
    assert _build(message_id="<fixed.1@acme.example>")["Message-ID"] == "<fixed.1@acme.example>"
    assert _build(message_id="fixed.2@acme.example")["Message-ID"] == "<fixed.2@acme.example>"


def test_unknown_signature_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        _build(signature=Signature("x", "markdown", "*hi*"))


# -- the preview equals the message (R-G1) ---------------------------------------------------------------------------


def test_content_ids_are_stable_distinct_and_scoped_to_the_domain() -> None:
    logo, badge = RICH_SIGNATURE.images
    assert image_content_id(logo, DOMAIN) == image_content_id(logo, DOMAIN)
    assert image_content_id(logo, DOMAIN) != image_content_id(badge, DOMAIN)
    assert image_content_id(logo, DOMAIN) != image_content_id(SignatureImage("other.png", "image/png", PNG), DOMAIN)
    assert image_content_id(logo, DOMAIN).endswith("@acme.example")


@pytest.mark.parametrize("signature", [PLAIN_SIGNATURE, RICH_SIGNATURE, Signature("r", "html", "<b>Jean</b>")])
@pytest.mark.parametrize("html_body", [None, "<html><body><p>Bonjour</p></body></html>"])
def test_signature_parts_are_what_the_message_carries(signature: Signature, html_body: str | None) -> None:
    preview = signature_parts(signature, DOMAIN)
    attachments = [Attachment("a.pdf", "application/pdf", b"%PDF")]
    received = _received(_build(html=html_body, signature=signature, attachments=attachments))

    plain = _text(_one(received, "text/plain")).replace("\r\n", "\n")
    assert plain.endswith("\n" + preview["plain"] + "\n")
    if preview["html"] is not None:
        assert preview["html"] in _text(_one(received, "text/html")).replace("\r\n", "\n")
    images = [p for p in received.walk() if p.get_content_disposition() == "inline"]
    assert preview["parts"] == [
        {
            "content_type": p.get_content_type(),
            "content_id": p["Content-ID"],
            "filename": p.get_filename(),
            "size": len(p.get_payload(decode=True)),
        }
        for p in images
    ]
    assert [p.get_payload(decode=True) for p in images] == [i.data for i in signature.images]
    (body,) = [p for p in received.iter_parts() if p.get_content_disposition() is None]
    if html_body is None or signature.kind == "html":  # a plain one adds no structure to an HTML message
        assert mime_tree(body) == preview["mime"]


def test_signature_parts_of_a_rich_signature() -> None:
    preview = signature_parts(RICH_SIGNATURE, DOMAIN)
    logo, badge = (image_content_id(i, DOMAIN) for i in RICH_SIGNATURE.images)
    assert preview["text"] == "Jörg Müller\nDirecteur technique\nacme.example <https://acme.example/>"
    assert preview["html"].startswith(
        f'<div class="signature">-- <br><table style="font-family: Arial"><tbody><tr><td><img src="cid:{logo}"'
    )
    assert preview["parts"] == [
        {"content_type": "image/png", "content_id": f"<{logo}>", "filename": "logo.png", "size": len(PNG)},
        {"content_type": "image/gif", "content_id": f"<{badge}>", "filename": "badge.gif", "size": len(GIF)},
    ]
    assert preview["mime"] == (
        "multipart/alternative\n"
        "  text/plain; charset=utf-8\n"
        "  multipart/related\n"
        "    text/html; charset=utf-8\n"
        f'    image/png <{logo}> inline "logo.png" ({len(PNG)} bytes)\n'
        f'    image/gif <{badge}> inline "badge.gif" ({len(GIF)} bytes)'
    )


def test_signature_parts_of_a_plain_signature() -> None:
    assert signature_parts(PLAIN_SIGNATURE, DOMAIN) == {
        "text": "Jörg Müller\nACME SA  \n+33 1 23 45 67 89",
        "plain": "-- \nJörg Müller\nACME SA  \n+33 1 23 45 67 89",
        "html": None,
        "parts": [],
        "mime": "text/plain; charset=utf-8",
    }
