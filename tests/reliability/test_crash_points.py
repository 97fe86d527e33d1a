"""SIGKILL at seeded random points, then a restart: nothing lost, nothing doubled (R-C7, R-D1).

Five scenarios, four kill points each (20 in all), drawn from one seed so that a
failure can be replayed: the initial sync of a 100 MB mailbox, an incremental sync
(new, flagged and expunged messages), deletes being moved to the trash folder,
messages being sent with their Sent copies, and an account deleted while another
one fetches.  The daemon is a real process killed with SIGKILL; after a restart
and a fetch, the invariants hold:

* every server message of every synchronised folder is stored exactly once, and
  nothing else is (Message-IDs, server vs index);
* Maildir and index agree (one file per row, nothing left in ``tmp/``);
* every journaled server operation took effect exactly once and none is left
  pending or failed (sends whose outcome is unknown excepted: see below);
* ``PRAGMA integrity_check`` and ``foreign_key_check`` pass.

Replay one point with ``BIMMAIL_CRASH_SEED=<seed>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client, ConnectionLost
from tests.helpers import spawn_daemon
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.fixtures import MailServers
from tests.sync.test_crash import big_inbox
from tests.sync.test_sync import make_message

SEED = int(os.environ.get("BIMMAIL_CRASH_SEED", "20261204"))
POINTS = 4  # per scenario


def kill_delay(scenario: str, point: int, low: float, high: float) -> float:
    return random.Random(f"{SEED}/{scenario}/{point}").uniform(low, high)


# -- what the server and the store hold -----------------------------------------------------


def server_ids(user: ImapUser, folder: str) -> Counter[str]:
    """Message-IDs in a server folder, with multiplicity."""
    with user.imap() as imap:
        if imap.select(f'"{folder}"', readonly=True)[0] != "OK":
            return Counter()
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    ids: Counter[str] = Counter()
    for item in data:
        if isinstance(item, tuple):
            value = item[1].decode().split(":", 1)[1].strip() if b":" in item[1] else ""
            ids[value] += 1
    return ids


def open_store(data_dir: Path) -> sqlite3.Connection:
    db = sqlite3.connect(data_dir / "bimmail.sqlite3")
    db.row_factory = sqlite3.Row
    return db


def check_store(data_dir: Path, users: dict[int, ImapUser]) -> None:
    """The invariants of the module docstring, for every account left (id → its server user)."""
    db = open_store(data_dir)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert {r[0] for r in db.execute("SELECT id FROM accounts")} == set(users)
        for account_id, user in users.items():
            folders = db.execute(
                "SELECT id, name, wire_name, maildir FROM folders WHERE account_id = ? AND synced_at IS NOT NULL"
                " AND state = 'present'",
                (account_id,),
            ).fetchall()
            assert folders, "the account was synchronised"
            for folder in folders:
                rows = db.execute(
                    "SELECT message_id, filename FROM messages WHERE folder_id = ?", (folder["id"],)
                ).fetchall()
                local = Counter(r["message_id"] for r in rows)
                assert local == server_ids(user, folder["wire_name"]), f"{folder['name']}: server vs index"
                directory = data_dir / "mail" / str(account_id) / folder["maildir"]
                on_disk = sorted(p.name for p in (directory / "cur").iterdir()) if directory.exists() else []
                assert on_disk == sorted(r["filename"] for r in rows), f"{folder['name']}: Maildir vs index"
                assert not directory.exists() or not list((directory / "tmp").iterdir())
        states = Counter(r[0] for r in db.execute("SELECT state FROM journal WHERE kind != 'append'"))
        assert set(states) <= {"done"}, f"journal: {states}"
        leftover = {p.name for p in (data_dir / "mail").iterdir()} if (data_dir / "mail").exists() else set()
        assert leftover <= {str(a) for a in users}, f"Maildirs of deleted accounts: {leftover}"
    finally:
        db.close()


# -- running the daemon ---------------------------------------------------------------------


class Daemon:
    """A real bimmaild process on one data dir, killed and restarted by the test."""

    def __init__(self, short_dir: Path, tmp_path: Path) -> None:
        self.socket = short_dir / "d.sock"
        self.data = tmp_path / "data"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await spawn_daemon(self.socket, self.data)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            assert await self.process.wait() == 0

    def client(self) -> contextlib.AbstractAsyncContextManager[Client]:
        return _connected(self.socket)


@contextlib.asynccontextmanager
async def _connected(socket: Path) -> Any:
    client = await Client.connect(socket)
    try:
        yield client
    finally:
        await client.close()


async def killed_during(daemon: Daemon, work: Callable[[Client], Coroutine[Any, Any, Any]], delay: float) -> None:
    """Start ``work`` on a client, SIGKILL the daemon ``delay`` seconds later, whatever it was doing."""
    async with daemon.client() as client:
        task = asyncio.create_task(work(client))
        await asyncio.sleep(delay)
        await daemon.kill()
        with contextlib.suppress(ConnectionLost, ConnectionError):
            await task


async def fetch_all(client: Client) -> list[dict[str, Any]]:
    accounts: list[dict[str, Any]] = (await client.call("fetch", {"wait": True}))["accounts"]
    assert all(a["state"] == "ok" for a in accounts), accounts
    return accounts


async def add(client: Client, servers: MailServers, name: str, user: ImapUser) -> int:
    params = {**servers.account_params(name=name), "email": user.login, "password": user.password, "test": False}
    return int((await client.call("account.add", params))["account"]["id"])


# -- the scenarios --------------------------------------------------------------------------

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("point", range(POINTS))
async def test_initial_sync(short_dir: Path, tmp_path: Path, mail_servers: MailServers, point: int) -> None:
    user = mail_servers.user
    user.deliver_many(list(big_inbox()))
    daemon = Daemon(short_dir, tmp_path)
    await daemon.start()
    try:
        async with daemon.client() as client:
            account = await add(client, mail_servers, "Work", user)
        await killed_during(daemon, lambda c: c.call("fetch", {"wait": True}), kill_delay("initial", point, 0.05, 0.9))
        await daemon.start()
        async with daemon.client() as client:
            await fetch_all(client)
    finally:
        await daemon.stop()
    check_store(daemon.data, {account: user})


@pytest.mark.parametrize("point", range(POINTS))
async def test_incremental_sync(short_dir: Path, tmp_path: Path, mail_servers: MailServers, point: int) -> None:
    user = mail_servers.user
    user.deliver_many([make_message(i, attachment=20_000) for i in range(300)])
    daemon = Daemon(short_dir, tmp_path)
    await daemon.start()
    try:
        async with daemon.client() as client:
            account = await add(client, mail_servers, "Work", user)
            await fetch_all(client)
        user.deliver_many([make_message(i, attachment=40_000) for i in range(300, 700)])
        with user.imap() as imap:
            imap.select("INBOX")
            imap.uid("STORE", "1:60", "+FLAGS", "(\\Flagged)")
            imap.uid("STORE", "61:90", "+FLAGS", "(\\Deleted)")
            imap.expunge()
        await killed_during(daemon, lambda c: c.call("fetch", {"wait": True}), kill_delay("incr", point, 0.02, 0.8))
        await daemon.start()
        async with daemon.client() as client:
            await fetch_all(client)
            flagged = [m for m in await client.call("messages.list", {"account": "Work", "limit": 1000})
                       if "\\Flagged" in m["flags"]]  # fmt: skip
            assert len(flagged) == 60
    finally:
        await daemon.stop()
    check_store(daemon.data, {account: user})


@pytest.mark.parametrize("point", range(POINTS))
async def test_trash_moves(short_dir: Path, tmp_path: Path, mail_servers: MailServers, point: int) -> None:
    """Deletes are journaled before they are sent: each message ends up in the server trash once."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(120)])
    daemon = Daemon(short_dir, tmp_path)
    await daemon.start()
    try:
        async with daemon.client() as client:
            account = await add(client, mail_servers, "Work", user)
            await fetch_all(client)
            rows = await client.call("messages.list", {"account": "Work", "folder": "INBOX", "limit": 1000})
        doomed = rows[:40]

        async def delete(client: Client) -> None:
            for i in range(0, len(doomed), 5):  # several deletes, several mirror runs
                await client.call("messages.delete", {"ids": [m["id"] for m in doomed[i : i + 5]]})
                await asyncio.sleep(0.02)

        await killed_during(daemon, delete, kill_delay("trash", point, 0.0, 0.4))
        await daemon.start()
        async with daemon.client() as client:
            await fetch_all(client)
            done = {m["message_id"] for m in await client.call("messages.list", {"account": "Work", "trash": True,
                                                                                    "limit": 1000})}  # fmt: skip
    finally:
        await daemon.stop()
    trash, inbox = server_ids(user, "BIMoffice"), server_ids(user, "INBOX")
    assert all(count == 1 for count in trash.values()), trash
    assert not set(trash) & set(inbox)
    assert set(trash) == done, "what is in the local trash is what was moved on the server"
    assert len(trash) + len(inbox) == 120
    check_store(daemon.data, {account: user})


