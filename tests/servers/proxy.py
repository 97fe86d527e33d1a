"""A steerable TCP proxy for fault tests, running in the test's own event loop.

Why: a real server does not misbehave on demand.  Dovecot can be stopped or
have its clients kicked, but it cannot be told to cut a connection in the
middle of a literal, to go silent while keeping the socket open, to answer NO
to one chosen command, or to hide a capability it has (a man in the middle
stripping STARTTLS).  Placed between the daemon and the real server (Dovecot's
clear-text listener, or the SMTP server's), this proxy does those things to the
real bytes; everything else stays the server's own answers.

What it can touch: plain text only.  On a clear-text listener, and before
STARTTLS on an upgrading one, it reads the server's lines (IMAP literals are
passed through untouched, never taken for lines) and may rewrite, replace or
add some.  Once the client sends STARTTLS — or from the start when its first
bytes are a TLS handshake (an implicit-TLS port) — the bytes are opaque: they can still be cut or stalled, and what the
client sent is still recorded (``from_clients``: proof that a password never
crossed in clear), but nothing is rewritten any more.

Steering, from the test, at any time (the next bytes see the change):

* ``rewrite(pattern, replacement)``: server lines, before TLS (strip STARTTLS);
* ``answer(command, reply)``: the tagged answer to an IMAP command whose text
  matches ``command`` becomes ``<tag> <reply>`` (``NO …``, ``BAD …``);
* ``inject(command, line)``: an extra untagged line just before the tagged
  answer to a matching command (an unsolicited ``* 1 FETCH (UID 99999 …)``);
* ``cut(...)`` / ``stall(...)``: one fault at a time, on the first connection
  whose server data reaches its trigger (a server line matching ``after_line``,
  then ``after_bytes`` more bytes): ``cut`` closes both sides there, ``stall``
  stops forwarding server data (sockets kept open) until ``release()``;
* ``clear()``: back to a plain pass-through.

Ownership: each client connection is served by asyncio's handler task, which
runs two pump tasks and closes both sockets when either pump ends; ``aclose``
cancels and awaits every handler.  Nothing is left to the garbage collector:
the test suite turns ResourceWarning into errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

CHUNK = 65536
UPSTREAM_RECEIVE_BUFFER = 128 * 1024
CRLF = b"\r\n"
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
# A client's STARTTLS: "<tag> STARTTLS" (IMAP) or "STARTTLS" (SMTP).
_STARTTLS = re.compile(rb"^(?:\S+ )?STARTTLS\r\n$", re.IGNORECASE)
# Server lines that do not end an answer: IMAP untagged data, SMTP continuation lines.
_NOT_FINAL = re.compile(rb"^(?:\* |\d{3}-)")

FaultKind = Literal["cut", "stall"]


class _LinkClosed(Exception):
    """A cut ended this connection: the pump stops."""


@dataclass(eq=False)
class Fault:
    """One cut or stall, armed by ``FaultProxy.cut`` / ``FaultProxy.stall``.

    It trips once, on the first connection that reaches its trigger: the
    ``nth`` server line matching ``after_line`` (or at once without one), then
    ``after_bytes`` more bytes of server data.
    """

    kind: FaultKind
    after_line: re.Pattern[bytes] | None
    after_bytes: int
    nth: int = 1
    tripped: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    seen: int = 0  # matching lines seen so far
    left: int | None = None  # bytes still to forward before tripping; None while waiting for the line
    link: _Link | None = None  # the connection it counts on (None: the first to send data)

    def __post_init__(self) -> None:
        if self.after_line is None:
            self.left = self.after_bytes

    def sees(self, link: _Link, line: bytes) -> bool:
        """A server line went to the client; True when the fault must trip right after it."""
        if self.left is not None or self.after_line is None or not self.after_line.search(line):
            return False
        self.seen += 1
        if self.seen >= self.nth:
            self.left, self.link = self.after_bytes, link
        return self.left == 0

    def counts_on(self, link: _Link) -> bool:
        return self.left is not None and not self.tripped.is_set() and self.link in (None, link)


@dataclass(eq=False)
class _Rule:
    """A replacement answer or an injected line for IMAP commands whose text matches ``command``."""

    command: re.Pattern[bytes]
    line: bytes
    times: int | None  # None: every time

    def use(self, command: bytes) -> bool:
        if self.times == 0 or not self.command.search(command):
            return False
        if self.times is not None:
            self.times -= 1
        return True


class _Splitter:
    """Cuts one direction's byte stream into lines (CRLF kept) and opaque pieces.

    Opaque: the content of an IMAP literal (``{n}`` at a line's end announces n
    bytes), and everything once ``raw`` is set (TLS has started).
    """

    def __init__(self, literals: bool) -> None:
        self.literals = literals
        self.raw = False
        self._buffer = bytearray()
        self._literal = 0

    def pieces(self, data: bytes) -> Iterator[tuple[bytes, bool]]:
        """(bytes, is_line) in order; the consumer may set ``raw`` between two pieces."""
        buf = self._buffer
        buf += data
        while buf:
            if self.raw:
                piece = bytes(buf)
                buf.clear()
                yield piece, False
                return
            if self._literal:
                take = min(self._literal, len(buf))
                piece = bytes(buf[:take])
                del buf[:take]
                self._literal -= take
                yield piece, False
                continue
            end = buf.find(CRLF)
            if end < 0:
                return
            line = bytes(buf[: end + 2])
            del buf[: end + 2]
            match = _LITERAL.search(line) if self.literals else None
            if match:
                self._literal = int(match.group(1))
            yield line, True

    def rest(self) -> bytes:
        """What is left at end of stream (a last line without CRLF): forwarded as it is."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


