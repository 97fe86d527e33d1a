"""The server trash folder mirrored both ways, the journal, projects (R-C3..R-C7, R-X2), on Dovecot."""

from __future__ import annotations

import asyncio
import imaplib
import os
import re
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.imap.connection import ImapConnection, ImapConnectionLost
from bimmaild.protocol.errors import ConfirmationRequired, InvalidParams
from tests.helpers import RunningDaemon, daemon_config, start_daemon, stop_daemon
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy
from tests.sync.test_sync import add_account, fetch, index, make_message, stored_bytes

CAPS_WITHOUT_MOVE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
    "CONDSTORE ESEARCH LIST-STATUS BINARY LITERAL+ SPECIAL-USE"
)


def server_subjects(user: ImapUser, folder: str) -> list[str]:
    with user.imap() as imap:
        typ, _ = imap.select(f'"{folder}"', readonly=True)
        assert typ == "OK", folder
        _, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    return sorted(re.search(rb"<([^>]+)>", item[1]).group(1).decode() for item in data if isinstance(item, tuple))  # type: ignore[union-attr]


def folders_of(user: ImapUser) -> tuple[set[str], set[str]]:
    with user.imap() as imap:
        _, listed = imap.list('""', "*")
        _, subscribed = imap.lsub('""', "*")

    def names(lines: list[Any]) -> set[str]:
        return {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in lines if isinstance(line, bytes)}

    return names(listed), names(subscribed)


async def settle(client: Client) -> None:
    """Wait for the trash mirror started by a delete or restore (the journal empty)."""
    for _ in range(200):
        status = await client.call("status")
        if not any(status["pending_operations"].values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"server operations still pending: {status['pending_operations']}")


def inbox_ids(daemon: RunningDaemon, folder: str = "INBOX") -> dict[str, Any]:
    return {r["message_id"]: r for r in index(daemon) if r["folder"] == folder}


async def test_tested_add_creates_the_trash_folder_at_once(client: Client, mail_servers: MailServers) -> None:
    """R-C3: adding an account (tested, so reachable) creates its trash folder on the server."""
    await client.subscribe(["fetch.done"])
    result = await client.call("account.add", mail_servers.account_params())
    assert any("first fetch has started" in note for note in result["notes"])
    async with asyncio.timeout(10):
        async for _event, params in client.events():
            assert params["state"] == "ok"
            break
    assert "BIMoffice" in folders_of(mail_servers.user)[1]


async def test_trash_folder_created_subscribed_and_recreated(client: Client, mail_servers: MailServers) -> None:
    """R-C3, with a name that needs the server's delimiter and modified UTF-7."""
    user = mail_servers.user
    await add_account(client, mail_servers, trash_folder="Corbeille BIM/Éléments")
    await fetch(client)
    listed, subscribed = folders_of(user)
    assert "Corbeille BIM/&AMk-l&AOk-ments" in listed and "Corbeille BIM/&AMk-l&AOk-ments" in subscribed
    with user.imap() as imap:
        imap.delete('"Corbeille BIM/&AMk-l&AOk-ments"')
    await fetch(client)
    assert "Corbeille BIM/&AMk-l&AOk-ments" in folders_of(user)[0], "re-created when it has gone"
    roles = {f["name"]: f["role"] for f in (await client.call("account.folders", {"account": "Work"}))["folders"]}
    assert roles["Corbeille BIM/Éléments"] == "account_trash"
    with user.imap() as imap:  # another client unsubscribes it: subscribed again at the next connection
        imap.unsubscribe('"Corbeille BIM/&AMk-l&AOk-ments"')
    assert "Corbeille BIM/&AMk-l&AOk-ments" not in folders_of(user)[1]
    await fetch(client)
    assert "Corbeille BIM/&AMk-l&AOk-ments" in folders_of(user)[1]


async def test_existing_trash_folder_unsubscribed_without_list_extended(
    client: Client, mail_servers: MailServers
) -> None:
    """R-C3 on a server without LIST-EXTENDED (the proxy hides it): LSUB tells, SUBSCRIBE mends. The
    folder exists before the account does (made by hand), never subscribed."""
    user = mail_servers.user
    with user.imap() as imap:
        imap.create("BIMoffice")
    assert "BIMoffice" not in folders_of(user)[1]
    async with FaultProxy.start("127.0.0.2", mail_servers.dovecot.ports["imap_notls"]) as proxy:
        proxy.rewrite(rb" LIST-EXTENDED\b", b"")
        await add_account(client, mail_servers, imap={"host": "127.0.0.1", "port": proxy.port, "security": "none"})
        await fetch(client)
        sent = bytes(proxy.from_clients)
    assert b"LSUB" in sent and b"RETURN (SPECIAL-USE SUBSCRIBED)" not in sent
    assert "BIMoffice" in folders_of(user)[1]


