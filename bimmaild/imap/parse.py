"""Sans-IO parsers for the IMAP responses the sync reads (R-C1, R-C2).

The connection (``protocol.py``) frames the server's bytes into response
items and hands them here; nothing in this module does I/O, so every rule can
be tested with literal bytes from real servers.  An item arrives as *parts*,
text segments (without the leading ``"* "``) alternating with literal
contents; ``tokens.py`` turns them into nested values in one linear pass, and
the functions here give those values their meaning: FETCH items (every
message of a sync goes through ``parse_fetch``), LIST entries and their
folder names (modified UTF-7 decoded by ``mutf7``), STATUS, SELECT, SEARCH and
ESEARCH, VANISHED, sequence sets, and the quoting of a mailbox argument.

Every malformed input raises ParseError (a ValueError) with a short excerpt:
the caller treats it as "this connection speaks nonsense", never as data.
Anything this module does not need (ENVELOPE, BODYSTRUCTURE, X-GM-LABELS,
unknown response codes) is parsed only far enough to be skipped.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bimmaild.imap import mutf7
from bimmaild.imap.tokens import (
    ParseError,
    Value,
    astring,
    excerpt,
    flag_list,
    is_word,
    number,
    paren_delta,
    parse_parts,
)

__all__ = [
    "MAX_SET_SIZE",
    "FetchItem",
    "ListEntry",
    "MailboxState",
    "ParseError",
    "display_name",
    "mailbox_name",
    "paren_delta",
    "parse_fetch",
    "parse_list",
    "parse_search",
    "parse_select",
    "parse_status",
    "parse_uid_set",
    "quote_mailbox",
    "uid_set",
    "uids_in_ranges",
    "vanished_ranges",
]


# -- FETCH ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One FETCH response item (R-C2).  Attributes the server did not send are None."""

    seq: int
    uid: int | None
    flags: tuple[str, ...] | None
    size: int | None  # RFC822.SIZE
    internal_date: str | None  # as sent, without quotes
    modseq: int | None
    # Upper case, single spaces, BODY.PEEK[…] answered as BODY[…]: "BODY[]",
    # "BODY[HEADER.FIELDS (MESSAGE-ID)]", "BODY[]<0>" for a partial fetch.  A NIL body is left out.
    sections: dict[str, bytes]


_WHOLE_MESSAGE = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT"})


def parse_fetch(parts: Sequence[bytes | bytearray]) -> FetchItem:
    """One ``n FETCH (…)`` item, given as parts (see the module docstring)."""
    seq, attributes = _fetch_frame(parse_parts(parts))
    uid = size = modseq = None
    flags = None
    date = None
    sections: dict[str, bytes] = {}
    for i in range(0, len(attributes), 2):
        name, value = attributes[i], attributes[i + 1]
        if not isinstance(name, str):
            raise ParseError(f"FETCH attribute name expected, got {name!r}")
        key = name.upper()
        if key == "UID":
            uid = number(value, key)
        elif key == "FLAGS":
            flags = flag_list(value, key)
        elif key == "MODSEQ":
            modseq = _modseq(value)
        elif key == "RFC822.SIZE":
            size = number(value, key)
        elif key == "INTERNALDATE":
            date = None if value is None else astring(value, key)
        elif ("[" in key and not key.startswith("BINARY.SIZE")) or key in _WHOLE_MESSAGE:
            if isinstance(value, bytes):
                sections[_section_key(key)] = value
            elif value is not None:
                raise ParseError(f"{name}: expected a string, a literal or NIL, got {value!r}")
        # Anything else (ENVELOPE, BODYSTRUCTURE, X-GM-…) is already parsed: skipped.
    return FetchItem(seq, uid, flags, size, date, modseq, sections)


def _fetch_frame(top: list[Value]) -> tuple[int, list[Value]]:
    if top and top[0] == "*":  # tolerated
        top = top[1:]
    if len(top) != 3 or not is_word(top[1], "FETCH") or not isinstance(top[2], list):
        raise ParseError(f"not a FETCH item: {excerpt(repr(top))}")
    attributes = top[2]
    if len(attributes) % 2:
        raise ParseError(f"FETCH attribute without a value: {excerpt(repr(attributes))}")
    return number(top[0], "FETCH message number"), attributes


