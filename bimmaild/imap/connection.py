"""The one module that owns aioimaplib (pinned ==2.0.3; see DESIGN.md §6).

aioimaplib gives us the command/response machinery; this adapter (with the
protocol fixes of ``protocol``) adds what a mail daemon needs and the library
lacks:

* a staged connection: TCP, then TLS (implicit, or STARTTLS after the
  greeting, refusing to go on if STARTTLS is not offered: never a downgrade),
  so a caller can tell which stage failed;
* AUTHENTICATE PLAIN with SASL-IR (UTF-8 passwords), LOGIN with the user
  quoted too, and an answer to a SASL error challenge (aioimaplib leaves it
  unanswered and the command hangs);
* a timeout around every call, and on connection loss every pending command
  fails at once instead of hanging forever (aioimaplib does not fail them);
* no answer dropped: ``uid_search`` reads ESEARCH answers too, and EXPUNGE /
  VANISHED reports that no method returns are kept per mailbox until a caller
  takes them (``take_vanished``, ``take_expunged``).

Callers see only the exceptions of this module and ``ssl``/``OSError`` from
the TLS and TCP stages.  Any failure means "this connection is dead": close
it, reconnect, resume from stored state.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aioimaplib import aioimaplib as lib

from bimmaild.imap.errors import (
    AuthenticationFailed,
    CommandFailed,
    ImapConnectionLost,
    ImapError,
    ImapProtocolError,
    ImapTimeout,
    LoginDisabled,
    StartTlsUnavailable,
)
from bimmaild.imap.parse import (
    FetchItem,
    ListEntry,
    MailboxState,
    ParseError,
    parse_list,
    parse_search,
    parse_select,
    parse_status,
    parse_uid_set,
)
from bimmaild.imap.protocol import ImapProtocol, SearchCommand, StreamingFetch
from bimmaild.oauth import sasl

__all__ = [
    "AuthenticationFailed",
    "CommandFailed",
    "ImapConnection",
    "ImapConnectionLost",
    "ImapError",
    "ImapProtocolError",
    "ImapTimeout",
    "LoginDisabled",
    "StartTlsUnavailable",
    "TlsInfo",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class TlsInfo:
    version: str | None
    cipher: str | None
    peer_certificate: bytes | None  # DER


_SEARCH_ANSWER = re.compile(rb"E?SEARCH(?:[ \t]|$)", re.IGNORECASE)
_COPYUID = re.compile(rb"\[COPYUID \d+ ([0-9:,]+) ([0-9:,]+)\]")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_NAMESPACE = re.compile(rb'^\(\("([^"]*)" (?:"((?:[^"\\]|\\.)*)"|NIL)\)')


def copyuid(lines: list[bytes | bytearray]) -> dict[int, int]:
    """Old UID -> new UID from a COPYUID response code (UIDPLUS), wherever it came."""
    for line in lines:
        match = _COPYUID.search(bytes(line))
        if match:
            old = parse_uid_set(match.group(1).decode())
            new = parse_uid_set(match.group(2).decode())
            return dict(zip(old, new, strict=False))
    return {}


def _items(lines: list[bytes | bytearray]) -> list[list[bytes | bytearray]]:
    """Group response lines into items: a literal and the text after it belong to the line before."""
    items: list[list[bytes | bytearray]] = []
    glue = False
    for line in lines:
        if isinstance(line, bytearray) or (glue and items):
            items[-1].append(line)
        else:
            items.append([line])
        glue = isinstance(line, bytearray)
    return items


def _drain(queue: asyncio.Queue[list[bytes]]) -> list[bytes]:
    """Every line of the batches waiting in an IDLE queue, in order."""
    lines: list[bytes] = []
    while not queue.empty():
        lines += [bytes(line) for line in queue.get_nowait() if line != lib.STOP_WAIT_SERVER_PUSH[0]]
    return lines


def _text(response: lib.Response) -> str:
    last = response.lines[-1] if response.lines else b""
    return bytes(last).decode("utf-8", "replace")


def quote(value: str) -> str:
    """An IMAP quoted string (RFC 3501 §4.3); refuses CR/LF/NUL."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot be sent in an IMAP quoted string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapConnection:
    """One IMAP connection, opened stage by stage; see the module docstring."""

    def __init__(self, protocol: ImapProtocol, transport: asyncio.Transport, host: str, timeout: float) -> None:
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = 0
        self.timeout = timeout
        self.enabled: set[str] = set()  # extensions turned on by ENABLE (QRESYNC changes EXPUNGE to VANISHED)
        self._writable: str | None = None  # the mailbox selected read-write (SELECT, not EXAMINE)

    # -- opening -------------------------------------------------------------

    @classmethod
    async def open(
        cls, host: str, port: int, security: str, context: ssl.SSLContext | None, timeout: float = DEFAULT_TIMEOUT
    ) -> ImapConnection:
        """TCP, TLS as configured, greeting: ready to log in."""
        conn = await cls.connect_tcp(host, port, timeout)
        try:
            if security == "ssl":
                assert context is not None
                await conn.start_tls(context)
            await conn.wait_greeting()
            if security == "starttls":
                assert context is not None
                await conn.starttls(context)
        except Exception:
            await conn.aclose()
            raise
        except BaseException:
            conn.close()  # cancelled: do not wait
            raise
        return conn

    @classmethod
    async def connect_tcp(
        cls, host: str, port: int, timeout: float = DEFAULT_TIMEOUT, *, address: str | None = None
    ) -> ImapConnection:
        """TCP only; ``address`` (already resolved) is used when given, ``host`` stays the TLS name."""
        loop = asyncio.get_running_loop()
        protocol = ImapProtocol(loop)
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(lambda: protocol, address or host, port)
        except TimeoutError:
            raise ImapTimeout("TCP connect") from None
        conn = cls(protocol, transport, host, timeout)
        conn.port = port  # OAUTHBEARER names it
        return conn

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Wrap the connection in TLS now (implicit TLS, or after STARTTLS's OK)."""
        loop = asyncio.get_running_loop()
        # Bytes received before the handshake are plaintext: never let them count.
        self.protocol.reset_buffer()
        try:
            async with asyncio.timeout(self.timeout):
                tls = await loop.start_tls(self.transport, self.protocol, context, server_hostname=self.host)
        except TimeoutError:
            raise ImapTimeout("TLS handshake") from None
        if tls is None:
            raise ImapConnectionLost("the connection closed during the TLS handshake")
        self.transport = tls
        self.protocol.transport = tls

    async def wait_greeting(self) -> None:
        """The server's greeting, then its capabilities."""
        greeted = asyncio.ensure_future(self.protocol.greeted.wait())
        lost = asyncio.ensure_future(self.protocol.lost.wait())
        try:
            done, _ = await asyncio.wait({greeted, lost}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            greeted.cancel()
            lost.cancel()
        if greeted not in done:
            if lost in done:
                raise ImapConnectionLost(f"connection closed before the greeting: {self.protocol.lost_reason}")
            raise ImapTimeout("greeting")
        line = self.protocol.greeting_line
        if line.startswith(b"* BYE"):
            raise CommandFailed("greeting", "BYE", line[5:].decode("utf-8", "replace").strip())
        if not line.startswith((b"* OK", b"* PREAUTH")):
            raise ImapProtocolError(f"the server does not speak IMAP; it said {line[:80]!r}")
        # aioimaplib's greeting handler asks for CAPABILITY; wait for it to finish.
        await self._call("greeting", self.protocol.wait("AUTH|NONAUTH"))
        if not self.protocol.capabilities:
            await self._call("CAPABILITY", self.protocol.capability())

    async def starttls(self, context: ssl.SSLContext) -> None:
        if "STARTTLS" not in self.protocol.capabilities:
            raise StartTlsUnavailable("the server does not offer STARTTLS")
        response = await self._execute("STARTTLS")
        if response.result != "OK":
            raise CommandFailed("STARTTLS", response.result, _text(response))
        await self.start_tls(context)
        # RFC 3501 §6.2.1: capabilities learnt before TLS must be discarded.
        self.protocol.capabilities = set()
        await self._call("CAPABILITY", self.protocol.capability())

    # -- commands ------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(c.upper() for c in self.protocol.capabilities)

    @property
    def tls_info(self) -> TlsInfo | None:
        obj = self.transport.get_extra_info("ssl_object")
        if not isinstance(obj, ssl.SSLObject):
            return None
        cipher = obj.cipher()
        return TlsInfo(obj.version(), cipher[0] if cipher else None, obj.getpeercert(binary_form=True))

    @property
    def auth_mechanisms(self) -> list[str]:
        return sorted(c[5:] for c in self.capabilities if c.startswith("AUTH="))

    async def login(self, user: str, password: str) -> None:
        """AUTHENTICATE PLAIN when offered with SASL-IR (UTF-8 safe), else LOGIN."""
        caps = self.capabilities
        if "AUTH=PLAIN" in caps and "SASL-IR" in caps:
            raw = b"\0" + user.encode() + b"\0" + password.encode()
            ir = base64.b64encode(raw).decode("ascii")
            response = await self._execute("AUTHENTICATE", "PLAIN", ir, scrub=ir)
        elif "LOGINDISABLED" in caps:
            raise LoginDisabled("the server refuses clear-text login on this connection")
        else:
            response = await self._execute("LOGIN", quote(user), quote(password), scrub=quote(password))
        if response.result != "OK":
            raise AuthenticationFailed("LOGIN", response.result, _text(response))
        await self._logged_in()

    async def login_oauth(self, user: str, token: str, *, mechanism: str | None = None) -> str:
        """AUTHENTICATE with an OAuth2 access token: OAUTHBEARER (RFC 7628) when offered, else
        XOAUTH2 (Gmail, Outlook).  Returns the mechanism used; ``mechanism`` forces one (tests)."""
        caps = self.capabilities
        if mechanism is None:
            mechanism = next((m for m in ("OAUTHBEARER", "XOAUTH2") if f"AUTH={m}" in caps), None)
            if mechanism is None:
                raise LoginDisabled("the server offers no OAuth2 login (AUTH=OAUTHBEARER or AUTH=XOAUTH2)")
        if mechanism == "OAUTHBEARER":
            ir = sasl.oauthbearer(user, token, self.host, self.port)
        else:
            ir = sasl.xoauth2(user, token)
        if "SASL-IR" in caps:
            response = await self._execute("AUTHENTICATE", mechanism, ir, scrub=ir)
        else:  # the initial response goes after the server's first (empty) challenge
            self.protocol.sasl_response = ir.encode("ascii")
            try:
                response = await self._execute("AUTHENTICATE", mechanism)
            finally:
                self.protocol.sasl_response = None
        if response.result != "OK":
            raise AuthenticationFailed("AUTHENTICATE", response.result, _text(response))
        await self._logged_in()
        return mechanism

    async def _logged_in(self) -> None:
        async with self.protocol.state_condition:
            self.protocol.state = lib.AUTH
            self.protocol.state_condition.notify_all()
        self.protocol.capabilities = set()
        await self._call("CAPABILITY", self.protocol.capability())

    async def list_folders(self) -> list[bytes]:
        """Raw LIST lines (without the final status line)."""
        response = await self._call("LIST", self.protocol.simple_command("LIST", '""', '"*"'))
        if response.result != "OK":
            raise CommandFailed("LIST", response.result, _text(response))
        return [bytes(line) for line in response.lines[:-1]]

    async def list_entries(self) -> list[ListEntry]:
        """Every mailbox, with its SPECIAL-USE attributes (RFC 6154) when the server has them, and
        ``\\Subscribed`` (RFC 5258) when it has LIST-EXTENDED: see ``subscribed_known``."""
        args = ['""', '"*"']
        wanted = (("SPECIAL-USE", {"SPECIAL-USE", "LIST-EXTENDED"}), ("SUBSCRIBED", {"LIST-EXTENDED"}))
        options = [option for option, needs in wanted if needs & self.capabilities]
        if options:
            args += ["RETURN", f"({' '.join(options)})"]
        response = await self._checked("LIST", *args, untagged="LIST")
        parts = _items(response.lines[:-1])
        return [parse_list([b"LIST " + bytes(item[0]), *item[1:]]) for item in parts]

    async def enable(self, *capabilities: str) -> set[str]:
        """ENABLE (RFC 5161), valid before any SELECT; returns what the server enabled."""
        response = await self._checked("ENABLE", *capabilities, untagged="ENABLED")
        words = {w.upper() for line in response.lines[:-1] for w in bytes(line).decode("ascii", "replace").split()}
        enabled = words & {c.upper() for c in capabilities}
        self.enabled |= enabled
        return enabled

    async def select(
        self,
        mailbox: str,
        *,
        condstore: bool = False,
        readonly: bool = False,
        qresync: tuple[int, int] | None = None,
    ) -> MailboxState:
        """SELECT (or EXAMINE) a mailbox given in wire form (quoted by the caller).

        ``qresync`` = (UIDVALIDITY, MODSEQ) of the last complete sync, once QRESYNC is
        enabled: the answer then carries what vanished and what changed since
        (``MailboxState.vanished``/``changed``) — unless UIDVALIDITY changed.
        """
        if qresync is not None:
            args = [mailbox, f"(QRESYNC ({qresync[0]} {qresync[1]}))"]
        else:
            args = [mailbox, "(CONDSTORE)"] if condstore else [mailbox]
        try:
            response = await self._checked("EXAMINE" if readonly else "SELECT", *args)
        except CommandFailed:
            self.protocol.mailbox = self._writable = None  # a failed SELECT leaves none selected (RFC 3501 §6.3.1)
            raise
        self.protocol.mailbox = mailbox
        self._writable = None if readonly else mailbox
        async with self.protocol.state_condition:
            self.protocol.state = lib.SELECTED
            self.protocol.state_condition.notify_all()
        return parse_select([bytes(line) for line in response.lines])

    async def status(self, mailbox: str, items: str = "(MESSAGES UIDNEXT UIDVALIDITY)") -> dict[str, int]:
        response = await self._checked("STATUS", mailbox, items, untagged="STATUS")
        lines = [line for line in response.lines[:-1] if isinstance(line, bytes)]
        if not lines:
            raise ImapProtocolError("STATUS answered without a STATUS line")
        return parse_status(b"STATUS " + lines[-1])[1]

    async def uid_search(self, criteria: str) -> list[int]:
        """UID SEARCH: the UIDs found, from a SEARCH answer or an ESEARCH one (``RETURN (ALL) …``,
        RFC 4731: its ALL set).  An OK with neither line is a protocol error, never "no match"."""
        command = SearchCommand(self.protocol.new_tag(), criteria, prefix="UID", loop=self.protocol.loop)
        response: lib.Response = await self._call("SEARCH", self.protocol.execute(command))
        if response.result != "OK":
            raise CommandFailed("SEARCH", response.result, _text(response))
        lines = [bytes(line) for line in response.lines[:-1] if isinstance(line, bytes)]
        if not any(_SEARCH_ANSWER.match(line) for line in lines):
            raise ImapProtocolError(f"UID SEARCH answered OK without a SEARCH or ESEARCH line: {_text(response)}")
        try:
            return parse_search(lines)
        except ParseError as exc:
            raise ImapProtocolError(f"unparsable SEARCH answer: {exc}") from None

    # -- removals the server reported (EXPUNGE, QRESYNC's VANISHED) ------------

    @property
    def selected(self) -> str | None:
        """The selected mailbox, as given to ``select`` (wire form); None when none is."""
        return self.protocol.mailbox

    async def ensure_selected(self, mailbox: str) -> None:
        """SELECT ``mailbox`` (read-write) unless it is selected so already: a journal replay of many
        entries on one folder costs one SELECT, not one each."""
        if self._writable != mailbox:
            await self.select(mailbox)

    @property
    def vanished(self) -> list[tuple[int, int]]:
        """UID ranges reported gone from the selected mailbox and not taken yet.

        With QRESYNC enabled a server reports every expunge as ``VANISHED uid-set``: the answer
        to our UID EXPUNGE or MOVE, another client's expunge announced during a FETCH, STORE,
        COPY, SEARCH or NOOP, ``VANISHED (EARLIER)`` of a FETCH with the VANISHED modifier.
        All of those are kept here; IDLE's pushes and SELECT's own ``VANISHED (EARLIER)`` are
        not (``idle`` and ``select`` return them).
        """
        kept = self.protocol.removals.get(self.protocol.mailbox)
        return list(kept.vanished) if kept is not None else []

    @property
    def expunged(self) -> list[int]:
        """Message sequence numbers of ``EXPUNGE`` reports for the selected mailbox, in the order
        sent (each shifts the later numbers down), not taken yet; kept as ``vanished`` is."""
        kept = self.protocol.removals.get(self.protocol.mailbox)
        return list(kept.expunged) if kept is not None else []

    def take_vanished(self, mailbox: str | None = None) -> list[tuple[int, int]]:
        """The ``vanished`` ranges of ``mailbox`` (default: the selected one), forgotten here.

        Reports stay under the mailbox selected when they came, so a caller that selects
        another mailbox first can still take them by name."""
        kept = self.protocol.removals.get(mailbox if mailbox is not None else self.protocol.mailbox)
        if kept is None:
            return []
        ranges = kept.vanished
        kept.vanished_lines = []
        return ranges

    def take_expunged(self, mailbox: str | None = None) -> list[int]:
        """The ``expunged`` sequence numbers of ``mailbox`` (default: the selected one), forgotten here."""
        kept = self.protocol.removals.get(mailbox if mailbox is not None else self.protocol.mailbox)
        if kept is None:
            return []
        numbers, kept.expunged = kept.expunged, []
        return numbers

    async def noop(self) -> list[bytes]:
        """NOOP: the server's chance to report changes; returns its untagged lines (``3 EXISTS``,
        ``2 EXPUNGE``, ``VANISHED 4``, ``1 FETCH (FLAGS …)`` …).  Removals are also kept (``vanished``)."""
        response = await self._checked("NOOP")
        return [bytes(line) for line in response.lines[:-1]]

    async def uid_move(self, uids: str, mailbox: str) -> dict[int, int]:
        """UID MOVE (RFC 6851); returns old UID -> new UID from COPYUID when the server gives it."""
        response = await self._checked("MOVE", uids, mailbox, prefix="UID")
        return copyuid(response.lines)

    async def uid_copy(self, uids: str, mailbox: str) -> dict[int, int]:
        response = await self._checked("COPY", uids, mailbox, prefix="UID")
        return copyuid(response.lines)

    async def uid_store(self, uids: str, action: str, flags: str) -> None:
        await self._checked("STORE", uids, action, flags, prefix="UID", untagged="FETCH")

    async def uid_expunge(self, uids: str) -> None:
        """UID EXPUNGE (UIDPLUS): removes only these messages, never another client's \\Deleted ones."""
        if "UIDPLUS" not in self.capabilities:
            raise CommandFailed("UID EXPUNGE", "NO", "the server lacks UIDPLUS")
        await self._checked("EXPUNGE", uids, prefix="UID")

    async def namespace_prefix(self) -> tuple[str, str | None]:
        """The personal namespace's prefix and delimiter (RFC 2342), ("", None) when unknown."""
        if "NAMESPACE" not in self.capabilities:
            return "", None
        response = await self._checked("NAMESPACE", untagged="NAMESPACE")
        for line in response.lines[:-1]:
            match = _NAMESPACE.match(bytes(line))
            if match:
                delimiter = match.group(2).decode() if match.group(2) is not None else None
                return match.group(1).decode("utf-8", "replace"), delimiter
        return "", None

    async def uid_fetch(
        self, uids: str, attributes: str, on_item: Callable[[FetchItem], None], *, inactivity: float | None = None
    ) -> int:
        """UID FETCH, streaming each item to ``on_item``; returns how many items came.

        ``inactivity`` (default: the connection timeout) limits the silence between
        two chunks, not the whole download.
        """
        command = StreamingFetch(
            self.protocol.new_tag(),
            uids,
            attributes,
            on_item=on_item,
            loop=self.protocol.loop,
            timeout=inactivity or self.timeout,
        )
        try:
            response = await self.protocol.execute(command)
        except lib.CommandTimeout:
            raise ImapTimeout("UID FETCH") from None
        if response.result != "OK":
            raise CommandFailed("UID FETCH", response.result, _text(response))
        return command.items

    async def idle(self, seconds: float) -> list[bytes]:
        """IDLE (RFC 2177) until the server pushes something or ``seconds`` pass, then DONE.

        Returns every untagged line pushed until the IDLE ended (``3 EXISTS``, ``2 EXPUNGE``,
        ``VANISHED 5``, ``1 FETCH (FLAGS …)``, ``OK Still here`` …), also those that came
        after the first ones while DONE was on its way; [] after a quiet period.  A lost
        connection raises at once (no hanging idle).
        """
        if "IDLE" not in self.capabilities:
            raise CommandFailed("IDLE", "NO", "the server does not offer IDLE")
        queue = self.protocol.idle_queue
        pushed = _drain(queue)  # left by an IDLE that did not end normally
        command = lib.IdleCommand(self.protocol.new_tag(), queue, loop=self.protocol.loop)
        running = asyncio.ensure_future(self.protocol.execute(command))
        try:
            if not await self._first(self.protocol.wait_for_idle_response(), running, self.timeout):
                raise ImapTimeout("IDLE start")
            got = asyncio.ensure_future(queue.get())
            try:
                if await self._first(got, running, seconds):
                    pushed += [bytes(line) for line in got.result()]
            finally:
                got.cancel()
            if not self.protocol.lost.is_set():
                self.protocol.idle_done()
            await self._call("IDLE end", asyncio.shield(running))
        finally:
            running.cancel()
        # What came after the first push: flushed to the queue, or still in the command's buffer
        # when the tagged OK was in the same read (the library flushes only while IDLE runs).
        pushed += _drain(queue)
        pushed += [bytes(line) for line in command.buffer]
        command.buffer.clear()
        return pushed

    async def _first(self, awaitable: Any, running: asyncio.Future[Any], seconds: float) -> bool:
        """True when ``awaitable`` finished first; raises if the connection died or the command ended."""
        waiter = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self.protocol.lost.wait())
        try:
            done, _ = await asyncio.wait({waiter, lost, running}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiter.done():
                waiter.cancel()
            lost.cancel()
        if lost in done or (running in done and running.exception() is not None):
            raise ImapConnectionLost(f"connection lost during IDLE: {self.protocol.lost_reason}")
        return waiter in done

    async def append(self, mailbox: str, message: bytes, flags: str = "(\\Seen)") -> tuple[int, int] | None:
        """APPEND ``message``; returns (UIDVALIDITY, UID) from APPENDUID (UIDPLUS) when the server gives it.

        The literal is sent after the server's continuation (aioimaplib writes
        it from ``literal_data``); the time allowed grows with the size, at
        64 KB/s at worst, so a big message on a slow link is not cut short.
        """
        self.protocol.literal_data = message
        command = lib.Command(
            "APPEND", self.protocol.new_tag(), mailbox, flags, f"{{{len(message)}}}", loop=self.protocol.loop
        )
        try:
            response: lib.Response = await self._call(
                "APPEND", self.protocol.execute(command), timeout=self.timeout + len(message) / 65536
            )
        finally:
            self.protocol.literal_data = None  # refused before the continuation: nothing left to send
        if response.result != "OK":
            raise CommandFailed("APPEND", response.result, _text(response))
        for line in response.lines:
            match = _APPENDUID.search(bytes(line))
            if match:
                return int(match.group(1)), int(match.group(2))
        return None

    async def create(self, mailbox: str) -> None:
        await self._checked("CREATE", mailbox)

    @property
    def subscribed_known(self) -> bool:
        """Whether ``list_entries`` marks subscribed folders (else only LSUB can tell)."""
        return "LIST-EXTENDED" in self.capabilities

    async def subscribed(self, pattern: str) -> list[ListEntry]:
        """LSUB: the subscribed folders matching ``pattern`` (quoted by the caller)."""
        response = await self._checked("LSUB", '""', pattern, untagged="LSUB")
        return [parse_list([b"LIST " + bytes(item[0]), *item[1:]]) for item in _items(response.lines[:-1])]

    async def subscribe(self, mailbox: str) -> None:
        await self._checked("SUBSCRIBE", mailbox)

    async def logout(self) -> None:
        """LOGOUT, then close; errors are irrelevant by then."""
        try:
            if not self.protocol.lost.is_set():
                await asyncio.wait_for(self.protocol.logout(), min(self.timeout, 5.0))
        except (ImapError, lib.AioImapException, TimeoutError, OSError):
            pass
        finally:
            await self.aclose()

    def close(self) -> None:
        """Close at once, without waiting (cancellation): the socket is released now, with no TLS
        goodbye — ``transport.close()`` would wait for the server's, and a loop ending meanwhile
        would leave the socket to the garbage collector.  Otherwise prefer ``aclose``."""
        self.transport.abort()

    async def aclose(self) -> None:
        """Close and wait until the socket is really closed.

        ``transport.close()`` only schedules it: a caller whose event loop ends
        right after would leave the socket open until garbage collection.
        """
        self.transport.close()
        try:
            async with asyncio.timeout(2.0):
                await self.protocol.lost.wait()
        except TimeoutError:
            self.transport.abort()

    async def _execute(
        self, name: str, *args: str, scrub: str | None = None, prefix: str | None = None, untagged: str | None = None
    ) -> lib.Response:
        command = lib.Command(
            name, self.protocol.new_tag(), *args, prefix=prefix, untagged_resp_name=untagged, loop=self.protocol.loop
        )
        response: lib.Response = await self._call(name, self.protocol.execute(command, scrub=scrub))
        return response

    async def _checked(
        self, name: str, *args: str, prefix: str | None = None, untagged: str | None = None
    ) -> lib.Response:
        """Execute and raise CommandFailed unless the answer is OK."""
        response = await self._execute(name, *args, prefix=prefix, untagged=untagged)
        if response.result != "OK":
            raise CommandFailed(name, response.result, _text(response))
        return response

    async def _call(self, what: str, awaitable: Any, *, timeout: float | None = None) -> Any:
        if self.protocol.lost.is_set():
            awaitable.close()
            raise ImapConnectionLost(f"connection lost before {what}: {self.protocol.lost_reason}")
        try:
            async with asyncio.timeout(timeout or self.timeout):
                return await awaitable
        except TimeoutError:
            raise ImapTimeout(what) from None
        except lib.CommandTimeout:
            raise ImapTimeout(what) from None
        except lib.Error as exc:
            raise ImapProtocolError(str(exc)) from None
