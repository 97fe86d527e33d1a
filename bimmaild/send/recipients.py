"""Recipient fields as the user types them, split and validated before sending (R-D1).

Each account chooses its separator (``,`` by default, ``;`` as the alternative), so the
standard library's ``getaddresses`` (comma only) cannot split the fields: this module has
its own small tokenizer that never splits inside a quoted display name, an ``<address>``
or a ``(comment)``.  The manual's "only one of two recipients got it" problem comes from a
field written with the *other* separator; such a field is refused with a hint naming the
account's ``separator`` setting instead of being sent to a mangled address.

Headers, on the other hand, are always written RFC 5322-style whatever the separator:
comma-separated, display names quoted or RFC 2047-encoded by ``email.headerregistry``.

Sans-IO: pure functions of strings; no account, store or network access.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import policy as email_policy
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Final, NamedTuple

from bimmaild.accounts.validation import email_address
from bimmaild.protocol.errors import InvalidParams

SEPARATORS: Final = (",", ";")
SETTING: Final = "separator"
"""The account setting that holds the separator, named in the wrong-separator error."""

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r'[^\s,;"()<>]+')
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_ADDRESS_LIKE = re.compile(r"[^@]@[^@]")
_WHITESPACE_CONTROLS = frozenset("\t\r\n")
_FIELD_LABELS: Final = ("To", "Cc", "Bcc")


@dataclass(frozen=True)
class Recipient:
    """One mailbox: an optional display name and a validated addr-spec."""

    display_name: str  # "" when none
    address: str  # the addr-spec, validated (local@domain)

    def __post_init__(self) -> None:
        if _has_control(self.display_name, allow_whitespace=False):
            raise ValueError(f"display name {self.display_name!r} contains control characters")
        try:
            valid = _addr_spec(self.address)
        except InvalidParams as exc:
            raise ValueError(exc.message) from None
        if valid != self.address:
            raise ValueError(f"address {self.address!r} has surrounding whitespace")

    @property
    def needs_smtputf8(self) -> bool:
        """A non-ASCII local part has no ASCII form: the message needs SMTPUTF8 (RFC 6531)."""
        return not self.address.rpartition("@")[0].isascii()

    @property
    def envelope(self) -> str:
        """The address for RCPT TO: see ``envelope_form``."""
        return envelope_form(self.address)

    def header(self) -> str:
        """The RFC 5322 form for a header, e.g. ``"Dupont, Jean" <jean@x.fr>``, on one line.

        Non-ASCII names become RFC 2047 encoded-words; a non-ASCII domain is written as its
        IDNA A-label.  Only a non-ASCII local part forces a UTF-8 header (RFC 6532).
        """
        local, _, domain = self.address.rpartition("@")
        policy = email_policy.SMTPUTF8 if self.needs_smtputf8 else email_policy.SMTP
        if not policy.utf8 and not domain.isascii():
            domain = domain.encode("idna").decode("ascii")
        # The addr-spec is a validated dot-atom: it needs no quoting.  It is not handed to the
        # email package, whose parser would decode an '=?...?=' local part as an encoded-word.
        if not self.display_name:
            return f"{local}@{domain}"
        return f"{_display_phrase(self.display_name, policy)} <{local}@{domain}>"


def _display_phrase(name: str, policy: email_policy.EmailPolicy[EmailMessage]) -> str:
    """The display name quoted or encoded by ``email.headerregistry``, unfolded."""
    if "=?" in name:  # the package would decode it, not encode it: encode the whole name
        encoded = Header(name, "utf-8").encode(linesep="\r\n")
        return encoded.replace("\r\n", "")
    placeholder = Address(name, username="x", domain="example.invalid")
    folded = str(policy.header_factory("To", [placeholder]).fold(policy=policy))
    # Unfolding is removing the CRLFs; the whitespace after each one stays (RFC 5322 2.2.3).
    phrase = folded.replace(policy.linesep, "").removeprefix("To:").rpartition("<")[0]
    return phrase.strip()


@dataclass(frozen=True)
class ParsedField:
    """The recipients of one field, in typed order without duplicates, and what to tell the user."""

    recipients: tuple[Recipient, ...]
    warnings: tuple[str, ...]  # human sentences


class RecipientError(ValueError):
    """A recipient field that cannot be sent as typed.

    ``index`` is the 0-based position of the bad entry among the field's non-empty entries
    (``None`` when no single entry is at fault); ``text`` is the offending entry as typed;
    ``field`` is ``"to"``, ``"cc"`` or ``"bcc"`` when known (set by ``parse_fields``).
    """

    def __init__(self, message: str, *, index: int | None, text: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.text = text
        self.field = field


class _Token(NamedTuple):
    kind: str  # sep, space, word, quoted, comment, angle, stray, unterminated
    value: str  # the unescaped content (quoted, comment, angle) or the text itself
    raw: str  # as typed: joined back, the tokens give the field again


def parse_field(text: str, separator: str) -> ParsedField:
    """Split one recipient field with the account's separator and validate every entry."""
    if separator not in SEPARATORS:
        raise ValueError(f"separator must be one of {SEPARATORS}, not {separator!r}")
    pieces = [piece for piece in map(_trim, _split(_tokenize(text), separator)) if piece]
    for index, piece in enumerate(pieces):
        _check_structure(piece, index)
    for index, piece in enumerate(pieces):
        _check_other_separator(piece, index, separator)
    recipients: list[Recipient] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for index, piece in enumerate(pieces):
        recipient = _parse_piece(piece, index)
        key = recipient.address.casefold()
        if key in seen:
            warnings.append(f"{recipient.address} is listed more than once; it is kept once.")
            continue
        seen.add(key)
        recipients.append(recipient)
    return ParsedField(tuple(recipients), tuple(warnings))


