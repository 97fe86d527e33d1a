"""One client connection: read frames, dispatch requests, write responses and events.

Lifetimes: everything a connection starts (request tasks, the event pump)
lives in its own TaskGroup, so closing the connection ends them all and
nothing outlives it.  Requests before ``hello`` are handled one at a time, so
the handshake is settled before anything else runs; after it, up to
``MAX_IN_FLIGHT`` requests run concurrently and may be answered in any order
(clients match responses by msgid).

Faults stay local: a malformed or oversized frame is answered with an error
and closes this connection only; an unknown method or bad params is answered
and the connection goes on.  Events go through a bounded queue; a client that
does not read them fast enough is disconnected instead of growing our memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bimmaild.control.router import Router, Session
from bimmaild.events import EventBus
from bimmaild.protocol.codec import (
    HEADER_SIZE,
    MAX_FRAME,
    MAX_HELLO_FRAME,
    MAX_REQUEST_VALUES,
    Notification,
    Request,
    Response,
    encode,
    frame_length,
    parse,
)
from bimmaild.protocol.errors import BimmailError, FrameTooLarge, InternalError, ProtocolError

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 16
EVENT_QUEUE_SIZE = 1024
# A client that starts a frame must finish it within this time.
FRAME_BODY_TIMEOUT = 30.0
# How long a connection we close for cause may still flush its last frame.
LINGER_SECONDS = 1.0


async def close_gracefully(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close after our last frame without losing it to a reset.

    Closing a socket whose receive buffer still holds unread client bytes makes
    the kernel reset the connection, and the client may never read the error we
    just sent.  So: shut down our side, discard what the client still sends for
    a moment, then close.
    """
    try:
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(LINGER_SECONDS):
            while await reader.read(65536):
                pass
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: Session,
        router: Router,
        events: EventBus,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.session = session
        self.router = router
        self.events = events
        self._write_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(EVENT_QUEUE_SIZE)
        self._closing = False

    async def serve(self) -> None:
        self.events.subscribe(self)
        try:
            async with asyncio.TaskGroup() as tasks:
                pump = tasks.create_task(self._pump_events())
                await self._read_loop(tasks)
                pump.cancel()
        finally:
            self.events.unsubscribe(self)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                self.writer.close()  # daemon shutdown: no lingering
            else:
                await close_gracefully(self.reader, self.writer)

    async def _read_loop(self, tasks: asyncio.TaskGroup) -> None:
        while not self._closing:
            request = await self._read_request()
            if request is None:
                return
            if not self.session.greeted:
                await self._handle(request)
                continue
            await self._slots.acquire()
            tasks.create_task(self._handle(request, release=True))

    async def _read_request(self) -> Request | None:
        """The next request, or None when the connection must end."""
        limit = MAX_FRAME if self.session.greeted else MAX_HELLO_FRAME
        try:
            header = await self.reader.readexactly(HEADER_SIZE)
            length = frame_length(header, limit)
            payload = await asyncio.wait_for(self.reader.readexactly(length), FRAME_BODY_TIMEOUT)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None  # the client went away, possibly mid-frame
        except TimeoutError:
            await self._send(Response(None, ProtocolError("incomplete frame: timed out").to_wire(), None))
            return None
        except FrameTooLarge as exc:
            await self._send(Response(None, exc.to_wire(), None))
            return None
        try:
            message = parse(payload, max_values=MAX_REQUEST_VALUES)
        except ProtocolError as exc:
            await self._send(Response(exc.data.get("msgid"), exc.to_wire(), None))
            return None
        if not isinstance(message, Request):
            error = ProtocolError("a client sends requests only ([0, msgid, method, params])")
            await self._send(Response(None, error.to_wire(), None))
            return None
        return message

    async def _handle(self, request: Request, *, release: bool = False) -> None:
        try:
            # The method is the client's text, up to a frame long: cut, and quoted (no forged log lines).
            log.debug("request %r #%d from uid %d", request.method[:100], request.msgid, self.session.peer_uid)
            response = await self.router.dispatch(self.session, request)
            await self._send(response)
        finally:
            if release:
                self._slots.release()

    async def _send(self, message: Response | Notification) -> None:
        try:
            data = encode(message)
        except (BimmailError, TypeError, ValueError) as exc:
            log.error("cannot encode %s: %s", type(message).__name__, exc)
            if not isinstance(message, Response):
                return
            error = InternalError("the result could not be encoded; details are in the daemon log")
            data = encode(Response(message.msgid, error.to_wire(), None))
        async with self._write_lock:
            if self.writer.is_closing():
                return
            try:
                self.writer.write(data)
                await self.writer.drain()
            except ConnectionError:
                self._closing = True

    # -- events ------------------------------------------------------------

    def offer(self, event: str, params: dict[str, Any], owner: int | None) -> None:
        """Only the events of this session's user's accounts (and the daemon's own)."""
        if event not in self.session.topics or self._closing or (owner is not None and owner != self.session.uid):
            return
        try:
            self._queue.put_nowait(Notification(event, params))
        except asyncio.QueueFull:
            log.warning("client uid %d too slow to read events; disconnecting it", self.session.peer_uid)
            self._closing = True
            self.writer.transport.abort()

    async def _pump_events(self) -> None:
        while True:
            notification = await self._queue.get()
            await self._send(notification)