async def test_delete_moves_to_server_trash_and_restore_brings_back(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """R-C4: locally at once, on the server by UID MOVE; restore reverses both."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(4)])
    await add_account(client, mail_servers)
    await fetch(client)
    rows = inbox_ids(daemon)
    victim = rows["<msg1.INBOX@example.fr>"]
    content = stored_bytes(daemon, victim)
    result = await client.call("messages.delete", {"ids": [victim["id"]]})
    assert result["moved_to_trash"] == [victim["id"]]
    trash = await client.call("messages.list", {"account": "Work", "trash": True})
    assert [(m["id"], m["origin"]) for m in trash] == [(victim["id"], "INBOX")]
    await settle(client)
    assert server_subjects(user, "BIMoffice") == ["msg1.INBOX@example.fr"]
    assert "msg1.INBOX@example.fr" not in server_subjects(user, "INBOX")
    moved = inbox_ids(daemon, "BIMoffice")["<msg1.INBOX@example.fr>"]
    assert moved["uid"] > 0 and moved["pending"] is None, "the server's new UID was taken (COPYUID)"
    assert stored_bytes(daemon, moved) == content
    assert (await fetch(client))["removed"] == 0, "a sync after the move changes nothing"

    await client.call("messages.restore", {"ids": [victim["id"]]})
    await settle(client)
    assert "msg1.INBOX@example.fr" in server_subjects(user, "INBOX")
    assert server_subjects(user, "BIMoffice") == []
    assert stored_bytes(daemon, inbox_ids(daemon)["<msg1.INBOX@example.fr>"]) == content


async def test_move_by_another_client_is_adopted_not_downloaded(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """R-C5: webmail moves a message into the trash folder; the local copy follows, no download."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(3)])
    await add_account(client, mail_servers)
    await fetch(client)
    before = inbox_ids(daemon)["<msg2.INBOX@example.fr>"]
    path = daemon.data_dir / "mail" / str(before["account_id"]) / before["maildir"] / "cur" / before["filename"]
    inode = os.stat(path).st_ino
    with user.imap() as imap:
        imap.select("INBOX")
        imap.uid("MOVE", str(before["uid"]), "BIMoffice")
    result = await fetch(client)
    folders = {f["folder"]: f for f in result["folders"]}
    assert folders["INBOX"]["removed"] == 1
    moved = inbox_ids(daemon, "BIMoffice")["<msg2.INBOX@example.fr>"]
    assert moved["origin_folder_id"] == before["folder_id"]
    assert (
        os.stat(
            Path(str(path).replace(before["maildir"], moved["maildir"]).replace(before["filename"], moved["filename"]))
        ).st_ino
        == inode
    )


async def test_expunge_on_server_and_projects_outlive_it(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """R-C6 and R-X2: an expunged message disappears, unless assigned to a project, which keeps it
    even after the account is deleted."""
    user = mail_servers.user
    user.deliver_many([make_message(i, attachment=5000) for i in range(3)])
    await add_account(client, mail_servers)
    await fetch(client)
    rows = inbox_ids(daemon)
    kept, lost = rows["<msg0.INBOX@example.fr>"], rows["<msg1.INBOX@example.fr>"]
    content = stored_bytes(daemon, kept)
    await client.call("project.add", {"name": "Chantier Lyon"})
    assigned = await client.call("messages.assign", {"ids": [kept["id"]], "project": "Chantier Lyon"})
    with user.imap() as imap:
        imap.select("INBOX")
        imap.uid("STORE", f"{kept['uid']},{lost['uid']}", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    assert (await fetch(client))["removed"] == 2
    assert set(inbox_ids(daemon)) == {"<msg2.INBOX@example.fr>"}
    in_project = await client.call("project.messages", {"project": "Chantier Lyon"})
    assert [m["message_id"] for m in in_project] == ["<msg0.INBOX@example.fr>"]
    shown = await client.call("project.show_message", {"id": assigned["assigned"][0], "raw": True})
    assert shown["raw"] == content and shown["attachments"][0]["filename"] == "plan-0.pdf"
    await client.call("account.delete", {"account": "Work", "confirm": True})
    again = await client.call("project.show_message", {"id": assigned["assigned"][0], "raw": True})
    assert again["raw"] == content and again["account"] == "Work"


async def test_permanent_delete_needs_confirmation(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(2)])
    await add_account(client, mail_servers)
    await fetch(client)
    victim = inbox_ids(daemon)["<msg0.INBOX@example.fr>"]
    with pytest.raises(InvalidParams):
        await client.call("messages.delete", {"ids": [victim["id"]], "permanent": True, "confirm": True})
    await client.call("messages.delete", {"ids": [victim["id"]]})
    await settle(client)
    with pytest.raises(InvalidParams, match="already in the trash"):
        await client.call("messages.delete", {"ids": [victim["id"]]})
    with pytest.raises(ConfirmationRequired):
        await client.call("messages.delete", {"ids": [victim["id"]], "permanent": True})
    await client.call("messages.delete", {"ids": [victim["id"]], "permanent": True, "confirm": True})
    await settle(client)
    assert server_subjects(user, "BIMoffice") == []
    assert "<msg0.INBOX@example.fr>" not in {r["message_id"] for r in index(daemon)}


async def test_delete_while_server_down_is_applied_later(short_dir: Path, tmp_path: Path) -> None:
    """R-C7: queued while Dovecot is stopped; applied once it is back; nothing lost."""
    with Dovecot.running() as server:
        user = server.add_user()
        user.deliver_many([make_message(i) for i in range(3)])
        config = daemon_config(short_dir, tmp_path)
        running = await start_daemon(config)
        try:
            async with await Client.connect(config.socket_path) as client:
                await client.call("account.add", user.account_params())
                await client.call("fetch", {"wait": True})
                server.stop()
                victim = inbox_ids(running)["<msg1.INBOX@example.fr>"]
                await client.call("messages.delete", {"ids": [victim["id"]]})
                await asyncio.sleep(0.5)  # the mirror attempt fails: server down
                assert (await client.call("status"))["pending_operations"] == {"Work": 1}
                local_trash = await client.call("messages.list", {"account": "Work", "trash": True})
                assert [m["pending"] for m in local_trash] == [True]
                server.start()
                await client.call("fetch", {"wait": True})
                assert (await client.call("status"))["pending_operations"] == {"Work": 0}
        finally:
            await stop_daemon(running)
        assert server_subjects(user, "BIMoffice") == ["msg1.INBOX@example.fr"]
        assert server_subjects(user, "INBOX") == ["msg0.INBOX@example.fr", "msg2.INBOX@example.fr"]


@pytest.mark.parametrize("crash", ["before_move", "after_move"])
async def test_crash_around_the_move_leaves_one_copy(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers, monkeypatch: pytest.MonkeyPatch, crash: str
) -> None:
    """The daemon dies with the journal entry written: before the MOVE reached the server, or after
    the server did it but before the result was recorded.  A restart ends with exactly one copy."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(3)])
    config = daemon_config(short_dir, tmp_path)
    real_move = ImapConnection.uid_move

    async def dying_move(self: ImapConnection, uids: str, mailbox: str) -> dict[int, int]:
        if crash == "after_move":
            await real_move(self, uids, mailbox)
        raise ImapConnectionLost("simulated death of the daemon")

    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            await add_account(client, mail_servers)
            await fetch(client)
            monkeypatch.setattr(ImapConnection, "uid_move", dying_move)
            victim = inbox_ids(running)["<msg1.INBOX@example.fr>"]
            await client.call("messages.delete", {"ids": [victim["id"]]})
            await asyncio.sleep(0.5)
    finally:
        await stop_daemon(running)
    monkeypatch.setattr(ImapConnection, "uid_move", real_move)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            assert (await client.call("status"))["pending_operations"] == {"Work": 1}
            await fetch(client)
            assert (await client.call("status"))["pending_operations"] == {"Work": 0}
    finally:
        await stop_daemon(running)
    assert server_subjects(user, "BIMoffice") == ["msg1.INBOX@example.fr"]
    assert "msg1.INBOX@example.fr" not in server_subjects(user, "INBOX")
    trash_rows = [r for r in index(running) if r["folder"] == "BIMoffice"]
    assert [(r["message_id"], r["pending"]) for r in trash_rows] == [("<msg1.INBOX@example.fr>", None)]
    assert trash_rows[0]["uid"] > 0


async def test_server_without_move_uses_copy_and_uid_expunge(short_dir: Path, tmp_path: Path) -> None:
    """No MOVE: COPY, STORE \\Deleted, UID EXPUNGE of that UID only; another client's \\Deleted survives."""
    with Dovecot.running(extra_config=f"imap_capability = {CAPS_WITHOUT_MOVE}\n") as server:
        user = server.add_user()
        user.deliver_many([make_message(i) for i in range(4)])
        config = daemon_config(short_dir, tmp_path)
        running = await start_daemon(config)
        try:
            async with await Client.connect(config.socket_path) as client:
                await client.call("account.add", user.account_params())
                await client.call("fetch", {"wait": True})
                rows = inbox_ids(running)
                with user.imap() as imap:  # another client marks one deleted, without expunging
                    imap.select("INBOX")
                    imap.uid("STORE", str(rows["<msg3.INBOX@example.fr>"]["uid"]), "+FLAGS", "(\\Deleted)")
                await client.call("messages.delete", {"ids": [rows["<msg1.INBOX@example.fr>"]["id"]]})
                await settle(client)
        finally:
            await stop_daemon(running)
        conn = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
        conn.starttls(server.client_context())
        conn.login(user.login, user.password)
        assert "MOVE" not in conn.capabilities
        conn.logout()
        assert server_subjects(user, "BIMoffice") == ["msg1.INBOX@example.fr"]
        assert server_subjects(user, "INBOX") == [
            "msg0.INBOX@example.fr",
            "msg2.INBOX@example.fr",
            "msg3.INBOX@example.fr",
        ]


async def test_trash_mirror_runs_on_its_schedule(short_dir: Path, tmp_path: Path, mail_servers: MailServers) -> None:
    """R-C5 without a fetch: the scheduled mirror brings what webmail moved into the trash."""
    from dataclasses import replace

    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(2)])
    config = replace(daemon_config(short_dir, tmp_path), trash_mirror_seconds=0.3)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            await add_account(client, mail_servers)
            await fetch(client)
            with user.imap() as imap:
                imap.select("INBOX")
                imap.uid("MOVE", "1", "BIMoffice")
            await client.subscribe(["trash.changed"])
            async with asyncio.timeout(10):
                async for _event, params in client.events():
                    trash = next(f for f in params["folders"] if f["folder"] == "BIMoffice")
                    if trash["new"]:
                        break
            listed = await client.call("messages.list", {"account": "Work", "trash": True})
            assert [m["message_id"] for m in listed] == ["<msg0.INBOX@example.fr>"]
    finally:
        await stop_daemon(running)