@pytest.mark.parametrize("point", range(POINTS))
async def test_send_and_sent_copy(short_dir: Path, tmp_path: Path, mail_servers: MailServers, point: int) -> None:
    """Sending: never delivered twice by the daemon; each delivered message's Sent copy exactly once.
    A message whose submission was cut by the kill is ``uncertain`` and waits for the user: here the
    user cancels it, so it gets no Sent copy."""
    user, smtp = mail_servers.user, mail_servers.smtp
    daemon = Daemon(short_dir, tmp_path)
    await daemon.start()
    try:
        async with daemon.client() as client:
            account = await add(client, mail_servers, "Work", user)
            await fetch_all(client)

        async def send(client: Client) -> None:
            for i in range(12):
                await client.call("send", {"to": f"r{i}@example.net", "subject": f"n°{i}", "text": "x" * 50_000})

        await killed_during(daemon, send, kill_delay("send", point, 0.0, 0.25))
        await daemon.start()
        async with daemon.client() as client:
            for entry in await client.call("outbox.list"):
                if entry["state"] == "uncertain":
                    await client.call("outbox.cancel", {"id": entry["id"]})
            # A message queued but not yet submitted when the daemon died goes out at start.
            for _ in range(300):
                if not any(e["state"] in ("queued", "sending") for e in await client.call("outbox.list")):
                    break
                await asyncio.sleep(0.1)
            await fetch_all(client)
            outbox = {e["message_id"]: e["state"] for e in await client.call("outbox.list")}
    finally:
        await daemon.stop()
    delivered = Counter(d.message["Message-ID"] for d in smtp.deliveries)
    assert all(count == 1 for count in delivered.values()), delivered
    sent_copies = server_ids(user, "Sent")
    assert all(count == 1 for count in sent_copies.values()), sent_copies
    assert set(sent_copies) == {mid for mid, state in outbox.items() if state == "sent"}
    assert {mid for mid, state in outbox.items() if state == "sent"} <= set(delivered)
    check_store(daemon.data, {account: user})
    db = open_store(daemon.data)
    try:
        pending = [tuple(r) for r in db.execute("SELECT kind, state, params FROM journal WHERE state != 'done'")]
        states = {row[0]: row[1] for row in db.execute("SELECT id, state FROM outbox")}
        assert pending == [], ([(k, s, json.loads(p)["outbox_id"]) for k, s, p in pending], states)
    finally:
        db.close()


