"""aioimaplib's client protocol, with its response handling fixed for real mailboxes.

aioimaplib 2.0.3 (pinned) fails on real mailboxes (DESIGN.md §6, verified
against Dovecot); each override below names the defect it removes:

* ``data_received``: the library splits a chunk into lines by recursing once
  per line and copying the tail each time: more than ~1,000 lines in one read
  raise RecursionError inside ``data_received``, the connection dies and the
  awaiting command never returns (upstream #118).  Here: one loop over a
  buffer, literals copied once.
* ``_untagged_response``: the library deletes every ``"* "`` inside the data
  (``line.replace(b"* ", b"")``), corrupting subjects and unbalancing
  parentheses; only the leading one is stripped here.  It also gives an
  untagged line only to a pending command registered under that line's name,
  so ``ESEARCH`` (the answer to ``UID SEARCH RETURN (…)``) and ``VANISHED``
  (how a QRESYNC-enabled server reports expunges, RFC 7162) were dropped, and
  ``EXPUNGE`` too unless an EXPUNGE or NOOP was running.  Here ESEARCH goes to
  the SEARCH whose tag it names; EXPUNGE and VANISHED go to the running
  command that can take them *and* are kept per mailbox in ``removals``
  (except where a method returns them itself: IDLE's pushes, SELECT's
  ``VANISHED (EARLIER)``), so no report of a removal is lost.
* ``StreamingFetch`` replaces ``FetchCommand``, whose completeness check
  rescans all lines for each new line (quadratic: 16k lines took 43 s) and
  counts parentheses inside quoted strings (#51).  It tracks the depth
  incrementally, ignores quoted strings, and hands each complete FETCH item to
  a callback instead of keeping the whole response in memory: memory stays
  bounded by one message, whatever the size of the fetch.
* ``connection_lost`` fails every pending command at once (the library leaves
  them waiting forever); ``_continuation`` answers a SASL error challenge
  (the library never does, and AUTHENTICATE hangs).

Everything else (tags, pipelining and serialisation of commands, states) is
the library's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aioimaplib import aioimaplib as lib

from bimmaild.imap.errors import ImapConnectionLost, ImapProtocolError
from bimmaild.imap.parse import FetchItem, ParseError, paren_delta, parse_fetch, vanished_ranges

log = logging.getLogger(__name__)

_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_FETCH_START = re.compile(rb"\d+ FETCH \(")
# A removal report: "12 EXPUNGE" (a message sequence number) or "VANISHED [(EARLIER)] uid-set" (QRESYNC).
_EXPUNGE = re.compile(rb"([0-9]{1,20})[ \t]+EXPUNGE[ \t]*$", re.IGNORECASE)
_VANISHED = re.compile(rb"VANISHED[ \t]", re.IGNORECASE)
_EARLIER = re.compile(rb"VANISHED[ \t]+\(EARLIER\)", re.IGNORECASE)
_ESEARCH_TAG = re.compile(rb'ESEARCH[ \t]+\([ \t]*TAG[ \t]+"([^"]*)"', re.IGNORECASE)
# The async commands that may see a removal reported while they run, in the order one is chosen
# to receive it (UID EXPUNGE is answered by it; UID FETCH/STORE/COPY/SEARCH and NOOP may carry it).
# STORE runs under the untagged name FETCH.
_REMOVAL_TAKERS = ("EXPUNGE", "FETCH", "COPY", "NOOP", "SEARCH")


@dataclass
class Removals:
    """What the server reported removed from one mailbox and nobody has taken yet."""

    vanished_lines: list[bytes] = field(default_factory=list)  # VANISHED reports, unparsed

    @property
    def vanished(self) -> list[tuple[int, int]]:
        """UID ranges, inclusive (ParseError for a malformed report)."""
        return [r for line in self.vanished_lines for r in vanished_ranges(line)]

    expunged: list[int] = field(default_factory=list)  # message sequence numbers, in the order sent (EXPUNGE)


def removal_kind(line: bytes | bytearray) -> str | None:
    """The kind of a removal report: expunge, vanished, earlier (``VANISHED (EARLIER)``); else None."""
    if _EXPUNGE.match(line):
        return "expunge"
    if _VANISHED.match(line):
        return "earlier" if _EARLIER.match(line) else "vanished"
    return None


class ImapProtocol(lib.IMAP4ClientProtocol):  # type: ignore[misc]  # untyped library
    """aioimaplib's protocol with the fixes listed in the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.lost = asyncio.Event()
        self.lost_reason: BaseException | None = None
        self.greeted = asyncio.Event()
        self.greeting_line: bytes = b""
        self.bye: str | None = None  # the text of the server's last untagged BYE: why it closes
        self.current_command: Any = None
        self._buffer = bytearray()
        # The SASL initial response to send at the first challenge (servers without SASL-IR).
        self.sasl_response: bytes | None = None
        self._literal_remaining = 0
        self._literal_owner: Any = None  # command receiving the literal being read
        self._continues: Any = None  # command that gets the rest of the line after a literal
        # The selected mailbox as the connection named it (wire form), None when none is; removal
        # reports are kept under the mailbox selected when they came (UIDs are per mailbox).
        self.mailbox: str | None = None
        self.removals: dict[str | None, Removals] = {}

    def reset_buffer(self) -> None:
        """Drop unparsed bytes: what arrives before a TLS handshake must never count after it."""
        self._buffer.clear()
        self._literal_remaining = 0

    # -- input ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                if self._literal_remaining:
                    pos = self._take_literal(buf, pos)
                    continue
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                line = bytes(buf[pos:end])
                pos = end + 2
                self._line(line)
        except Exception as exc:  # a protocol error kills this connection, never the loop
            log.error("IMAP response handling failed: %s", exc)
            self._fail_pending(ImapProtocolError(f"unreadable response from the server: {exc}"))
            if self.transport is not None:
                self.transport.abort()
        finally:
            del buf[:pos]
        if self.pending_sync_command is not None:
            self.pending_sync_command.flush()  # IDLE: hand what was pushed to its queue (as the library does)

    def _take_literal(self, buf: bytearray, pos: int) -> int:
        take = min(self._literal_remaining, len(buf) - pos)
        owner = self._literal_owner
        with memoryview(buf) as view:
            owner.append_literal_data(view[pos : pos + take])
        self._literal_remaining -= take
        if not self._literal_remaining:
            self._continues = owner
        return pos + take

    def _line(self, line: bytes) -> None:
        if self._continues is not None:
            # The text after a literal belongs to the item the literal was part of.
            cmd = self._continues
            self._continues = None
            cmd.append_to_resp(line)
        else:
            cmd = self._handle_line(line, self.current_command)
        match = _LITERAL.search(line)
        if match:
            owner = cmd if cmd is not None else lib.Command("NIL", "unused", loop=self.loop)
            owner.begin_literal_data(int(match.group(1)))
            self._literal_owner = owner
            self._literal_remaining = int(match.group(1))
            self.current_command = owner
            if not self._literal_remaining:  # {0}
                self._continues = owner
        elif cmd is not None and cmd.wait_data():
            self.current_command = cmd
        else:
            self.current_command = None

    def _handle_line(self, line: bytes, current_cmd: Any) -> Any:
        if self.state == lib.CONNECTED and line and not self.greeted.is_set():
            self.greeting_line = bytes(line)
            self.greeted.set()
            if not self.greeting_line.startswith((b"* OK", b"* PREAUTH")):
                return None  # not IMAP, or BYE: the connection reports it
        return super()._handle_line(line, current_cmd)

    def _untagged_response(self, line: bytes) -> Any:
        """The library's dispatch of an untagged line, minus its ``replace(b"* ", b"")``, plus
        ESEARCH and removal reports (module docstring).

        As in the library: a pending sync command (SELECT, MOVE, IDLE …) gets whole lines; an
        async command gets FETCH/EXPUNGE lines whole and other lines without their response
        name (``LIST``, ``STATUS``, ``CAPABILITY``) unless it keeps them (``whole_lines``).
        """
        line = line[2:] if line.startswith(b"* ") else line[1:]
        if line[:4].upper() == b"BYE ":
            self.bye = line[4:].decode("utf-8", "replace").strip()
        sync = self.pending_sync_command
        removal = removal_kind(line)
        if removal is not None and not _returned_by(sync, removal):
            self._keep_removal(line, removal)
        if sync is not None:
            sync.append_to_resp(line)
            return sync
        if removal is not None:
            command = next((c for c in map(self.pending_async_commands.get, _REMOVAL_TAKERS) if c is not None), None)
            if command is not None:
                command.append_to_resp(line)
            return command
        match = lib.message_data_re.match(line)
        if match:
            name, text = match.group(1), line
        else:
            name, _, text = line.partition(b" ")
        key = name.decode("ascii", "replace").upper()
        command = self._esearch_owner(line) if key == "ESEARCH" else self.pending_async_commands.get(key)
        if command is not None:
            command.append_to_resp(line if getattr(command, "whole_lines", False) else text)
            return command
        noop = self.pending_async_commands.get("NOOP")
        if noop is not None:
            noop.append_to_resp(line)
            return noop
        log.debug("unsolicited response ignored: %.100r", line)
        return None

    def _esearch_owner(self, line: bytes) -> Any:
        """The command an ESEARCH line answers: the one whose tag it names, else the SEARCH."""
        tag = _ESEARCH_TAG.match(line)
        if tag is None:
            return self.pending_async_commands.get("SEARCH")
        wanted = tag.group(1).decode("ascii", "replace")
        return next((c for c in self.pending_async_commands.values() if c is not None and c.tag == wanted), None)

    def _keep_removal(self, line: bytes, kind: str) -> None:
        """Keep a removal report under the selected mailbox; a VANISHED line as it came, parsed only
        when someone takes it (a malformed one must not end a connection that never reads them)."""
        kept = self.removals.setdefault(self.mailbox, Removals())
        if kind == "expunge":
            kept.expunged.append(int(line.split(None, 1)[0]))
        else:
            kept.vanished_lines.append(bytes(line))

    # -- failures ------------------------------------------------------------

    def connection_lost(self, exc: Exception | None) -> None:
        # A BYE says why (e.g. Dovecot's "Selected mailbox was deleted"): the error carries it.
        said = f" (it said: {self.bye})" if self.bye else ""
        self.lost_reason = exc or ImapConnectionLost(f"the server closed the connection{said}")
        self.lost.set()
        self._fail_pending(ImapConnectionLost(f"connection lost: {self.lost_reason}"))
        super().connection_lost(exc)

    def _fail_pending(self, error: Exception) -> None:
        for command in [self.pending_sync_command, *self.pending_async_commands.values()]:
            if command is not None and not command._event.is_set():
                command._exception = error
                command.close(b"failed", "KO")

    def _continuation(self, line: bytes) -> None:
        command = self.pending_sync_command
        if command is not None and command.name == "AUTHENTICATE":
            # A challenge after our initial response is an error report (XOAUTH2 sends
            # JSON); the empty answer makes the server finish with a tagged NO.
            assert self.transport is not None
            if self.sasl_response is not None:  # no SASL-IR: the initial response answers the first "+"
                self.transport.write(self.sasl_response + b"\r\n")
                self.sasl_response = None
            else:
                self.transport.write(b"\r\n")
            return
        super()._continuation(line)


