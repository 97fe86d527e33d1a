"""The two systemd protocols a service needs, without libsystemd.

Both are stable (systemd's PORTABILITY_AND_STABILITY): ``sd_notify`` is one
datagram to ``$NOTIFY_SOCKET``; socket activation hands listening sockets
over as fds 3… with ``$LISTEN_PID``/``$LISTEN_FDS``.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3


def notify_socket() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    return address if address and address[0] in "/@" else None


def watchdog_seconds() -> float | None:
    """The watchdog period systemd asks for (sd_watchdog_enabled semantics), or None."""
    try:
        pid = os.environ.get("WATCHDOG_PID")
        if pid is not None and int(pid) != os.getpid():
            return None
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def notify(state: str) -> bool:
    """Send e.g. "READY=1" to systemd; False when not running under a notify service."""
    address = notify_socket()
    if address is None:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
        return False
    return True


def listen_fds() -> list[int]:
    """File descriptors passed by socket activation (sd_listen_fds semantics).

    The variables are removed so that child processes do not inherit them.
    """
    try:
        if int(os.environ.get("LISTEN_PID", "")) != os.getpid():
            return []
        count = int(os.environ.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    finally:
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds


def inherited_socket() -> socket.socket | None:
    """The first socket systemd passed us, if any, as a non-blocking socket object."""
    fds = listen_fds()
    if not fds:
        return None
    if len(fds) > 1:
        log.warning("systemd passed %d sockets; using the first", len(fds))
    sock = socket.socket(fileno=fds[0])
    sock.setblocking(False)
    return sock