def _modseq(value: Value) -> int:
    if not isinstance(value, list) or len(value) != 1:
        raise ParseError(f"MODSEQ: expected (number), got {value!r}")
    return number(value[0], "MODSEQ")


def _section_key(key: str) -> str:
    """``BODY.PEEK[header.fields  ( Message-ID )]`` → ``BODY[HEADER.FIELDS (MESSAGE-ID)]``."""
    if ".PEEK[" in key:
        key = key.replace(".PEEK[", "[", 1)
    if '"' in key:
        key = key.replace('"', "")  # a quoted header name is the same name
    if " " in key or "\t" in key:
        key = " ".join(key.split()).replace("( ", "(").replace(" )", ")")
    return key


# -- LIST, STATUS ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One folder of a LIST (or LSUB) answer (R-C1)."""

    attributes: frozenset[str]  # as sent, e.g. "\\HasNoChildren", "\\Sent"; case preserved
    delimiter: str | None
    wire_name: str  # exactly as on the wire (modified UTF-7), unquoted; "INBOX" normalised
    name: str  # decoded (mutf7.decode; the wire name when that fails)


def parse_list(parts: Sequence[bytes | bytearray]) -> ListEntry:
    """``LIST (attributes) delimiter name [extended data]``, without the leading ``"* "``."""
    top = parse_parts(parts)
    if not 4 <= len(top) <= 5 or not is_word(top[0], "LIST", "LSUB", "XLIST"):
        raise ParseError(f"not a LIST line: {excerpt(parts[0] if parts else b'')}")
    _, attributes, delimiter, name, *extended = top
    if extended and not isinstance(extended[0], list):
        raise ParseError(f"LIST: unexpected {extended[0]!r} after the name")
    if delimiter is not None:
        delimiter = astring(delimiter, "LIST delimiter")
        if len(delimiter) != 1:
            raise ParseError(f"LIST: the delimiter {delimiter!r} is not one character")
    wire_name = mailbox_name(name, "LIST")
    return ListEntry(frozenset(flag_list(attributes, "LIST attributes")), delimiter, wire_name, display_name(wire_name))


def mailbox_name(value: Value, what: str) -> str:
    """A mailbox astring as its wire text; INBOX is case-insensitive (RFC 3501 §5.1)."""
    wire_name = astring(value, what)
    return "INBOX" if len(wire_name) == 5 and wire_name.upper() == "INBOX" else wire_name


def display_name(wire_name: str) -> str:
    """The decoded name of a wire name; the wire name itself when it is not modified UTF-7.

    Servers with UTF8=ACCEPT (or broken ones) send UTF-8: that is shown as is.  Bytes
    that are not UTF-8 either become U+FFFD, so that the name is always valid text.
    """
    try:
        return mutf7.decode(wire_name)
    except ValueError:
        return wire_name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def parse_status(line: bytes | bytearray) -> tuple[str, dict[str, int]]:
    """``STATUS name (MESSAGES 3 UIDNEXT 10 …)`` → (wire name, {"MESSAGES": 3, …}).

    Items whose value is a list (MAILBOXID, RFC 8474) are left out.
    """
    top = parse_parts([line])
    if len(top) != 3 or not is_word(top[0], "STATUS") or not isinstance(top[2], list) or len(top[2]) % 2:
        raise ParseError(f"not a STATUS line: {excerpt(line)}")
    items = top[2]
    counts: dict[str, int] = {}
    for i in range(0, len(items), 2):
        name, value = items[i], items[i + 1]
        if not isinstance(name, str):
            raise ParseError(f"STATUS item name expected, got {name!r}")
        if not isinstance(value, list):
            counts[name.upper()] = number(value, name)
    return mailbox_name(top[1], "STATUS"), counts


# -- SELECT ---------------------------------------------------------------------


@dataclass
class MailboxState:
    """What SELECT or EXAMINE says about a folder (R-C2: the sync's starting point)."""

    exists: int | None = None
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    nomodseq: bool = False
    permanent_flags: tuple[str, ...] | None = None
    # QRESYNC (RFC 7162), SELECT with a known UIDVALIDITY and MODSEQ: what vanished and what
    # changed since, so that a resync needs neither a UID list nor a flags scan.
    vanished: list[tuple[int, int]] = field(default_factory=list)  # UID ranges, inclusive
    changed: list[FetchItem] = field(default_factory=list)


