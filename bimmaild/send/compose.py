"""Composing an outgoing message, and the signature it carries (R-F2, R-G1).

Sans-IO: strings and bytes in, an ``EmailMessage`` out.  Submission, the outbox
and the Sent copy all work on what this module builds, so the message is
composed exactly once and its Message-ID and Date are set here.

The MIME layout is the one mail clients produce (Python docs, "email:
Examples"): ``text/plain`` alone when there is nothing rich to send;
otherwise ``multipart/alternative`` with a ``text/plain`` rendering first and
the ``text/html`` last; the HTML becomes ``multipart/related`` when the
signature has images, each an inline part referenced by ``cid:``;
attachments wrap all that in ``multipart/mixed``.

Plain signatures follow the "Usenet signature convention" of RFC 3676 §4.3:
the line ``"-- "`` (dash, dash, *space*) alone, then the signature.  The
trailing space is the point of the line and Python's generator keeps it (as is
in 8bit, ``=20`` in quoted-printable).  ``format=flowed`` is never declared: we
do not wrap lines the way it requires.

``signature_parts`` (the preview, R-G1) renders the signature with the very
functions ``build_message`` uses and builds the same MIME skeleton, so what is
previewed is what is sent.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, localtime, make_msgid
from typing import Any

from bimmaild.send.sanitize import cid_url, html_to_text, resolve_images

__all__ = [
    "SIGNATURE_DELIMITER",
    "Attachment",
    "Signature",
    "SignatureImage",
    "build_message",
    "image_content_id",
    "mime_tree",
    "signature_parts",
]

SIGNATURE_DELIMITER = "-- "  # RFC 3676 §4.3: dash, dash, space — never strip that space
SIGNATURE_KINDS = ("text", "html")
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_OPAQUE = ("application", "octet-stream")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class SignatureImage:
    filename: str
    content_type: str  # e.g. "image/png"
    data: bytes


@dataclass(frozen=True)
class Signature:
    name: str
    kind: str  # "text" | "html"
    body: str  # the text, or the (sanitised) HTML with src="NAME" references to its images
    images: tuple[SignatureImage, ...] = ()


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class _RenderedSignature:
    """A signature as it goes into a message: the same values for ``build_message`` and the preview."""

    text: str  # what follows the "-- " line in the text/plain part
    html: str  # the block inserted into the text/html part
    rich: bool  # an HTML signature: it makes the message multipart/alternative by itself
    images: tuple[tuple[SignatureImage, str], ...]  # inline images referenced by the HTML, with their Content-ID


# -- signatures --------------------------------------------------------------------------------------------


def image_content_id(image: SignatureImage, domain: str) -> str:
    """The Content-ID (without angle brackets) of a signature image.

    Derived from the image rather than random (``make_msgid``): the preview
    (R-G1) must show the Content-IDs and ``cid:`` references a sent message will
    really carry, and it is computed separately from the message.  A hash of the
    name and bytes is stable across calls, differs between different images of
    one signature, and gives the same ID only to the same content (which is what
    a Content-ID promises); the domain scopes it to the sender like make_msgid would.
    """
    digest = hashlib.sha256(image.filename.encode("utf-8") + b"\0" + image.data).hexdigest()
    return f"{digest[:32]}@{domain}"


def _plain_signature(body: str) -> str:
    lines = body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    if lines[0].rstrip() == "--":  # the user typed the delimiter too: we add it ourselves
        lines = lines[1:]
    return "\n".join(lines).rstrip("\n")


def _signature_block(fragment: str) -> str:
    # No standard for HTML; a div starting with "-- <br>" is common practice
    # (Thunderbird uses class="moz-signature") and lets readers fold it.
    return f'<div class="signature">{SIGNATURE_DELIMITER}<br>{fragment}</div>'


def _render_signature(signature: Signature, domain: str) -> _RenderedSignature:
    if signature.kind not in SIGNATURE_KINDS:
        raise ValueError(f"signature kind must be one of {SIGNATURE_KINDS}, not {signature.kind!r}")
    if signature.kind == "text":
        text = _plain_signature(signature.body)
        return _RenderedSignature(text, _signature_block(_preformatted_html(text)), rich=False, images=())
    named: dict[str, tuple[SignatureImage, str]] = {}
    for image in signature.images:
        named.setdefault(image.filename, (image, image_content_id(image, domain)))
    # Sanitised again even though the store keeps sanitised HTML: cheap, and
    # what leaves never depends on how the stored body was produced.
    fragment = resolve_images(signature.body, {name: cid for name, (_, cid) in named.items()})
    # Only referenced images are sent: an unreferenced one would show up as a stray attachment.
    images = tuple((image, cid) for image, cid in named.values() if f'"{cid_url(cid)}"' in fragment)
    return _RenderedSignature(html_to_text(fragment), _signature_block(fragment), rich=True, images=images)


def signature_parts(signature: Signature, domain: str) -> dict[str, Any]:
    """What the signature adds to a sent message (R-G1 preview).

    ``text``: the plain text exactly as written after the ``"-- "`` line;
    ``plain``: the block added to the text/plain part, that line included;
    ``html``: the block exactly as inserted into the HTML part (``cid:`` references
    included), None for a plain signature (it adds HTML only to a message that has some);
    ``parts``: the inline image parts; ``mime``: the MIME tree of a message carrying only it.
    """
    domain = _ascii_domain(domain)
    rendered = _render_signature(signature, domain)
    skeleton = EmailMessage()
    _set_body(skeleton, "", None, rendered)
    parts = [
        {
            "content_type": "/".join(_split_type(image.content_type)),
            "content_id": f"<{cid}>",
            "filename": image.filename,
            "size": len(image.data),
        }
        for image, cid in rendered.images
    ]
    html = rendered.html if rendered.rich else None
    return {
        "text": rendered.text,
        "plain": f"{SIGNATURE_DELIMITER}\n{rendered.text}",
        "html": html,
        "parts": parts,
        "mime": mime_tree(skeleton),
    }


# -- the message ---------------------------------------------------------------------------------------------


def build_message(
    *,
    sender: str,
    to: str,
    cc: str,
    bcc: str,
    subject: str,
    text: str,
    html: str | None,
    signature: Signature | None,
    attachments: Sequence[Attachment],
    domain: str,
    date: datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """The complete message: headers, text (and HTML) body with the signature, inline images, attachments.

    ``to``/``cc``/``bcc`` are ready RFC 5322 header values (empty: no header);
    ``domain`` is the sender's, used for the Message-ID and the Content-IDs.
    """
    domain = _ascii_domain(domain)
    message = EmailMessage()
    message["From"] = sender
    for name, value in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        # Bcc is written too: the SMTP layer strips it from what it submits, and
        # the Sent copy keeps it, as Thunderbird does, so the user sees who was
        # blind-copied.
        if value:
            message[name] = value
    message["Subject"] = subject
    message["Date"] = format_datetime(date or localtime())
    message["Message-ID"] = _message_id(message_id, domain)
    _set_body(message, text, html, _render_signature(signature, domain) if signature else None)
    for attachment in attachments:
        maintype, subtype = _split_type(attachment.content_type, attachment=True)
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message


def _set_body(message: EmailMessage, text: str, html: str | None, signature: _RenderedSignature | None) -> None:
    plain = text if signature is None else f"{text}\n{SIGNATURE_DELIMITER}\n{signature.text}"
    message.set_content(plain)  # utf-8; 7bit, 8bit, quoted-printable or base64 as the text requires
    if html is None and (signature is None or not signature.rich):
        return
    document = _html_document(_preformatted_html(text)) if html is None else html
    if signature is not None:
        document = _insert_before_body_end(document, signature.html)
    message.add_alternative(document, subtype="html")
    if signature is None or not signature.images:
        return
    html_part = list(message.iter_parts())[-1]
    for image, cid in signature.images:
        maintype, subtype = _split_type(image.content_type)
        html_part.add_related(
            image.data,
            maintype=maintype,
            subtype=subtype,
            cid=f"<{cid}>",
            filename=image.filename,
            disposition="inline",
        )


def _preformatted_html(text: str) -> str:
    return f'<div style="white-space: pre-wrap">{html_lib.escape(text)}</div>'


def _html_document(body: str) -> str:
    return f"<html><body>{body}</body></html>"


def _insert_before_body_end(document: str, block: str) -> str:
    ends = [m.start() for m in _BODY_END.finditer(document)]
    return document[: ends[-1]] + block + document[ends[-1] :] if ends else document + block


def _message_id(message_id: str | None, domain: str) -> str:
    if not message_id:
        return make_msgid(domain=domain)  # domain= given: otherwise it calls socket.getfqdn()
    return message_id if message_id.startswith("<") else f"<{message_id}>"


def _ascii_domain(domain: str) -> str:
    """The domain as it may appear in a Message-ID or Content-ID (IDNA for internationalised ones)."""
    try:
        return domain.strip().encode("idna").decode("ascii") or "localhost"
    except UnicodeError:
        return "localhost"


def _split_type(content_type: str, attachment: bool = False) -> tuple[str, str]:
    """``(maintype, subtype)`` of a content type, application/octet-stream when it is not usable.

    For attachments, multipart/* and message/* are opaque too: the email
    package would base64-encode the bytes, which RFC 2046 forbids for them
    (and a multipart body without its boundary is unreadable).
    """
    kind = content_type.split(";", 1)[0].strip().lower()
    if not _MIME_TYPE.fullmatch(kind):
        return _OPAQUE
    maintype, subtype = kind.split("/")
    if attachment and maintype in ("multipart", "message"):
        return _OPAQUE
    return maintype, subtype


def mime_tree(part: MIMEPart, depth: int = 0) -> str:
    """The MIME structure of ``part``, one line per part, indented by nesting."""
    line = part.get_content_type()
    if part.get_content_maintype() == "text":
        line += f"; charset={part.get_content_charset()}"
    if part["Content-ID"]:
        line += f" {part['Content-ID']}"
    if not part.is_multipart() and part.get_content_maintype() != "text":
        payload = part.get_payload(decode=True)
        line += f' {part.get_content_disposition()} "{part.get_filename()}" ({len(payload)} bytes)'
    lines = ["  " * depth + line]
    lines += [mime_tree(sub, depth + 1) for sub in part.iter_parts()]
    return "\n".join(lines)
