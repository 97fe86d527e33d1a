"""What the index keeps of a message's header: sans-IO and never failing.

Real mail has every defect (8-bit headers, broken encoded words, charsets that
do not exist, impossible dates, bare CR line endings); a message must be
stored whatever its header looks like, so each field is decoded best-effort
— word by word, falling back to UTF-8 then Windows-1252 — or is None, and
never raises.  Only the header block is read, and only the fields asked for
(``fields``): five for the index, a few more for ``messages.show``.
"""

from __future__ import annotations

import binascii
import email.utils
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC

MAX_FIELD = 1000
MAX_HEADER_BLOCK = 256 * 1024  # read of a message without an end of header


@dataclass(frozen=True)
class Summary:
    message_id: str | None
    sent_at: str | None  # ISO 8601, UTC
    sender: str | None
    recipients: str | None
    subject: str | None


WANTED = ("message-id", "date", "from", "to", "subject")


def header_block(raw: bytes | bytearray) -> bytes:
    """The header lines, LF-terminated (CRLF and LF kept as they are; CR-only endings made LF).

    A message that has no LF at all in its first 256 KiB but has CRs uses old Mac
    line endings: without this, its whole content would read as one header line.
    A message that starts with an empty line has an empty header: its body is not read.
    """
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return b""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    if end < 0 and b"\n" not in raw[:MAX_HEADER_BLOCK] and b"\r" in raw[:MAX_HEADER_BLOCK]:
        end = raw.find(b"\r\r")
        block = bytes(raw[: end if end >= 0 else min(len(raw), MAX_HEADER_BLOCK)])
        return block.replace(b"\r", b"\n")
    return bytes(raw[: end if end >= 0 else min(len(raw), MAX_HEADER_BLOCK)])


def fields(raw: bytes | bytearray, wanted: Iterable[str] = WANTED) -> dict[str, str]:
    """The first occurrence of each wanted header (lower-case names), unfolded, as text.

    A small scanner instead of the email package: the index needs five fields
    of 20,000 messages, and this is several times faster; it also reads the
    header of a message whose MIME structure the email package cannot parse.
    8-bit header bytes are read as UTF-8, else as Windows-1252 (what such
    headers nearly always are).
    """
    names = frozenset(wanted)
    found: dict[str, str] = {}
    current: str | None = None
    for raw_line in header_block(raw).split(b"\n"):
        line = _decode_line(raw_line.rstrip(b"\r"))
        if line[:1] in (" ", "\t"):
            if current is not None:
                found[current] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        current = key if colon and key in names and key not in found else None
        if current is not None:
            found[current] = value.strip()
    return found


def summary(raw: bytes | bytearray) -> Summary:
    found = fields(raw)
    message_id = "".join(found.get("message-id", "").split())[:MAX_FIELD] or None
    return Summary(
        message_id=message_id,
        sent_at=_date(found.get("date")),
        sender=text(found.get("from")),
        recipients=text(found.get("to")),
        subject=text(found.get("subject")),
    )


def _decode_line(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("cp1252", "replace")


# An RFC 2047 encoded word.  Its text may hold spaces (broken mailers write them), not "?":
# so that each failed match stops at the next "?" and a long hostile header is scanned in linear time.
_ENCODED_WORD = re.compile(r"=\?([^?]*)\?([qQbB])\?([^?]*)\?=")
# Control characters: never useful in an index field, and harmful on a terminal (escape sequences).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def text(value: str | None, limit: int = MAX_FIELD) -> str | None:
    """A header value as readable text: encoded words decoded, whitespace collapsed, control characters dropped.

    Each encoded word is decoded on its own: one in a charset that does not exist
    (or that its bytes do not match) is read as UTF-8, else Windows-1252, instead
    of leaving the whole header raw.  Whitespace between two encoded words goes
    (RFC 2047 §6.2).
    """
    if value is None:
        return None
    decoded = _decode_words(value) if "=?" in value else value
    return " ".join(_CONTROL.sub("", decoded).split())[:limit]


def _decode_words(value: str) -> str:
    out: list[str] = []
    pos = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        if not (after_word and not gap.strip()):
            out.append(gap)
        word = _decode_word(match.group(1), match.group(2), match.group(3))
        out.append(match.group() if word is None else word)
        after_word = word is not None
        pos = match.end()
    out.append(value[pos:])
    return "".join(out)


def _decode_word(charset: str, encoding: str, payload: str) -> str | None:
    """One encoded word's text, in its charset, else UTF-8, else Windows-1252; None when its
    base64 cannot be decoded at all (the word is then kept as written)."""
    try:
        data = payload.encode("ascii")
    except UnicodeEncodeError:
        data = payload.encode("utf-8")
    if encoding in "bB":
        try:
            raw = binascii.a2b_base64(data + b"=" * (-len(data) % 4))
        except binascii.Error:
            return None
    else:
        raw = _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))
    name = charset.split("*", 1)[0].strip()  # RFC 2231 language suffix: =?utf-8*fr?…
    for candidate in (name, "utf-8"):
        try:
            return raw.decode(candidate)
        except (LookupError, UnicodeError, ValueError):
            continue
    return raw.decode("cp1252", "replace")


def _date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC).isoformat(timespec="seconds")
    except (ValueError, OverflowError):
        return None