_EXISTS = re.compile(rb"([0-9]{1,20})[ \t]+EXISTS\b", re.IGNORECASE)
# "OK [CODE args] text", or the tagged line's text "[CODE] text".
_CODE = re.compile(rb"(?:OK[ \t]+)?\[([A-Za-z0-9.-]+)(?:[ \t]+([^\]]*))?\]", re.IGNORECASE)
_NUMBER_CODES = {b"UIDVALIDITY": "uidvalidity", b"UIDNEXT": "uidnext", b"HIGHESTMODSEQ": "highestmodseq"}
_FETCH_LINE = re.compile(rb"[0-9]{1,20}[ \t]+FETCH[ \t]", re.IGNORECASE)


def parse_select(lines: Sequence[bytes | bytearray]) -> MailboxState:
    """The state from the untagged lines of SELECT/EXAMINE (each without ``"* "``).

    Unknown lines are ignored; a known response code with a malformed value is a
    ParseError.  ``OK [CLOSED]`` (QRESYNC, RFC 7162) ends the previous folder's
    responses: what came before it is forgotten.  ``VANISHED (EARLIER)`` and
    ``FETCH`` lines (a QRESYNC SELECT's report of changes) are collected.
    """
    state = MailboxState()
    for line in lines:
        exists = _EXISTS.match(line)
        if exists:
            state.exists = int(exists.group(1))
            continue
        if line[:9].upper() == b"VANISHED ":
            state.vanished += vanished_ranges(line)
            continue
        if _FETCH_LINE.match(line):
            state.changed.append(parse_fetch([line]))
            continue
        code = _CODE.match(line)
        if not code:
            continue
        name, args = code.group(1).upper(), (code.group(2) or b"").strip()
        if name in _NUMBER_CODES:
            if not args.isdigit() or len(args) > 20:
                raise ParseError(f"{name.decode()}: expected a number in {excerpt(line)}")
            setattr(state, _NUMBER_CODES[name], int(args))
        elif name == b"NOMODSEQ":
            state.nomodseq = True
        elif name == b"PERMANENTFLAGS":
            state.permanent_flags = flag_list(_single(args, "PERMANENTFLAGS"), "PERMANENTFLAGS")
        elif name == b"CLOSED":
            state = MailboxState()
    return state


def _single(text: bytes, what: str) -> Value:
    values = parse_parts([text])
    if len(values) != 1:
        raise ParseError(f"{what}: expected one value, got {excerpt(text)}")
    return values[0]


# -- SEARCH, VANISHED, sequence sets -------------------------------------------------

_MODSEQ_SUFFIX = re.compile(rb"\(\s*MODSEQ\s+\d+\s*\)\s*\Z", re.IGNORECASE)
_ESEARCH_TAG = re.compile(rb'\A\s*\(\s*TAG\s+"[^"]*"\s*\)', re.IGNORECASE)


def parse_search(lines: Sequence[bytes | bytearray]) -> list[int]:
    """Sorted unique numbers from SEARCH and ESEARCH lines; other lines are ignored.

    ``SEARCH 1 2 (MODSEQ 9)`` is CONDSTORE's form; ESEARCH contributes its ALL set
    (no ALL means no match, RFC 4731).
    """
    found: set[int] = set()
    for line in lines:
        word, _, rest = bytes(line).strip().partition(b" ")
        word = word.upper()
        if word == b"SEARCH":
            found.update(_search_numbers(_MODSEQ_SUFFIX.sub(b"", rest)))
        elif word == b"ESEARCH":
            tokens = _ESEARCH_TAG.sub(b"", rest).split()
            for i, token in enumerate(tokens[:-1]):
                if token.upper() == b"ALL":
                    found.update(parse_uid_set(tokens[i + 1].decode("ascii", "replace")))
    return sorted(found)


def _search_numbers(text: bytes) -> list[int]:
    numbers = text.split()
    if numbers and (not b"".join(numbers).isdigit() or max(map(len, numbers)) > 20):
        raise ParseError(f"SEARCH: expected numbers, got {excerpt(text)}")
    return [int(n) for n in numbers]


