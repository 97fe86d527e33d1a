"""How a stored message is shown to clients: index fields, and the readable parts of its content.

Sans-IO (takes a row and bytes).  Parsing a hostile message must not fail:
the text falls back to None and the parts list to what could be read.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject", "Message-ID", "Reply-To")


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
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # the email package raises many types on broken input
        return {"headers": {}, "text": None, "attachments": []}
    assert isinstance(message, EmailMessage)
    headers = {}
    for name in SHOWN_HEADERS:
        value = _header(message, name)
        if value is not None:
            headers[name] = value
    return {"headers": headers, "text": _text(message), "attachments": _attachments(message)}


def _header(message: EmailMessage, name: str) -> str | None:
    try:
        value = message.get(name)
    except Exception:
        return None
    return None if value is None else str(value)


def _text(message: EmailMessage) -> str | None:
    try:
        body = message.get_body(preferencelist=("plain", "html"))
        if body is None:
            return None
        text = body.get_content()
    except Exception:
        return None
    return text if isinstance(text, str) else None


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
