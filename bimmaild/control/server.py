"""The Unix socket server: a private socket, peer-uid check, owned connections.

Socket hygiene (pueue, supervisord): the socket's directory is created 0700;
the socket is bound under a 0177 umask, so it is 0600 from its first instant;
a file lock next to it makes "is another daemon here?" race-free; a stale
socket left by a crash is removed, a live one is refused, and anything that is
not a socket (a symlink planted by someone, a regular file) is never touched.
The lock is taken and the stale socket checked first of all (``SocketClaim``):
a second daemon stops before it creates or opens anything else.
Behind the file modes, every connection's peer uid (SO_PEERCRED) must be ours —
or, in system mode, the socket is open to every local user (or a group) in a
0755 directory, and the peer uid says who each client is.

A socket inherited from systemd (LISTEN_FDS) is used as it is and never
unlinked: it belongs to the .socket unit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import grp
import logging
import os
import socket
import stat
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bimmaild.control.connection import Connection, close_gracefully
from bimmaild.control.router import Router, Session
from bimmaild.events import EventBus
from bimmaild.protocol.codec import Response, encode
from bimmaild.protocol.errors import PermissionDenied

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 512  # asyncio's default (100) resets connections in a burst of 200


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket (Linux)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` 0700, or make an existing directory of ours 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise StartupError(f"{path} belongs to uid {st.st_uid}, not to us; refusing to put the socket there")
    if stat.S_IMODE(st.st_mode) & 0o077:
        path.chmod(0o700)


def _probe_live(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


@dataclass(frozen=True)
class SharedSocket:
    """System mode: a socket every local user may connect to (0666), or only a group (0660).
    The peer's uid still decides everything: the mode only opens the door."""

    group: str | None = None

    @property
    def gid(self) -> int:
        assert self.group is not None
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise StartupError(f"no group {self.group!r} for the socket") from None


class SocketClaim:
    """The right to serve a socket path, taken before the daemon opens anything else.

    ``take`` creates the socket's directory, locks the lock file beside the socket and removes
    a stale socket, or refuses when another daemon holds the lock or answers on the socket: a
    second daemon must stop before it touches its data dir, store, outbox or servers.  ``bind``
    comes once the daemon can serve; ``release`` removes our socket (only ours) and the lock.
    """

    def __init__(self, socket_path: Path, *, private_dir: bool, shared: SharedSocket | None = None) -> None:
        self.socket_path = socket_path
        self.private_dir = private_dir
        self.shared = shared
        self._lock_fd: int | None = None
        self._bound_inode: int | None = None

    def take(self) -> None:
        path = self.socket_path
        if self.shared is not None:
            ensure_private_dir(path.parent)
            path.parent.chmod(0o755)  # others reach the socket; the lock beside it stays 0600
        elif self.private_dir:
            ensure_private_dir(path.parent)
        else:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.shared is not None and self.shared.group is not None:
            self.shared.gid  # noqa: B018 (an unknown group is refused now, not once the store is open)
        self._take_lock(path.with_name(path.name + ".lock"))
        self._clear_stale(path)

    def bind(self) -> socket.socket:
        """The listening socket, 0600 from its first instant (or the shared mode of system mode)."""
        assert self._lock_fd is not None, "bind() before take()"
        path = self.socket_path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            raise StartupError(f"cannot bind {path}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        if self.shared is None:
            path.chmod(0o600)
        else:
            if self.shared.group is not None:
                os.chown(path, -1, self.shared.gid)
            path.chmod(0o660 if self.shared.group is not None else 0o666)
        self._bound_inode = path.lstat().st_ino
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        return sock

    def release(self) -> None:
        self._unlink_own_socket()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self, lock_path: Path) -> None:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:  # a symlink planted there (ELOOP), a directory of someone else
            raise StartupError(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise StartupError(f"another bimmaild is already serving {self.socket_path}") from None
            raise
        self._lock_fd = fd

    def _clear_stale(self, path: Path) -> None:
        try:
            st = path.lstat()
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise StartupError(f"{path} exists and is not a socket; refusing to replace it")
        if _probe_live(path):
            raise StartupError(f"another bimmaild is already serving {path}")
        log.info("removing stale socket %s", path)
        path.unlink()

    def _unlink_own_socket(self) -> None:
        """Remove the socket only if it is still the one we bound (not a successor's)."""
        if self._bound_inode is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.socket_path.lstat().st_ino == self._bound_inode:
                self.socket_path.unlink()
        self._bound_inode = None


class ControlServer:
    """Serves the router on the claimed socket, or on the one systemd handed over."""

    def __init__(
        self,
        router: Router,
        events: EventBus,
        claim: SocketClaim | None,
        *,
        inherited: socket.socket | None = None,
        may_connect: Callable[[int], bool] | None = None,
    ) -> None:
        if (claim is None) == (inherited is None):
            raise ValueError("a control server serves either a claimed socket or an inherited one")
        self.router = router
        self.events = events
        self.claim = claim
        self.inherited = inherited
        self.uid = os.getuid()
        self.may_connect = may_connect or (lambda uid: uid == self.uid)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        if self.inherited is not None:
            sock = self.inherited
        else:
            assert self.claim is not None
            sock = self.claim.bind()
        # asyncio calls listen() again when it starts serving, with its own backlog (100) unless
        # told: a burst of 200 clients then left half of them with a socket that never connected
        # (recv: EINVAL), whatever bind() had set.
        kwargs: dict[str, Any] = {"sock": sock, "backlog": LISTEN_BACKLOG}
        if sys.version_info >= (3, 13):
            kwargs["cleanup_socket"] = False  # the claim unlinks our own socket; never systemd's
        self._server = await asyncio.start_unix_server(self._accept, **kwargs)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # close() ends connections by cancelling them.  The task is asyncio's
            # (start_unix_server), and Python 3.11's done-callback reports a
            # cancelled task as an error, so end it normally instead.
            if not self._closing:
                raise
        except Exception:
            log.exception("connection handler failed")
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid, uid, _gid = peer_credentials(writer.get_extra_info("socket"))
        if not self.may_connect(uid):
            log.warning("refused a connection from uid %d (pid %d)", uid, pid)
            error = PermissionDenied(f"this daemon serves uid {self.uid} only")
            with contextlib.suppress(ConnectionError):
                writer.write(encode(Response(None, error.to_wire(), None)))
                await writer.drain()
            await close_gracefully(reader, writer)
            return
        await Connection(reader, writer, Session(uid, pid), self.router, self.events).serve()

    async def close(self) -> None:
        """Stop accepting and end every connection; the socket itself goes with the claim."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
