"""The control socket is private to its user: modes, peer uid, stale and hostile paths."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from bimmailctl.client import Client
from bimmaild.control.server import StartupError
from bimmaild.protocol.codec import Request, Response, encode, parse
from bimmaild.protocol.errors import ErrorCode
from tests.helpers import RunningDaemon, daemon_config, start_daemon, stop_daemon

NOBODY = 65534


def test_socket_and_directory_modes(daemon: RunningDaemon) -> None:
    st = daemon.socket_path.lstat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(daemon.socket_path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(daemon.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((daemon.data_dir / "bimmail.sqlite3").stat().st_mode) == 0o600


def _connect_as(uid: int, path: Path) -> socket.socket:
    """Connect with another effective uid: the kernel records the credentials in
    effect at connect(2) time for SO_PEERCRED, and checks file modes with them."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.seteuid(uid)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.seteuid(0)
    return sock


@pytest.mark.skipif(os.getuid() != 0, reason="switching to another uid needs root (CI runs as root)")
async def test_other_uid_is_refused_by_modes_and_by_peer_check(daemon: RunningDaemon, client: Client) -> None:
    # Layer 1: the 0700 directory and 0600 socket keep another user out.
    with pytest.raises(PermissionError):
        _connect_as(NOBODY, daemon.socket_path)
    # Layer 2: even with the modes opened up, the daemon checks SO_PEERCRED.
    daemon.socket_path.parent.chmod(0o755)
    daemon.socket_path.chmod(0o666)
    for parent in daemon.socket_path.parents:  # the test's temp dirs must be traversable
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    sock = _connect_as(NOBODY, daemon.socket_path)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    writer.write(encode(Request(1, "hello", {"protocol": 1})))
    header = await asyncio.wait_for(reader.readexactly(4), 5)
    response = parse(await reader.readexactly(int.from_bytes(header, "big")))
    assert isinstance(response, Response) and response.error is not None
    assert response.error["code"] == ErrorCode.PERMISSION_DENIED
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and closed
    writer.close()
    assert (await client.call("status"))["pid"] == os.getpid()  # we are still served


async def test_stale_socket_is_replaced(short_dir: Path, tmp_path: Path) -> None:
    config = daemon_config(short_dir, tmp_path)
    config.socket_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(config.socket_path))  # bound, never listening: what a crash leaves
    dead.close()
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as c:
            assert (await c.call("status"))["socket"] == str(config.socket_path)
    finally:
        await stop_daemon(running)
    assert not config.socket_path.exists(), "a clean stop removes the socket"


async def test_live_daemon_is_not_replaced(daemon: RunningDaemon, tmp_path: Path, client: Client) -> None:
    other = daemon_config(daemon.socket_path.parent.parent, tmp_path / "other")
    with pytest.raises(StartupError, match="already serving"):
        await start_daemon(other)
    assert (await client.call("status"))["pid"] == os.getpid()


async def test_same_data_dir_is_refused(daemon: RunningDaemon, short_dir: Path) -> None:
    from bimmaild.daemon import DaemonConfig

    config = DaemonConfig(data_dir=daemon.data_dir, socket_path=short_dir / "second.sock", secret_backend="file")
    with pytest.raises(StartupError, match="already uses the data dir"):
        await start_daemon(config)


@pytest.mark.parametrize("kind", ["symlink", "regular-file"])
async def test_non_socket_at_socket_path_is_never_touched(short_dir: Path, tmp_path: Path, kind: str) -> None:
    config = daemon_config(short_dir, tmp_path)
    config.socket_path.parent.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    if kind == "symlink":
        config.socket_path.symlink_to(victim)
    else:
        config.socket_path.write_text("precious")
    with pytest.raises(StartupError, match="not a socket"):
        await start_daemon(config)
    assert victim.read_text() == "precious"
    assert config.socket_path.is_symlink() == (kind == "symlink")


async def test_socket_dir_of_someone_else_is_refused(short_dir: Path, tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.fail("needs root to create a directory owned by another uid (CI runs as root)")
    config = daemon_config(short_dir, tmp_path)
    config.socket_path.parent.mkdir(mode=0o777)
    os.chown(config.socket_path.parent, NOBODY, NOBODY)
    with pytest.raises(StartupError, match="belongs to uid"):
        await start_daemon(config)


async def test_loose_default_socket_dir_is_tightened(short_dir: Path, tmp_path: Path) -> None:
    config = daemon_config(short_dir, tmp_path)
    config.socket_path.parent.mkdir(mode=0o755)
    config.socket_path.parent.chmod(0o755)
    running = await start_daemon(config)
    try:
        assert stat.S_IMODE(config.socket_path.parent.stat().st_mode) == 0o700
    finally:
        await stop_daemon(running)


def test_peer_credentials_are_read_from_the_kernel() -> None:
    from bimmaild.control.server import peer_credentials

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        pid, uid, gid = peer_credentials(a)
        assert (pid, uid, gid) == (os.getpid(), os.getuid(), os.getgid())
    finally:
        a.close()
        b.close()


async def test_symlinked_socket_directory_is_refused(short_dir: Path, tmp_path: Path) -> None:
    """A planted symlink in place of the socket's directory would put the socket (and its lock)
    where someone else chose: refused, nothing created there."""
    config = daemon_config(short_dir, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o777)
    config.socket_path.parent.symlink_to(elsewhere)
    with pytest.raises(StartupError, match="not a directory"):
        await start_daemon(config)
    assert list(elsewhere.iterdir()) == []