def parse_fields(to: str, cc: str, bcc: str, separator: str) -> tuple[ParsedField, ParsedField, ParsedField]:
    """Parse To, Cc and Bcc; warn (on the later field) when an address is in two of them.

    Both occurrences are kept, so the headers show what the user wrote; ``envelope_addresses``
    gives each address once for the SMTP envelope.  A ``RecipientError`` names its field.
    """
    parsed: list[ParsedField] = []
    first_seen: dict[str, str] = {}
    for label, text in zip(_FIELD_LABELS, (to, cc, bcc), strict=True):
        try:
            field = parse_field(text, separator)
        except RecipientError as exc:
            raise RecipientError(
                f"{label}: {exc.message}", index=exc.index, text=exc.text, field=label.lower()
            ) from None
        warnings = list(field.warnings)
        for recipient in field.recipients:
            earlier = first_seen.setdefault(recipient.address.casefold(), label)
            if earlier != label:
                warnings.append(f"{recipient.address} is in both {earlier} and {label}.")
        parsed.append(ParsedField(field.recipients, tuple(warnings)))
    return parsed[0], parsed[1], parsed[2]


def header_value(recipients: Sequence[Recipient]) -> str:
    """The value of a To/Cc header: always comma-separated (RFC 5322), whatever the separator."""
    return ", ".join(recipient.header() for recipient in recipients)


def envelope_form(address: str) -> str:
    """``address`` as SMTP carries it: a non-ASCII domain as its IDNA A-label, as the headers
    write it, so that only a non-ASCII local part needs SMTPUTF8 (RFC 6531)."""
    local, _, domain = address.rpartition("@")
    if local.isascii() and not domain.isascii():
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    return address


def envelope_addresses(*fields: ParsedField) -> tuple[str, ...]:
    """Every address once (case-insensitively, first spelling kept), in order: one RCPT TO each,
    in its envelope form."""
    seen: dict[str, str] = {}
    for field in fields:
        for recipient in field.recipients:
            seen.setdefault(recipient.envelope.casefold(), recipient.envelope)
    return tuple(seen.values())


# --- tokenizer ------------------------------------------------------------------------------


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        token = _next_token(text, position)
        tokens.append(token)
        position += len(token.raw)
    return tokens


def _next_token(text: str, start: int) -> _Token:
    char = text[start]
    if char in SEPARATORS:
        return _Token("sep", char, char)
    if char.isspace():
        space = _SPACE.match(text, start)
        assert space is not None
        return _Token("space", " ", space.group())
    if char == '"':
        return _delimited(text, start, "quoted")
    if char == "(":
        return _delimited(text, start, "comment")
    if char == "<":
        end = text.find(">", start + 1)
        if end < 0:
            return _Token("unterminated", char, text[start:])
        return _Token("angle", text[start + 1 : end], text[start : end + 1])
    if char in ">)":
        return _Token("stray", char, char)
    word = _WORD.match(text, start)
    assert word is not None
    return _Token("word", word.group(), word.group())


def _delimited(text: str, start: int, kind: str) -> _Token:
    """A quoted string or a (possibly nested) comment, with backslash escapes."""
    close = '"' if kind == "quoted" else ")"
    depth = 0
    value: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            value.append(text[position + 1])
            position += 2
            continue
        if char == close and depth == 0:
            return _Token(kind, "".join(value), text[start : position + 1])
        if kind == "comment" and char in "()":
            depth += 1 if char == "(" else -1
        value.append(char)
        position += 1
    return _Token("unterminated", text[start], text[start:])


def _split(tokens: list[_Token], separator: str) -> list[list[_Token]]:
    pieces: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == "sep" and token.value == separator:
            pieces.append([])
        else:
            pieces[-1].append(token)
    return pieces