class _Link:
    """One client connection and its connection to the server."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        literals: bool,
    ) -> None:
        self.client_reader, self.client_writer = client
        self.server_reader, self.server_writer = server
        self.up = _Splitter(literals)  # client -> server
        self.down = _Splitter(literals)  # server -> client
        self.plain = True  # False once TLS is under way: the server's bytes are TLS records
        self.starttls_sent = False
        self.first_data = True
        self.tags: dict[bytes, bytes] = {}  # IMAP tag -> the command's text (what follows the tag)

    def tls_from_start(self, data: bytes) -> None:
        """Implicit TLS: the client speaks first, with a TLS handshake record (type 22, version 3.x)."""
        if self.first_data and data[:1] == b"\x16" and data[1:2] == b"\x03":
            self.plain = False
            self.up.raw = self.down.raw = True
        self.first_data = False


class FaultProxy:
    """A TCP proxy to ``upstream``; see the module docstring.

    Start it with ``async with FaultProxy.start(host, port) as proxy:`` (or ``listen()``,
    then ``aclose()``) and point the client at ``proxy.host``:``proxy.port``.
    ``literals=False`` for SMTP (no ``{n}`` literals: a line ending in ``{5}`` is just
    text there).
    """

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", literals: bool = True) -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.literals = literals
        self.from_clients = bytearray()  # every byte any client sent, as it crossed the wire
        self.connections = 0  # client connections accepted so far
        self.upstream_failures = 0  # connections closed at once because the server could not be reached
        self.errors: list[BaseException] = []  # unexpected exceptions in a pump: bugs of this module
        self._rewrites: list[tuple[re.Pattern[bytes], bytes]] = []
        self._answers: list[_Rule] = []
        self._injections: list[_Rule] = []
        self._fault: Fault | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", literals: bool = True
    ) -> AsyncIterator[FaultProxy]:
        proxy = cls((upstream_host, upstream_port), host=host, literals=literals)
        await proxy.listen()
        try:
            yield proxy
        finally:
            await proxy.aclose()

    async def listen(self) -> None:
        """Accept clients on ``host``, on a free port (``start`` calls it; else call ``aclose``)."""
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    # -- steering ------------------------------------------------------------

    def rewrite(self, pattern: bytes, replacement: bytes) -> None:
        """Every server line before TLS: ``re.sub(pattern, replacement, line)``."""
        self._rewrites.append((re.compile(pattern), replacement))

    def answer(self, command: bytes, reply: bytes, *, times: int | None = None) -> None:
        """The tagged answer to commands matching ``command`` becomes ``<tag> <reply>``."""
        self._answers.append(_Rule(re.compile(command), reply, times))

    def inject(self, command: bytes, line: bytes, *, times: int | None = 1) -> None:
        """``line`` (CRLF added; it may hold a literal) goes out before the tagged answer to ``command``."""
        self._injections.append(_Rule(re.compile(command), line, times))

    def cut(self, after_bytes: int = 0, *, after_line: bytes | None = None, nth: int = 1) -> Fault:
        """Close the connection (both sides, a FIN to the client) at the trigger; see ``Fault``."""
        return self._arm("cut", after_bytes, after_line, nth)

    def stall(self, after_bytes: int = 0, *, after_line: bytes | None = None, nth: int = 1) -> Fault:
        """Stop forwarding server data at the trigger, sockets open, until ``release()``."""
        return self._arm("stall", after_bytes, after_line, nth)

    def release(self) -> None:
        """End the current fault: a stalled connection forwards what it held back, then goes on."""
        if self._fault is not None:
            self._fault.released.set()
            self._fault = None

    def clear(self) -> None:
        """A plain pass-through again (records are kept)."""
        self.release()
        self._rewrites.clear()
        self._answers.clear()
        self._injections.clear()

    def _arm(self, kind: FaultKind, after_bytes: int, after_line: bytes | None, nth: int) -> Fault:
        self.release()
        fault = Fault(kind, re.compile(after_line) if after_line is not None else None, after_bytes, nth)
        self._fault = fault
        return fault

    # -- serving -------------------------------------------------------------

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            try:
                server = await self._connect_upstream()
            except (OSError, TimeoutError):
                self.upstream_failures += 1  # the client sees its connection closed at once
                return
            link = _Link((client_reader, client_writer), server, self.literals)
            try:
                pumps = [
                    asyncio.create_task(self._pump(link, self._client_to_server)),
                    asyncio.create_task(self._pump(link, self._server_to_client)),
                ]
                try:
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for pump in pumps:
                        pump.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                await _close(server[1])
        finally:
            await _close(client_writer)
            self._handlers.discard(task)

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the server whose receive buffer stays small.

        Loopback autotuning lets the kernel buffer tens of megabytes (tcp_rmem's maximum is 32 MB
        on some hosts): a stalled proxy would silently take a whole FETCH answer off the server,
        and a server stopped "mid-answer" would already have handed everything over.  Set before
        connecting, SO_RCVBUF fixes the TCP window, so the server's writes block as on a real link.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_RECEIVE_BUFFER)
            sock.setblocking(False)
            async with asyncio.timeout(5):
                await asyncio.get_running_loop().sock_connect(sock, self.upstream)
            return await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise

    async def _pump(self, link: _Link, direction: Callable[[_Link], Awaitable[None]]) -> None:
        """One direction until EOF, a cut, or a broken socket (all of which end the link)."""
        try:
            await direction(link)
        except (_LinkClosed, ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.errors.append(exc)
            raise

    async def _client_to_server(self, link: _Link) -> None:
        while data := await link.client_reader.read(CHUNK):
            self.from_clients += data
            link.tls_from_start(data)
            for piece, is_line in link.up.pieces(data):
                if is_line:
                    if _STARTTLS.match(piece):
                        link.starttls_sent = True
                        link.up.raw = True  # what the client sends next is its TLS handshake
                    tag, _, command = piece.partition(b" ")
                    if command:
                        link.tags[tag] = command.rstrip(CRLF)
                link.server_writer.write(piece)
            await link.server_writer.drain()
        link.server_writer.write(link.up.rest())

    async def _server_to_client(self, link: _Link) -> None:
        while data := await link.server_reader.read(CHUNK):
            for piece, is_line in link.down.pieces(data):
                if not (is_line and link.plain):
                    await self._forward(link, piece, None)
                    continue
                for line in self._server_line(link, piece):
                    await self._forward(link, line, line)
                if link.starttls_sent and not _NOT_FINAL.match(piece):
                    link.plain = False  # the answer to STARTTLS: TLS records follow
                    link.down.raw = True
        if rest := link.down.rest():
            await self._forward(link, rest, None)

    def _server_line(self, link: _Link, line: bytes) -> list[bytes]:
        """The lines to send for one server line: rewritten, maybe preceded or replaced."""
        for pattern, replacement in self._rewrites:
            line = pattern.sub(replacement, line)
        tag = line.split(b" ", 1)[0]
        command = link.tags.pop(tag, None) if tag not in (b"*", b"+") else None
        if command is None:
            return [line]
        out = [rule.line + CRLF for rule in self._injections if rule.use(command)]
        replaced = next((rule for rule in self._answers if rule.use(command)), None)
        out.append(tag + b" " + replaced.line + CRLF if replaced else line)
        return out

    async def _forward(self, link: _Link, data: bytes, line: bytes | None) -> None:
        """Send ``data`` to the client, tripping the armed fault where its count ends."""
        pos = 0
        fault = self._fault
        while fault is not None and fault.counts_on(link):
            assert fault.left is not None
            fault.link = link
            take = min(fault.left, len(data) - pos)
            link.client_writer.write(data[pos : pos + take])
            pos += take
            fault.left -= take
            if fault.left:
                break  # all of ``data`` went out; the trigger is further on
            await self._trip(link, fault)
        link.client_writer.write(data[pos:])
        if line is not None and fault is not None and fault.sees(link, line):
            await self._trip(link, fault)
        await link.client_writer.drain()

    async def _trip(self, link: _Link, fault: Fault) -> None:
        await link.client_writer.drain()  # what came before the trigger reaches the client
        fault.tripped.set()
        if fault.kind == "cut":
            link.server_writer.transport.abort()
            raise _LinkClosed
        await fault.released.wait()

    async def aclose(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close and wait until the socket is closed (a peer that never reads gets it aborted)."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, ConnectionError):
        pass
    except TimeoutError:
        writer.transport.abort()


__all__ = ["Fault", "FaultProxy"]
