"""Run the ctl, or raw protocol calls, as another local user (tests of the system daemon).

The daemon knows a client only by the credentials the kernel records when the
client connects (SO_PEERCRED: the effective uid and gid at ``connect()``).
This process runs as root — the venv's interpreter lives where other users
may not read it, and the ctl imports modules lazily — and takes the user's
effective uid, gid and groups for the ``connect()`` of its socket only: to
the daemon it is that user, exactly as with a real login.

    python -m tests.servers.as_user USER -- ctl ARGS…         bimmailctl ARGS as USER
    python -m tests.servers.as_user USER -- raw SOCKET JSON   JSON: [[method, params], …]; the first is the hello

``raw`` prints one JSON line per call: {"result": …} or {"error": …}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pwd
import socket
import sys
from pathlib import Path
from typing import Any

import bimmailctl.cli
from bimmailctl.client import Client
from bimmaild.protocol.errors import BimmailError

_open_unix_connection = asyncio.open_unix_connection


def connect_as(name: str) -> None:
    """Every Unix socket this process opens is connected with ``name``'s credentials."""
    entry = pwd.getpwnam(name)

    async def open_as_user(path: str, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        os.setgroups(os.getgrouplist(name, entry.pw_gid))
        os.setegid(entry.pw_gid)
        os.seteuid(entry.pw_uid)
        try:
            sock.connect(path)  # blocking is fine: a local socket, one client
        except OSError:
            sock.close()
            raise
        finally:
            os.seteuid(0)
            os.setegid(0)
            os.setgroups([0])
        return await _open_unix_connection(sock=sock, **kwargs)

    asyncio.open_unix_connection = open_as_user  # type: ignore[assignment]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def raw(socket_path: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
    reader, writer = await asyncio.open_unix_connection(socket_path)  # as the user: see connect_as
    client = Client(reader, writer, Path(socket_path))
    try:
        for method, params in calls:
            try:
                print(json.dumps({"result": _plain(await client.call(method, params))}), flush=True)
            except BimmailError as exc:
                print(json.dumps({"error": _plain(exc.to_wire())}), flush=True)
    finally:
        await client.close()


def main(argv: list[str]) -> int:
    name, separator, mode, *rest = argv
    assert separator == "--", "usage: as_user USER -- ctl|raw …"
    connect_as(name)
    if mode == "ctl":
        return bimmailctl.cli.main(rest)
    socket_path, calls = rest
    asyncio.run(raw(socket_path, [(m, p) for m, p in json.loads(calls)]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