def uid_set(uids: Iterable[int]) -> str:
    """The compressed IMAP sequence set of ``uids``, ascending: [1,2,3,5] → "1:3,5"."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an IMAP sequence set cannot be empty")
    if ordered[0] < 1:
        raise ValueError(f"UIDs are positive; got {ordered[0]}")
    ranges: list[str] = []
    start = previous = ordered[0]
    for uid in ordered[1:]:
        if uid != previous + 1:
            ranges.append(f"{start}:{previous}" if previous != start else str(start))
            start = uid
        previous = uid
    ranges.append(f"{start}:{previous}" if previous != start else str(start))
    return ",".join(ranges)


_SET_ELEMENT = re.compile(r"([0-9]{1,20}|\*)(?::([0-9]{1,20}|\*))?")
MAX_SET_SIZE = 10_000_000


def parse_uid_set(text: str, *, max_uid: int | None = None, limit: int = MAX_SET_SIZE) -> list[int]:
    """Expand a sequence set ("1:3,7:5,9") into sorted unique numbers.

    ``*`` stands for ``max_uid`` (ValueError without it).  A set of more than
    ``limit`` numbers is a ParseError, so that a broken server's ``1:4294967295``
    cannot exhaust memory.
    """
    found: set[int] = set()
    for element in text.split(","):
        match = _SET_ELEMENT.fullmatch(element)
        if not match:
            raise ParseError(f"not an IMAP sequence set: {excerpt(text)}")
        low, high = (_set_number(n, max_uid) for n in (match.group(1), match.group(2) or match.group(1)))
        low, high = min(low, high), max(low, high)
        if high - low >= limit - len(found):
            raise ParseError(f"sequence set {excerpt(text)} has more than {limit} numbers")
        found.update(range(low, high + 1))
    return sorted(found)


def _set_number(text: str, max_uid: int | None) -> int:
    if text == "*":
        if max_uid is None:
            raise ValueError("'*' in a sequence set needs max_uid")
        return max_uid
    value = int(text)
    if value < 1:
        raise ParseError("0 is not a valid message number or UID")
    return value


_VANISHED = re.compile(rb"VANISHED(?:[ \t]+\(EARLIER\))?[ \t]+([0-9:,]+)[ \t\r\n]*", re.IGNORECASE)


def vanished_ranges(line: bytes | bytearray) -> list[tuple[int, int]]:
    """The UID ranges of ``VANISHED [(EARLIER)] set`` (QRESYNC, RFC 7162), not expanded.

    RFC 7162 lets a server that kept no expunge history answer ``VANISHED
    (EARLIER) 1:4000000000`` (every UID that is not there now); ranges cost
    nothing whatever their width, and the caller tests its own UIDs against them.
    """
    match = _VANISHED.fullmatch(line)
    if not match:
        raise ParseError(f"not a VANISHED line: {excerpt(line)}")
    ranges = []
    for element in match.group(1).decode("ascii").split(","):
        found = _SET_ELEMENT.fullmatch(element)
        if not found or "*" in element:
            raise ParseError(f"not a UID set: {excerpt(line)}")
        low, high = (_set_number(n, None) for n in (found.group(1), found.group(2) or found.group(1)))
        ranges.append((min(low, high), max(low, high)))
    return ranges


def uids_in_ranges(uids: Iterable[int], ranges: Sequence[tuple[int, int]]) -> list[int]:
    """Those of ``uids`` that some range covers, ascending (a binary search each)."""
    ordered = sorted(ranges)
    lows = [low for low, _ in ordered]
    highest: list[int] = []  # highest[i]: the greatest upper bound among ranges 0..i (they may overlap)
    for _, high in ordered:
        highest.append(max(high, highest[-1]) if highest else high)
    found = []
    for uid in sorted(uids):
        i = bisect.bisect_right(lows, uid) - 1
        if i >= 0 and highest[i] >= uid:
            found.append(uid)
    return found


def quote_mailbox(wire_name: str) -> str:
    """The mailbox argument of a command: a quoted string (RFC 3501 §4.3).

    ``wire_name`` is already in wire form (modified UTF-7, or UTF-8 with UTF8=ACCEPT).
    """
    if any(ch in wire_name for ch in "\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot be sent in a mailbox name")
    return '"' + wire_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
