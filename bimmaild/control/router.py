"""Method registry and dispatch: the one place that turns exceptions into error objects.

A handler is registered explicitly under a method name declared in
``protocol.methods``; it receives the connection's session and params that
already passed the method's schema (and the method's access rule: the right
to configure, or being an administrator, R-L3), and returns a msgpack-able
result.  Any
exception it raises becomes a structured error here: a BimmailError keeps its
code and field; a full disk becomes ``storage_error``; anything else is a bug,
logged with its traceback and answered as ``internal`` without details (they
might contain something private).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bimmaild.protocol.codec import Request, Response
from bimmaild.protocol.errors import (
    BimmailError,
    HandshakeRequired,
    InternalError,
    StorageError,
    UnknownMethod,
)
from bimmaild.protocol.methods import METHODS_BY_NAME
from bimmaild.protocol.schema import validate
from bimmaild.users import Identity, Users

log = logging.getLogger(__name__)


@dataclass
class Session:
    """What the daemon knows about one client connection.

    ``peer_uid`` comes from the socket (SO_PEERCRED) and never changes;
    ``uid`` is the user the requests act for: the peer, or — for an
    administrator who asked in ``hello`` — another user.  Handlers scope
    everything to ``uid``.
    """

    peer_uid: int
    peer_pid: int
    client: str = ""
    greeted: bool = False
    topics: frozenset[str] = field(default_factory=frozenset)
    acting_uid: int | None = None

    @property
    def uid(self) -> int:
        return self.peer_uid if self.acting_uid is None else self.acting_uid

    @property
    def identity(self) -> Identity:
        return Identity(self.peer_uid, self.uid)


Handler = Callable[[Session, dict[str, Any]], Awaitable[Any]]


class Router:
    def __init__(self, users: Users) -> None:
        self.users = users
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        if name not in METHODS_BY_NAME:
            raise ValueError(f"method {name!r} is not declared in protocol.methods")
        if name in self._handlers:
            raise ValueError(f"method {name!r} registered twice")
        self._handlers[name] = handler

    @property
    def methods(self) -> list[str]:
        return sorted(self._handlers)

    async def dispatch(self, session: Session, request: Request) -> Response:
        try:
            result = await self._call(session, request)
        except BimmailError as exc:
            return Response(request.msgid, exc.to_wire(), None)
        except (sqlite3.OperationalError, OSError) as exc:
            return Response(request.msgid, self._storage_error(request.method, exc).to_wire(), None)
        except Exception:
            log.exception("internal error in %s", request.method)
            error = InternalError(f"internal error in {request.method}; details are in the daemon log")
            return Response(request.msgid, error.to_wire(), None)
        return Response(request.msgid, None, result)

    async def _call(self, session: Session, request: Request) -> Any:
        method = METHODS_BY_NAME.get(request.method)
        handler = self._handlers.get(request.method)
        if method is None or handler is None:
            raise UnknownMethod(
                # Cut before repr: repr of a 32 MiB name would be built in full (up to 4 times as big).
                f"unknown method {request.method[:100]!r}",
                field="method",
                data={"methods": self.methods},
            )
        if not session.greeted and not method.before_hello:
            raise HandshakeRequired("the first request of a connection must be 'hello'", field="method")
        params = validate(request.params, method.params)
        if method.access == "configure":
            self.users.check_configure(session.identity)
        elif method.access == "admin":
            self.users.check_admin(session.identity)
        return await handler(session, params)

    @staticmethod
    def _storage_error(method: str, exc: Exception) -> BimmailError:
        no_space = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
        if no_space or "disk" in str(exc).lower() or "readonly" in str(exc).lower():
            log.error("storage failure in %s: %s", method, exc)
            return StorageError(f"the daemon cannot write its data: {exc.__class__.__name__}: {exc}")
        log.exception("I/O error in %s", method)
        return InternalError(f"I/O error in {method}; details are in the daemon log")