@pytest.mark.parametrize("crash", ["copy_unrecorded", "after_copy"])
async def test_crash_in_the_copy_path_leaves_one_copy(
    short_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: str
) -> None:
    """Without MOVE: dying after the server copied but before the COPYUID was recorded (the trash is
    searched by Message-ID before copying again), or after recording it (no second COPY)."""
    real_copy, real_store = ImapConnection.uid_copy, ImapConnection.uid_store

    async def dying_copy(self: ImapConnection, uids: str, mailbox: str) -> dict[int, int]:
        await real_copy(self, uids, mailbox)
        raise ImapConnectionLost("simulated death after COPY")

    async def dying_store(self: ImapConnection, uids: str, action: str, flags: str) -> None:
        raise ImapConnectionLost("simulated death before STORE")

    with Dovecot.running(extra_config=f"imap_capability = {CAPS_WITHOUT_MOVE}\n") as server:
        user = server.add_user()
        user.deliver_many([make_message(i) for i in range(3)])
        config = daemon_config(short_dir, tmp_path)
        running = await start_daemon(config)
        try:
            async with await Client.connect(config.socket_path) as client:
                await client.call("account.add", user.account_params())
                await client.call("fetch", {"wait": True})
                if crash == "copy_unrecorded":
                    monkeypatch.setattr(ImapConnection, "uid_copy", dying_copy)
                else:
                    monkeypatch.setattr(ImapConnection, "uid_store", dying_store)
                await client.call("messages.delete", {"ids": [inbox_ids(running)["<msg1.INBOX@example.fr>"]["id"]]})
                await asyncio.sleep(0.5)
        finally:
            await stop_daemon(running)
        monkeypatch.setattr(ImapConnection, "uid_copy", real_copy)
        monkeypatch.setattr(ImapConnection, "uid_store", real_store)
        running = await start_daemon(config)
        try:
            async with await Client.connect(config.socket_path) as client:
                await client.call("fetch", {"wait": True})
                assert (await client.call("status"))["pending_operations"] == {"Work": 0}
        finally:
            await stop_daemon(running)
        assert server_subjects(user, "BIMoffice") == ["msg1.INBOX@example.fr"], "exactly one copy"
        assert server_subjects(user, "INBOX") == ["msg0.INBOX@example.fr", "msg2.INBOX@example.fr"]


async def test_restore_at_once_and_repeated_ids(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """A restore right after the delete, before the server move: the restore's move finds the
    message by Message-ID (it was journalled with a placeholder UID, a BAD UID SEARCH).  Ids given
    twice are one message (found by the control-socket fuzzer: the file was moved twice)."""
    mail_servers.user.deliver_many([make_message(i) for i in range(2)])
    await add_account(client, mail_servers)
    await fetch(client)
    victim = inbox_ids(daemon)["<msg1.INBOX@example.fr>"]["id"]
    assert (await client.call("messages.delete", {"ids": [victim, victim]}))["moved_to_trash"] == [victim]
    assert (await client.call("messages.restore", {"ids": [victim, victim]}))["restored"] == [victim]
    await settle(client)
    [row] = [r for r in index(daemon) if r["id"] == victim]
    assert row["folder"] == "INBOX" and row["uid"] > 0 and row["pending"] is None
    assert "msg1.INBOX@example.fr" in server_subjects(mail_servers.user, "INBOX")
    assert server_subjects(mail_servers.user, "BIMoffice") == []
