"""Failures met outside a fetch: the trash mirror, push, refused server operations (R-E1, R-C7).

A refused password must not be tried again and again by whatever connects
(the mirror every two minutes, the push connection's back-off): providers
lock accounts that do that.  A mirror run must not overwrite what the last
fetch found (its counts, a safety stop).  A server operation the server
refuses is tried again later, never given up, and ``status`` shows it.
Against the real Dovecot; attempts are counted in its log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from tests.helpers import RunningDaemon, daemon_config, start_daemon, stop_daemon
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy
from tests.sync.test_automation import pushing_account, wait_push
from tests.sync.test_sync import add_account, fetch, make_message
from tests.sync.test_trash import settle


def refused_logins(server: Dovecot, user: ImapUser) -> int:
    return sum(1 for line in server.log_tail(100_000).splitlines() if "auth failed" in line and user.login in line)


async def account_status(client: Client, name: str = "Work") -> dict[str, Any]:
    status: dict[str, Any] = (await client.call("account.show", {"account": name}))["status"]
    return status


@pytest.fixture
async def mirroring(short_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[RunningDaemon, Client]]:
    """A daemon whose scheduled trash mirror runs every 0.2 s (instead of two minutes)."""
    config = dataclasses.replace(daemon_config(short_dir, tmp_path), trash_mirror_seconds=0.2)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path, client_name="pytest") as client:
            yield running, client
    finally:
        await stop_daemon(running)


async def test_scheduled_mirror_leaves_a_refused_password_alone(
    mirroring: tuple[RunningDaemon, Client], mail_servers: MailServers
) -> None:
    _, client = mirroring
    await add_account(client, mail_servers, password="wrong")
    assert (await fetch(client))["state"] == "needs-attention"
    await asyncio.sleep(0.5)  # Dovecot's log lags a little behind its answers
    before = refused_logins(mail_servers.dovecot, mail_servers.user)
    assert before >= 1
    await asyncio.sleep(1.5)  # seven mirror periods
    assert refused_logins(mail_servers.dovecot, mail_servers.user) == before, "the mirror tried the password again"
    assert (await account_status(client))["state"] == "needs-attention"


async def test_mirror_keeps_the_fetch_result_and_a_safety_stop(client: Client, mail_servers: MailServers) -> None:
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(30)])
    await add_account(client, mail_servers)
    await fetch(client)
    fetched = await account_status(client)
    assert fetched["last_result"]["new"] == 30
    [victim] = await client.call("messages.list", {"account": "Work", "folder": "INBOX", "limit": 1})
    await client.call("messages.delete", {"ids": [victim["id"]]})  # a mirror run follows
    await settle(client)
    after = await account_status(client)
    assert (after["state"], after["last_fetch_at"], after["last_result"]) == ("ok", fetched["last_fetch_at"],
                                                                              fetched["last_result"])  # fmt: skip

    with user.imap() as imap:  # most of the inbox vanishes on the server: the safety stop
        imap.select("INBOX")
        imap.uid("STORE", "1:25", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    assert (await fetch(client))["state"] == "needs-attention"
    [another] = await client.call("messages.list", {"account": "Work", "folder": "INBOX", "limit": 1})
    await client.call("messages.delete", {"ids": [another["id"]]})
    await settle(client)
    stopped = await account_status(client)
    assert stopped["state"] == "needs-attention" and "confirm-deletions" in stopped["message"]


async def test_push_stops_on_a_refused_password_until_the_account_changes(short_dir: Path, tmp_path: Path) -> None:
    async with pushing_account(short_dir, tmp_path) as (server, user, client):
        # The password is changed on the server (webmail), and the IDLE connection dropped.
        lines = server.users_file.read_text().replace(f"{{PLAIN}}{user.password}:", "{PLAIN}changed:")
        server.users_file.write_text(lines)
        await asyncio.sleep(1.1)  # Dovecot re-reads its passwd-file at most once a second
        server.kick(user)
        for _ in range(200):
            status = await account_status(client)
            if status["state"] == "needs-attention":
                break
            await asyncio.sleep(0.05)
        assert status["state"] == "needs-attention", status
        assert status["push"] == "off" and "refused" in status["push_error"]
        attempts = refused_logins(server, user)
        await asyncio.sleep(3.5)  # the push back-off would have tried at +1, +2 s
        assert refused_logins(server, user) == attempts, "push tried the refused password again"

        await client.call("account.modify", {"account": "Work", "password": "changed"})
        await wait_push(client)  # the account was changed: push resumes


async def test_refused_server_operation_is_retried_later_and_shown(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """The proxy makes Dovecot's answer to the MOVE a NO [OVERQUOTA] (a full trash cannot be arranged
    per user on the shared test server)."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(3)])
    async with FaultProxy.start("127.0.0.2", mail_servers.dovecot.ports["imap_notls"]) as proxy:
        await add_account(client, mail_servers, imap={"host": "127.0.0.1", "port": proxy.port, "security": "none"})
        await fetch(client)
        proxy.answer(rb"UID MOVE ", b"NO [OVERQUOTA] Quota exceeded (mailbox for user is full)")
        [victim] = await client.call("messages.list", {"account": "Work", "folder": "INBOX", "limit": 1})
        await client.call("messages.delete", {"ids": [victim["id"]]})
        for _ in range(100):
            refused = (await account_status(client))["refused_operations"]
            if refused:
                break
            await asyncio.sleep(0.05)
        [entry] = refused
        assert entry["kind"] == "move" and entry["attempts"] == 1 and "OVERQUOTA" in entry["error"]
        assert entry["next_attempt_at"] is not None
        await fetch(client)  # not due yet: not sent again
        assert (await account_status(client))["refused_operations"][0]["attempts"] == 1

        proxy.clear()  # room was made in the mailbox
        db = sqlite3.connect(daemon.data_dir / "bimmail.sqlite3")  # time passes: the retry is due
        with db:
            db.execute("UPDATE journal SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
        db.close()
        await fetch(client)
        status = await account_status(client)
        assert (status["pending_operations"], status["refused_operations"]) == (0, [])
    with user.imap() as imap:
        imap.select("BIMoffice", readonly=True)
        _, data = imap.uid("SEARCH", "ALL")
    assert len(data[0].split()) == 1, "moved once, in the end"
