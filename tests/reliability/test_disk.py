"""A full or read-only disk under the data dir (R-C7): clean refusals, server mail untouched,
recovery once space (or write access) returns.

The data dir is on a small tmpfs mounted by the test (root, as in CI), later
remounted bigger or read-only: the real filesystem errors (ENOSPC, EROFS) reach
SQLite and the Maildir code, no simulation.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bimmailctl.client import Client
from bimmaild.control.server import StartupError
from bimmaild.protocol.errors import BimmailError, ErrorCode
from bimmaild.store.db import Database
from bimmaild.store.maildir import MaildirFolder
from tests.helpers import daemon_config, start_daemon, stop_daemon
from tests.reliability.test_crash_points import check_store, server_ids
from tests.servers.fixtures import MailServers
from tests.sync.test_sync import make_message


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def remount(mount_point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount_point)], check=True)


async def test_disk_full_during_fetch_then_space_returns(
    short_dir: Path, small_disk: Path, mail_servers: MailServers
) -> None:
    user = mail_servers.user
    user.deliver_many([make_message(i, attachment=60_000) for i in range(200)])  # ~16 MB for a 6 MB disk
    config = dataclasses.replace(daemon_config(short_dir, small_disk), data_dir=small_disk / "data")
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            account = (await client.call("account.add", {**mail_servers.account_params(), "test": False}))["account"]
            [failed] = (await client.call("fetch", {"wait": True}))["accounts"]
            assert failed["state"] == "error", failed
            assert "cannot write the local store" in failed["error"] and "No space left" in failed["error"]
            assert (await client.call("status"))["accounts"]["total"] == 1  # still serving
            shown = await client.call("account.show", {"account": "Work"})
            assert shown["status"]["state"] == "error"
            assert sum(server_ids(user, "INBOX").values()) == 200  # the server is untouched

            remount(small_disk, "size=64m")
            [done] = (await client.call("fetch", {"wait": True}))["accounts"]
            assert done["state"] == "ok", done
    finally:
        await stop_daemon(running)
    check_store(config.data_dir, {account["id"]: user})


async def test_read_only_data_dir_at_start_is_a_clear_refusal(
    short_dir: Path, small_disk: Path, mail_servers: MailServers
) -> None:
    """A real read-only filesystem under the data dir (EROFS): the daemon refuses to start, says
    why, and starts normally once it is writable again, with nothing lost."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(20)])
    remount(small_disk, "size=64m")
    config = dataclasses.replace(daemon_config(short_dir, small_disk), data_dir=small_disk / "data")
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            account = (await client.call("account.add", {**mail_servers.account_params(), "test": False}))["account"]
            await client.call("fetch", {"wait": True})
    finally:
        await stop_daemon(running)
    remount(small_disk, "ro")
    with pytest.raises(StartupError) as refused:
        await start_daemon(config)
    assert "read-only" in str(refused.value).lower() or "Read-only" in str(refused.value)
    remount(small_disk, "rw")
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            assert (await client.call("fetch", {"wait": True}))["accounts"][0]["state"] == "ok"
    finally:
        await stop_daemon(running)
    check_store(config.data_dir, {account["id"]: user})


async def test_store_turning_read_only_while_running(
    client: Client, mail_servers: MailServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem that turns read-only under a running daemon (what ext4 does on an I/O error)
    cannot be produced here: Linux refuses to remount read-only while the daemon holds its files
    open for writing.  So this one is simulated at the store seam — SQLite's own error for a
    read-only database, EROFS from the Maildir — and says so.  Changes are refused with a storage
    error, the server is untouched, and everything works again once writes succeed."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(20)])
    await client.call("account.add", {**mail_servers.account_params(), "test": False})
    await client.call("fetch", {"wait": True})
    ids = [m["id"] for m in await client.call("messages.list", {"account": "Work"})][:3]

    def read_only(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    def erofs(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as patch:
        patch.setattr(Database, "transaction", read_only)
        patch.setattr(MaildirFolder, "write_batch", erofs)
        for method, params in (
            ("messages.delete", {"ids": ids}),
            ("account.modify", {"account": "Work", "name": "Renamed"}),
            ("signature.add", {"account": "Work", "name": "S", "text": "x"}),
        ):
            with pytest.raises(BimmailError) as refused:
                await client.call(method, params)
            assert refused.value.code == ErrorCode.STORAGE_ERROR, (method, refused.value)
        user.deliver_many([make_message(i) for i in range(20, 25)])
        [failed] = (await client.call("fetch", {"wait": True}))["accounts"]
        assert failed["state"] == "error" and "cannot write the local store" in failed["error"]
        assert (await client.call("account.show", {"account": "Work"}))["status"]["state"] == "error"
        assert sum(server_ids(user, "INBOX").values()) == 25 and not server_ids(user, "BIMoffice")
    await client.call("messages.delete", {"ids": ids})
    [done] = (await client.call("fetch", {"wait": True}))["accounts"]
    assert done["state"] == "ok" and done["new"] == 5
    assert sum(server_ids(user, "BIMoffice").values()) == 3
