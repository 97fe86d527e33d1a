"""Crash safety of synchronisation (R-C7): interrupted anywhere, a restart ends with every server
message stored exactly once, Maildir and index in agreement.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.store import maildir
from tests.helpers import daemon_config, spawn_daemon, start_daemon, stop_daemon
from tests.servers.dovecot import ImapUser
from tests.servers.fixtures import MailServers
from tests.sync.test_sync import make_message


@functools.cache
def big_inbox() -> tuple[bytes, ...]:
    """100 MB in 1,200 messages, built once per run (the email package is slow at this)."""
    return tuple(make_message(i, attachment=60_000) for i in range(1200))


def check_store(data_dir: Path, user: ImapUser, folders: dict[str, int]) -> None:
    """Index = server = Maildir: one row and one file per server message, nothing half-written."""
    db = sqlite3.connect(data_dir / "bimmail.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for folder, expected in folders.items():
            rows = db.execute(
                "SELECT m.uid, m.filename, m.message_id, f.maildir, f.account_id FROM messages m "
                "JOIN folders f ON f.id = m.folder_id WHERE f.name = ?",
                (folder,),
            ).fetchall()
            assert len(rows) == expected, folder
            assert len({r["message_id"] for r in rows}) == expected, "no duplicate"
            directory = data_dir / "mail" / str(rows[0]["account_id"]) / rows[0]["maildir"]
            on_disk = sorted(p.name for p in (directory / "cur").iterdir())
            assert on_disk == sorted(r["filename"] for r in rows)
            assert not list((directory / "tmp").iterdir())
    finally:
        db.close()


async def add_and_fetch(socket_path: Path, servers: MailServers, *, wait: bool) -> dict[str, Any]:
    async with await Client.connect(socket_path) as client:
        if not (await client.call("account.list")):
            await client.call("account.add", {**servers.account_params(), "test": False})
        result: dict[str, Any] = await client.call("fetch", {"wait": wait})
        return result


@pytest.mark.parametrize("delay", [0.15, 0.4, 0.8, 1.3])
async def test_sigkill_during_initial_sync(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers, delay: float
) -> None:
    user = mail_servers.user
    user.deliver_many(list(big_inbox()))
    user.deliver_many([make_message(i, folder="Sent") for i in range(5000, 5100)], "Sent")
    sock, data = short_dir / "d.sock", tmp_path / "data"
    process = await spawn_daemon(sock, data)
    try:
        await add_and_fetch(sock, mail_servers, wait=False)
        await asyncio.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    process = await spawn_daemon(sock, data)
    try:
        result = await add_and_fetch(sock, mail_servers, wait=True)
        assert result["accounts"][0]["state"] == "ok", result
    finally:
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    check_store(data, user, {"INBOX": 1200, "Sent": 100})


async def test_crash_between_delivery_and_commit_reindexes_without_download(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrowest window: files durable in cur/, index rows not committed.  After a restart
    they are indexed from their names; the server is not asked for them again."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(50)])
    config = daemon_config(short_dir, tmp_path)
    real_write = maildir.MaildirFolder.write_batch

    def deliver_then_crash(self: maildir.MaildirFolder, files: Any) -> list[str]:
        real_write(self, files)
        raise OSError("simulated crash right after delivery")

    monkeypatch.setattr(maildir.MaildirFolder, "write_batch", deliver_then_crash)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            await client.call("account.add", {**mail_servers.account_params(), "test": False})
            failed = (await client.call("fetch", {"wait": True}))["accounts"][0]
            assert failed["state"] == "error"
    finally:
        await stop_daemon(running)
    monkeypatch.setattr(maildir.MaildirFolder, "write_batch", real_write)
    running = await start_daemon(config)  # a new process: reconciliation runs again
    try:
        async with await Client.connect(config.socket_path) as client:
            result = (await client.call("fetch", {"wait": True}))["accounts"][0]
    finally:
        await stop_daemon(running)
    assert result["state"] == "ok"
    assert result["new"] == 0, "the 50 delivered files were indexed, not downloaded again"
    check_store(config.data_dir, user, {"INBOX": 50})
