"""Modified UTF-7, the encoding of IMAP mailbox names (RFC 3501 §5.1.3).

Servers list folders in this form (``Éléments envoyés`` arrives as
``&AMk-l&AOk-ments envoy&AOk-s``) and expect it back in every command that
names a folder, so the sync keeps both: the wire name to talk to the server,
the decoded name to show to the user and to match well-known folder names
(R-C1).

The rules: printable ASCII (0x20–0x7e) stands for itself, except ``&`` which
is ``&-``; every other character is UTF-16BE in base64 with ``,`` instead of
``/``, without padding, between ``&`` and ``-``.  ``decode`` is strict (it
raises ValueError on anything an encoder must not produce: an unclosed shift,
bad base64, non-zero padding bits, a lone surrogate, a shift that encodes
printable ASCII, raw 8-bit or control characters) because a name that does
not decode cleanly must not be shown as if it did: the caller falls back to
the wire name.  Adjacent shifts (``&AOk-&AOk-``) are accepted: they are not
canonical but unambiguous.
"""

from __future__ import annotations

import binascii
import re

# A run of characters that cannot stand for themselves.
_SHIFTED = re.compile(r"[^\x20-\x7e]+")
_BASE64 = re.compile(r"[A-Za-z0-9+,]*")


def _is_direct(ch: str) -> bool:
    return "\x20" <= ch <= "\x7e"


def encode(name: str) -> str:
    """The wire form of a mailbox name; ValueError for a lone surrogate (not text)."""

    def shift(match: re.Match[str]) -> str:
        try:
            utf16 = match.group().encode("utf-16-be")
        except UnicodeEncodeError:
            raise ValueError(f"{name!r} contains a lone surrogate and cannot be encoded") from None
        b64 = binascii.b2a_base64(utf16, newline=False).rstrip(b"=").replace(b"/", b",")
        return "&" + b64.decode("ascii") + "-"

    return _SHIFTED.sub(shift, name.replace("&", "&-"))


def decode(wire: str) -> str:
    """The text of a wire name; ValueError when it is not valid modified UTF-7."""
    out: list[str] = []
    pos = 0
    while True:
        amp = wire.find("&", pos)
        direct = wire[pos:] if amp < 0 else wire[pos:amp]
        if not all(map(_is_direct, direct)):
            raise ValueError(f"{wire!r}: raw non-ASCII or control character outside a &…- shift")
        out.append(direct)
        if amp < 0:
            return "".join(out)
        end = wire.find("-", amp + 1)
        if end < 0:
            raise ValueError(f"{wire!r}: '&' at offset {amp} is not closed by '-'")
        out.append("&" if end == amp + 1 else _decode_shift(wire, wire[amp + 1 : end]))
        pos = end + 1


def _decode_shift(wire: str, b64: str) -> str:
    if not _BASE64.fullmatch(b64):
        raise ValueError(f"{wire!r}: {b64!r} is not modified base64")
    # Valid lengths leave fewer than 6 spare bits, all zero: 8n, 8n+3 or 8n+6 characters.
    if len(b64) % 8 not in (0, 3, 6):
        raise ValueError(f"{wire!r}: {b64!r} does not encode whole UTF-16 units")
    std = b64.replace(",", "/")
    raw = binascii.a2b_base64(std + "=" * (-len(std) % 4))
    if binascii.b2a_base64(raw, newline=False).rstrip(b"=").decode("ascii") != std:
        raise ValueError(f"{wire!r}: {b64!r} has non-zero padding bits")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError:
        raise ValueError(f"{wire!r}: {b64!r} encodes a lone UTF-16 surrogate") from None
    if any(map(_is_direct, text)):
        raise ValueError(f"{wire!r}: {b64!r} encodes printable ASCII, which must stand for itself")
    return text