def _trim(tokens: list[_Token]) -> list[_Token]:
    """Drop surrounding whitespace and stray separators of the other kind ('a@x.fr;' with ',')."""
    start, end = 0, len(tokens)
    while start < end and tokens[start].kind in ("space", "sep"):
        start += 1
    while end > start and tokens[end - 1].kind in ("space", "sep"):
        end -= 1
    return tokens[start:end]


def _raw(tokens: Iterable[_Token]) -> str:
    return "".join(token.raw for token in tokens)


# --- checks and parsing of one entry --------------------------------------------------------


def _error(reason: str, index: int, text: str) -> RecipientError:
    message = reason if repr(text) in reason else f"recipient {text!r}: {reason}"
    return RecipientError(message, index=index, text=text)


def _has_control(text: str, *, allow_whitespace: bool) -> bool:
    return any(
        unicodedata.category(char) == "Cc" and not (allow_whitespace and char in _WHITESPACE_CONTROLS) for char in text
    )


def _check_structure(piece: list[_Token], index: int) -> None:
    text = _raw(piece)
    for token in piece:
        if token.kind == "unterminated":
            what = {'"': 'quote (")', "(": "comment '('", "<": "angle bracket '<'"}[token.value]
            raise _error(f"unterminated {what}", index, text)
        if token.kind == "stray":
            raise _error(f"unexpected {token.value!r} without its opening pair", index, text)
    if _has_control(text, allow_whitespace=True):
        raise _error("contains control characters", index, text)


def _check_other_separator(piece: list[_Token], index: int, separator: str) -> None:
    """R-D1: refuse 'a@x.fr, b@y.fr' in a ';' account (and the reverse) rather than mangle it."""
    other = SEPARATORS[1 - SEPARATORS.index(separator)]
    if sum(map(_looks_like_address, _split(piece, other))) < 2:
        return
    raise _error(
        f"the recipients seem to be separated by {other!r} but this account's separator is {separator!r}: "
        f"separate them with {separator!r}, or change the account's {SETTING!r} setting to {other!r}",
        index,
        _raw(piece),
    )


def _looks_like_address(tokens: list[_Token]) -> bool:
    return any(
        (token.kind == "angle" and "@" in token.value) or (token.kind == "word" and _ADDRESS_LIKE.search(token.value))
        for token in tokens
    )


def _parse_piece(piece: list[_Token], index: int) -> Recipient:
    """'addr', '<addr>', 'Name <addr>', '"Quoted, Name" <addr>' or 'addr (Name)'."""
    text = _raw(piece)
    angles = [position for position, token in enumerate(piece) if token.kind == "angle"]
    if len(angles) > 1:
        raise _error("more than one <address> in one entry; separate the recipients", index, text)
    if not angles:  # the old 'addr (Name)' form: the comments are the name
        address = _validate(_raw(token for token in piece if token.kind != "comment").strip(), index, text)
        return Recipient(" ".join(" ".join(token.value for token in piece if token.kind == "comment").split()), address)
    angle = angles[0]
    if any(token.kind not in ("space", "comment") for token in piece[angle + 1 :]):
        raise _error("unexpected text after the closing '>'", index, text)
    return Recipient(_phrase(piece[:angle]), _validate(piece[angle].value, index, text))


def _addr_spec(value: str) -> str:
    """``email_address``, plus no space or control character anywhere: it strips around the domain."""
    value = email_address(value)
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
        raise InvalidParams(f"{value!r} must not contain spaces or control characters", field="email")
    return value


def _validate(address: str, index: int, text: str) -> str:
    try:
        return _addr_spec(address)
    except InvalidParams as exc:
        reason = exc.message
    name, _, last = address.rpartition(" ")
    if name.strip() and _ADDRESS_LIKE.search(last):
        reason += f"; to give a name, write it as: {name.strip()} <{last}>"
    raise _error(reason, index, text)


def _phrase(tokens: list[_Token]) -> str:
    """The display name: words and quoted strings, comments as spaces, encoded-words decoded."""
    parts: list[str] = []
    previous_encoded = pending_space = False
    for token in tokens:
        if token.kind in ("space", "comment"):
            pending_space = bool(parts)
            continue
        value, encoded = _decode_word(token.value) if token.kind == "word" else (token.value, False)
        if pending_space and not (previous_encoded and encoded):  # RFC 2047 6.2
            parts.append(" ")
        parts.append(value)
        previous_encoded, pending_space = encoded, False
    return " ".join("".join(parts).split())


def _decode_word(word: str) -> tuple[str, bool]:
    """An RFC 2047 encoded-word (as ``header()`` writes them) decoded; anything else as is."""
    if not _ENCODED_WORD.fullmatch(word):
        return word, False
    try:
        [(data, charset)] = decode_header(word)
        if isinstance(data, bytes) and isinstance(charset, str):
            decoded = data.decode(charset, errors="replace")
            if not _has_control(decoded, allow_whitespace=True):
                return decoded, True
    except (HeaderParseError, LookupError, ValueError):
        pass
    return word, False