@pytest.mark.parametrize("point", range(POINTS))
async def test_account_delete(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers, dovecot: Dovecot, point: int
) -> None:
    """Deleting an account while another one fetches: after the kill, the account is either fully
    there or fully gone (rows, Maildir, passwords); finishing the delete leaves nothing behind."""
    first, second = mail_servers.user, dovecot.add_user()
    first.deliver_many([make_message(i, attachment=30_000) for i in range(200)])
    second.deliver_many([make_message(i, attachment=30_000) for i in range(600)])
    daemon = Daemon(short_dir, tmp_path)
    await daemon.start()
    try:
        async with daemon.client() as client:
            doomed = await add(client, mail_servers, "Doomed", first)
            kept = await add(client, mail_servers, "Kept", second)
            await client.call("fetch", {"accounts": ["Doomed"], "wait": True})

        async def work(client: Client) -> None:
            await client.call("fetch", {"accounts": ["Kept"], "wait": False})
            await client.call("account.delete", {"account": "Doomed", "confirm": True})

        await killed_during(daemon, work, kill_delay("delete", point, 0.0, 0.3))
        await daemon.start()
        async with daemon.client() as client:
            if any(a["name"] == "Doomed" for a in await client.call("account.list")):
                await client.call("account.delete", {"account": "Doomed", "confirm": True})
            await fetch_all(client)
    finally:
        await daemon.stop()
    check_store(daemon.data, {kept: second})
    assert not (daemon.data / "mail" / str(doomed)).exists()
    secrets = (daemon.data / "secrets.json").read_text()
    assert first.password not in secrets and second.password in secrets
