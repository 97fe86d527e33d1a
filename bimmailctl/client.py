"""The importable client of bimmaild, for scripts, front-ends and tests.

::

    async with await Client.connect() as client:
        accounts = await client.call("account.list")
        await client.subscribe(["account.changed"])
        async for event, params in client.events():
            ...

Errors answered by the daemon are raised as the exception class of their
code (``bimmaild.protocol.errors``: NotFound, InvalidParams …, all
BimmailError), with ``.code``, ``.field`` and ``.data``.  Requests may be
issued concurrently on one client; responses are matched by msgid.

``SyncClient`` offers the same calls for code that is not async.
This module imports nothing of the daemon except its protocol package.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from types import TracebackType
from typing import Any

from bimmaild.protocol.codec import (
    HEADER_SIZE,
    MAX_FRAME,
    MAX_MSGID,
    Notification,
    Request,
    Response,
    encode,
    frame_length,
    parse,
)
from bimmaild.protocol.errors import BimmailError, ProtocolError, error_from_wire
from bimmaild.protocol.methods import PROTOCOL_VERSION
from bimmaild.protocol.paths import resolve_socket_path

CONNECT_TIMEOUT = 5.0
EVENT_BUFFER = 4096


class DaemonNotRunning(Exception):
    """Nothing answers on the socket; the message says how to start the daemon."""

    def __init__(self, socket_path: Path, reason: str) -> None:
        super().__init__(
            f"bimmaild is not running on {socket_path} ({reason}). Start it with `bimmaild` "
            "(or `make run` in a source checkout, or `systemctl --user start bimmaild`)."
        )
        self.socket_path = socket_path


class ConnectionLost(Exception):
    """The daemon closed the connection before answering."""


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._events: asyncio.Queue[Notification | None] = asyncio.Queue(EVENT_BUFFER)
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())
        self._closed_error: BaseException | None = None
        self.hello: dict[str, Any] = {}

    @classmethod
    async def connect(
        cls,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        client_name: str = "bimmailctl.Client",
        timeout: float = CONNECT_TIMEOUT,
        act_as: str | int | None = None,
    ) -> Client:
        """Connect and perform the handshake; an administrator may ``act_as`` another local user."""
        path = resolve_socket_path(socket_path)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path), limit=MAX_FRAME + HEADER_SIZE), timeout
            )
        except FileNotFoundError:
            raise DaemonNotRunning(path, "no socket") from None
        except ConnectionRefusedError:
            raise DaemonNotRunning(path, "connection refused") from None
        except TimeoutError:
            raise DaemonNotRunning(path, "timed out") from None
        except PermissionError:
            raise DaemonNotRunning(path, "permission denied on the socket") from None
        client = cls(reader, writer, path)
        try:
            hello: dict[str, Any] = {"client": client_name, "protocol": PROTOCOL_VERSION}
            if act_as is not None:
                hello["act_as"] = act_as
            client.hello = await asyncio.wait_for(client.call("hello", hello), timeout)
        except BaseException:
            await client.close()
            raise
        return client

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one request and return its result, or raise its error."""
        if self._closed_error is not None:
            raise self._closed_reason()
        msgid = next(self._ids) % (MAX_MSGID + 1)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msgid] = future
        try:
            self._writer.write(encode(Request(msgid, method, params or {})))
            try:
                await self._writer.drain()
            except ConnectionError:
                # The daemon closed first, perhaps after saying why (a refused peer): that reason
                # is what the caller needs, not the broken pipe.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._read_task), 1.0)
                raise self._closed_reason() from None
            return await future
        finally:
            self._pending.pop(msgid, None)

    def _closed_reason(self) -> BaseException:
        """Why the connection is closed: the daemon's error when it sent one."""
        if isinstance(self._closed_error, BimmailError):
            return self._closed_error
        return ConnectionLost("the connection to bimmaild is closed")

    async def subscribe(self, topics: list[str]) -> list[str]:
        result = await self.call("subscribe", {"topics": topics})
        return list(result["topics"])

    async def events(self) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Events as they arrive; ends when the connection closes."""
        while True:
            item = await self._events.get()
            if item is None:
                return
            yield item.event, item.params

    async def close(self) -> None:
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def _read_loop(self) -> None:
        error: BaseException = ConnectionLost("bimmaild closed the connection")
        try:
            while True:
                header = await self._reader.readexactly(HEADER_SIZE)
                payload = await self._reader.readexactly(frame_length(header))
                self._dispatch(parse(payload))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except BimmailError as exc:
            error = exc
        finally:
            self._closed_error = error
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            with contextlib.suppress(asyncio.QueueFull):
                self._events.put_nowait(None)

    def _dispatch(self, message: Response | Notification | Request) -> None:
        if isinstance(message, Notification):
            with contextlib.suppress(asyncio.QueueFull):  # an unread backlog drops events
                self._events.put_nowait(message)
            return
        if not isinstance(message, Response):
            raise ProtocolError("the daemon sent a request")
        future = self._pending.get(message.msgid) if message.msgid is not None else None
        if message.msgid is None and message.error is not None:
            # An error not tied to a request (refused peer, malformed frame): fails them all.
            raise error_from_wire(message.error)
        if future is None or future.done():
            return
        if message.error is not None:
            future.set_exception(error_from_wire(message.error))
        else:
            future.set_result(message.result)


class SyncClient:
    """Blocking wrapper around :class:`Client`, for scripts that are not async."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        client_name: str = "bimmailctl.SyncClient",
        act_as: str | int | None = None,
    ) -> None:
        self._runner = asyncio.Runner()
        try:
            self._client = self._runner.run(Client.connect(socket_path, client_name=client_name, act_as=act_as))
        except BaseException:
            self._runner.close()
            raise
        self.hello = self._client.hello

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self._runner.run(self._client.call(method, params))

    def close(self) -> None:
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