def _returned_by(sync: Any, kind: str) -> bool:
    """Whether the running sync command hands this removal report to its caller itself: IDLE
    returns what was pushed; SELECT/EXAMINE returns its ``VANISHED (EARLIER)`` in
    ``MailboxState.vanished`` (its other removal lines are the previous mailbox's)."""
    if sync is None:
        return False
    return bool(sync.name == "IDLE" or (sync.name in ("SELECT", "EXAMINE") and kind == "earlier"))


class SearchCommand(lib.Command):  # type: ignore[misc]  # untyped library
    """A (UID) SEARCH that keeps its SEARCH and ESEARCH lines whole (``SEARCH 1 2``,
    ``ESEARCH (TAG "A1") UID ALL 1:5``), so that both forms can be read."""

    whole_lines = True

    def __init__(self, tag: str, *args: str, prefix: str | None, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__("SEARCH", tag, *args, prefix=prefix, untagged_resp_name="SEARCH", loop=loop)


class StreamingFetch(lib.Command):  # type: ignore[misc]  # untyped library
    """A (UID) FETCH whose items go to ``on_item`` as soon as each is complete.

    Only the tagged status line is kept in ``response``.  ``timeout`` is an
    inactivity timeout: it is re-armed by every line and literal chunk, so a
    large download is not cut while bytes keep arriving.
    """

    def __init__(
        self,
        tag: str,
        *args: str,
        on_item: Callable[[FetchItem], None],
        by_uid: bool = True,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
    ) -> None:
        super().__init__(
            "FETCH", tag, *args, prefix="UID" if by_uid else None, untagged_resp_name="FETCH",
            loop=loop, timeout=timeout,
        )  # fmt: skip
        self.on_item = on_item
        self._parts: list[bytes | bytearray] = []
        self._depth = 0
        self.items = 0

    def append_to_resp(self, line: bytes | bytearray, result: str = "Pending") -> None:
        if result != "Pending":
            super().append_to_resp(line, result)
            return
        self._reset_timer()
        if isinstance(line, bytearray):  # a literal's content
            self._parts.append(line)
            return
        if not self._parts and not _FETCH_START.match(line):
            log.debug("unexpected line in FETCH response ignored: %.100r", line)
            return
        self._parts.append(line)
        self._depth += paren_delta(line)
        if self._depth <= 0 and not self.wait_literal_data():
            parts, self._parts, self._depth = self._parts, [], 0
            try:
                item = parse_fetch(parts)
            except ParseError as exc:
                raise ImapProtocolError(f"unparsable FETCH item: {exc}") from None
            self.items += 1
            self.on_item(item)

    # The inactivity timeout with one timer: every chunk only notes the time, and the timer, when it
    # fires, looks at it and re-arms for what is left.  The library re-arms a timer per line and per
    # chunk (call_later + cancel): ~6 timers per message, a tenth of the event loop's time on a download.
    def _set_timer(self) -> None:
        self._last_activity = self._loop.time()
        if self._timeout is not None:
            self._timer = self._loop.call_later(self._timeout, self._check_inactivity)

    def _reset_timer(self) -> None:
        self._last_activity = self._loop.time()

    def _check_inactivity(self) -> None:
        silent = self._loop.time() - self._last_activity
        if silent >= self._timeout:
            self._timeout_callback()
        else:
            self._timer = self._loop.call_later(self._timeout - silent, self._check_inactivity)

    def begin_literal_data(self, expected_size: int, literal_data: bytes = b"") -> bytes:
        # A fresh buffer per literal: the previous one now belongs to the item's parts.
        self._resp_literal_data = bytearray()
        return super().begin_literal_data(expected_size, literal_data)  # type: ignore[no-any-return]

    def wait_data(self) -> bool:
        return self._depth > 0 or bool(self.wait_literal_data())
