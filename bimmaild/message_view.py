"""How a stored message is shown to clients: index fields, and the readable parts of its content.

Sans-IO (takes a row and bytes).  Parsing a hostile message must not fail:
the headers are read by the index's own scanner (``sync.headers``: the same
best-effort decoding as ``messages.list``, and readable even when the MIME
structure is not), the text is decoded best-effort or None, and the parts list
holds what could be read.  Parsing is CPU-bound (a 70 MB message takes
seconds): callers run ``content`` in a worker thread.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

from bimmaild.sync import headers as header_fields

SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject", "Message-ID", "Reply-To")
# Longer than the index's fields (a To of 500 recipients is legitimate), still bounded.
MAX_SHOWN = 64 * 1024


def summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "folder": row["folder"],
        "uid": row["uid"],
        "message_id": row["message_id"],
        "date": row["sent_at"],
        "from": row["sender"],
        "to": row["recipients"],
        "subject": row["subject"],
        "size": row["size"],
        "flags": row["flags"].split(),
        "origin": row["origin"],
        "pending": row["pending"] is not None,
    }


def content(raw: bytes) -> dict[str, Any]:
    """Headers, the text body (plain preferred, else HTML) and the attachments."""
    found = header_fields.fields(raw, [name.lower() for name in SHOWN_HEADERS])
    headers = {}
    for name in SHOWN_HEADERS:
        value = header_fields.text(found.get(name.lower()), MAX_SHOWN)
        if value is not None:
            headers[name] = value
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # the email package raises many types on broken input (RecursionError too)
        return {"headers": headers, "text": None, "attachments": []}
    assert isinstance(message, EmailMessage)
    return {"headers": headers, "text": _text(message), "attachments": _attachments(message)}


def _text(message: EmailMessage) -> str | None:
    """The body as text, best-effort: in its declared charset (bad bytes replaced), or — when
    none is declared, or one that does not exist — as UTF-8, else Windows-1252.

    Not ``get_content()``: it raises on a charset that does not exist and turns
    undeclared 8-bit text into U+FFFD.
    """
    try:
        body = message.get_body(preferencelist=("plain", "html"))
        if body is None:
            return None
        payload = body.get_payload(decode=True)
        charset = body.get_content_charset()
    except Exception:
        return None
    if not isinstance(payload, bytes):
        return None
    if charset and charset != "us-ascii":
        try:
            return payload.decode(charset, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):  # no such (text) codec: guess
            pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("cp1252", "replace")


def _attachments(message: EmailMessage) -> list[dict[str, Any]]:
    found = []
    try:
        for part in message.iter_attachments():
            payload = part.get_payload(decode=True)
            found.append(
                {
                    "filename": part.get_filename(),
                    "content_type": part.get_content_type(),
                    "size": len(payload) if isinstance(payload, bytes) else 0,
                }
            )
    except Exception:  # a broken MIME tree: list what could be read
        return found
    return found
