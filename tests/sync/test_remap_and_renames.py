"""What the server does to a folder's identity, against the real Dovecot (R-C2, R-C7).

* A UIDVALIDITY re-map interrupted by a crash is finished by the next run, never undone:
  no message downloaded again, every local id (and so every project link) kept.
* A message the server does not return with its content is not skipped for good: the
  folder's stored state lets the next run ask for it again.
* A folder renamed on the server keeps its local copies and goes on syncing under its
  new name; a folder deleted there stays ``gone`` with its copies.

The plan functions (``plan_reconcile``, ``match_renames``) are checked without I/O first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.store.maildir import parse_name
from bimmaild.sync import folder_sync
from bimmaild.sync.folder_list import match_renames
from bimmaild.sync.folder_sync import plan_reconcile
from tests.helpers import RunningDaemon, daemon_config, start_daemon, stop_daemon
from tests.servers.dovecot import ImapUser
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy
from tests.sync.test_sync import add_account, by_folder, fetch, index, make_message, server_messages

# -- sans-IO -------------------------------------------------------------------


def test_reconcile_accepts_a_rows_old_or_new_file_name() -> None:
    """After a crash in a re-map (UIDVALIDITY 7 -> 9): rows carry their new UIDs, and each file
    has its old name (renamed now) or already its new one (the row takes that name)."""
    indexed = {
        1: (10, "", "7.5.bimmail:2,S"),  # file still under its old name
        2: (11, "", "7.6.bimmail:2,"),  # file already renamed to 9.2
        3: (12, "", "9.3.bimmail:2,"),  # an ordinary row
        4: (13, "", "9.4.bimmail:2,"),  # its file is gone
        -14: (14, "", "7.8.bimmail:2,"),  # a copy matching nothing, waiting for the removal step
    }
    on_disk = {
        "7.5.bimmail": "7.5.bimmail:2,S",
        "9.2.bimmail": "9.2.bimmail:2,",
        "9.3.bimmail": "9.3.bimmail:2,F",  # flags changed by another mail client
        "7.8.bimmail": "7.8.bimmail:2,",
        "9.20.bimmail": "9.20.bimmail:2,",  # delivered, never indexed
        "7.99.bimmail": "7.99.bimmail:2,",  # another era's, no row
    }
    plan = plan_reconcile(indexed, on_disk, 9)
    assert plan.renames == [("7.5.bimmail:2,S", "9.1.bimmail:2,S", 10)]
    assert sorted(plan.found) == [("9.2.bimmail:2,", 11), ("9.3.bimmail:2,F", 12)]
    assert plan.missing == [(4, 13)]
    assert sorted(plan.orphans) == ["7.99.bimmail:2,", "9.20.bimmail:2,"]
    assert plan.duplicates == []
    # Both names on disk: the row keeps the one it names, the other is a duplicate of the same message.
    both = plan_reconcile(
        {1: (10, "", "7.5.bimmail:2,")}, {"7.5.bimmail": "7.5.bimmail:2,", "9.1.bimmail": "9.1.bimmail:2,"}, 9
    )
    assert (both.renames, both.found, both.missing, both.duplicates) == ([], [], [], ["9.1.bimmail:2,"])


def test_renames_need_one_candidate_on_each_side() -> None:
    vanished = [(1, 100, 5), (2, 200, None), (3, 300, 4), (4, 300, 4)]
    statuses = {
        "A": {"UIDVALIDITY": 100, "MESSAGES": 5},  # folder 1
        "B": {"UIDVALIDITY": 200, "MESSAGES": 9},  # folder 2: its count was not known
        "C": {"UIDVALIDITY": 100, "MESSAGES": 6},  # same UIDVALIDITY as 1, another count: not it
        "D": {"UIDVALIDITY": 300, "MESSAGES": 4},  # 3 or 4? ambiguous: neither
        "E": {"UIDVALIDITY": 999, "MESSAGES": 0},
    }
    assert match_renames(vanished, statuses) == {"A": 1, "B": 2}
    # Two new folders for one vanished folder: ambiguous too.
    assert match_renames([(1, 100, None)], {"X": {"UIDVALIDITY": 100}, "Y": {"UIDVALIDITY": 100}}) == {}


# -- helpers -------------------------------------------------------------------


def folder_state(data_dir: Path, folder: str) -> tuple[sqlite3.Row, list[sqlite3.Row], list[str]]:
    """The folder's row, its message rows, and the names of its files in cur/."""
    db = sqlite3.connect(data_dir / "bimmail.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        row = db.execute("SELECT * FROM folders WHERE name = ?", (folder,)).fetchone()
        messages = db.execute("SELECT * FROM messages WHERE folder_id = ? ORDER BY id", (row["id"],)).fetchall()
    finally:
        db.close()
    cur = data_dir / "mail" / str(row["account_id"]) / row["maildir"] / "cur"
    return row, messages, sorted(p.name for p in cur.iterdir()) if cur.is_dir() else []


def assert_exact(data_dir: Path, user: ImapUser, folder: str, server_folder: str | None = None) -> list[sqlite3.Row]:
    """Index = server = Maildir: one row and one file per server message, named after the folder's
    UIDVALIDITY and the message's UID, with the server's bytes; nothing left in tmp/."""
    row, rows, on_disk = folder_state(data_dir, folder)
    server = server_messages(user, server_folder or folder)
    assert sorted(r["uid"] for r in rows) == sorted(server), "one row per server message"
    assert on_disk == sorted(r["filename"] for r in rows), "files and index agree"
    directory = data_dir / "mail" / str(row["account_id"]) / row["maildir"]
    assert not list((directory / "tmp").iterdir())
    for r in rows:
        assert parse_name(r["filename"]) == (row["uidvalidity"], r["uid"])
        assert (directory / "cur" / r["filename"]).read_bytes() == server[r["uid"]][0]
    return rows


# -- gap: a crash in the middle of a UIDVALIDITY re-map --------------------------


def era(name: str) -> int:
    """The UIDVALIDITY a Maildir file name carries."""
    parsed = parse_name(name)
    assert parsed is not None, name
    return parsed[0]


def _crossing_eras(pairs: list[tuple[str, str]]) -> bool:
    """Renames from one UIDVALIDITY to another: the re-map's (flag changes keep the UIDVALIDITY)."""
    return any(era(old) != era(new) for old, new in pairs)


@pytest.mark.parametrize("point", ["before-renames", "after-renames"])
async def test_crash_mid_remap_is_finished_not_undone(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """The re-map is made to fail at its two crash windows: its new UIDs committed but no file
    renamed yet, and every file renamed but the new names not committed.  Then the daemon is
    started again and fetches.

    An in-process failure stands for a SIGKILL here: the failure is raised at the exact point,
    after everything before it is durable (the commit; the renames and the directory fsync),
    and nothing runs after it that touches this folder's files or rows (the account's run ends
    with an error, as tests/sync/test_crash.py's delivery case does).  A real kill cannot be
    timed into a window of a few milliseconds.  The restart is a new daemon on the same data,
    so reconciliation runs as after a real restart.
    """
    user = mail_servers.user
    messages = [make_message(i, folder="Archive") for i in range(12)]
    user.deliver_many(messages, "Archive")
    config = daemon_config(short_dir, tmp_path)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            await client.call("automation.set", {"enabled": False})  # only the fetches below
            await add_account(client, mail_servers)
            assert by_folder(await fetch(client))["Archive"]["new"] == 12
    finally:
        await stop_daemon(running)
    old_folder, before_rows, _ = folder_state(config.data_dir, "Archive")
    before = {r["message_id"]: r["id"] for r in before_rows}
    with user.imap() as imap:  # the server loses its UIDs: folder recreated, same messages, new order
        imap.delete("Archive")
        imap.create("Archive")
        for raw in reversed(messages):
            imap.append("Archive", None, None, raw)

    real = folder_sync.FolderSync._rename_files

    def crash(self: folder_sync.FolderSync, pairs: list[tuple[str, str]]) -> None:
        if not _crossing_eras(pairs):
            return real(self, pairs)
        if point == "after-renames":
            real(self, pairs)
        raise OSError(f"simulated crash in the re-map, {point}")

    monkeypatch.setattr(folder_sync.FolderSync, "_rename_files", crash)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            crashed = await fetch(client)
            assert crashed["state"] == "error" and "simulated crash" in crashed["error"], crashed
    finally:
        await stop_daemon(running)
    monkeypatch.setattr(folder_sync.FolderSync, "_rename_files", real)
    # The state a kill at that point leaves: the new UIDVALIDITY committed, every row still
    # naming its file of the old era, the files under their old or their new names.
    folder, rows, on_disk = folder_state(config.data_dir, "Archive")
    assert folder["uidvalidity"] != old_folder["uidvalidity"]
    assert {era(r["filename"]) for r in rows} == {old_folder["uidvalidity"]}
    assert len(on_disk) == 12
    renamed = point == "after-renames"
    assert {era(name) for name in on_disk} == {folder["uidvalidity"] if renamed else old_folder["uidvalidity"]}

    running = await start_daemon(config)  # a new daemon: reconciliation runs again
    try:
        async with await Client.connect(config.socket_path) as client:
            result = await fetch(client)
    finally:
        await stop_daemon(running)
    assert result["state"] == "ok", result
    archive = by_folder(result)["Archive"]
    assert (archive["new"], archive["removed"]) == (0, 0), "nothing downloaded again, nothing lost"
    after = assert_exact(config.data_dir, user, "Archive")
    assert {r["message_id"]: r["id"] for r in after} == before, "every local id kept"


# -- gap: a message the server does not return ------------------------------------


@pytest.fixture
async def proxy(mail_servers: MailServers) -> AsyncIterator[FaultProxy]:
    """Between the daemon and Dovecot's clear-text listener (the only traffic it can rewrite)."""
    async with FaultProxy.start("127.0.0.2", mail_servers.dovecot.ports["imap_notls"]) as running:
        yield running
    assert running.errors == [], "the proxy itself failed"


# The download's answer for UID 3: ``* n FETCH (UID 3 … BODY[] {size}`` then the literal.
UID3_BODY = rb"^(\* \d+ FETCH \(.*\bUID )3( .*)BODY\[\]( \{\d+\}\r\n)$"
FAULTS = {
    # The item comes, its content under another name (as a NIL body would: no BODY[]).
    "without-body": rb"\g<1>3\2BODY[TEXT]\3",
    # No item for UID 3 at all (one for a UID not asked for instead, which is ignored).
    "absent": rb"\g<1>99999\2BODY[]\3",
}


@pytest.mark.parametrize("fault", FAULTS)
async def test_message_not_returned_is_fetched_by_the_next_run(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers, proxy: FaultProxy, fault: str
) -> None:
    """Dovecot cannot be made to answer a UID FETCH without a message's body: the proxy rewrites
    its answer.  The folder's stored state must not claim the message (UIDNEXT past it, the count
    known): then the next STATUS would call the folder unchanged and it would never be fetched."""
    await client.call("automation.set", {"enabled": False})
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(5)])
    await add_account(client, mail_servers, imap={"host": "127.0.0.1", "port": proxy.port, "security": "none"})
    proxy.rewrite(UID3_BODY, FAULTS[fault])
    first = await fetch(client)
    inbox = by_folder(first)["INBOX"]
    assert inbox["new"] == 4
    if fault == "without-body":
        assert first["state"] == "error" and "UID 3" in (inbox["error"] or ""), first
    else:
        assert first["state"] == "ok" and inbox["error"] is None, first
        assert any("UID 3" in note for note in first["notes"]), first["notes"]
    folder, rows, _ = folder_state(daemon.data_dir, "INBOX")
    assert sorted(r["uid"] for r in rows) == [1, 2, 4, 5]
    assert (folder["uidnext"], folder["message_count"]) == (3, None), "the next run starts at UID 3"

    proxy.clear()
    second = await fetch(client)
    assert second["state"] == "ok", second
    assert by_folder(second)["INBOX"]["new"] == 1
    assert_exact(daemon.data_dir, user, "INBOX")
    assert by_folder(await fetch(client))["INBOX"]["unchanged"], "complete again: one STATUS"


# -- gap: folders renamed or deleted on the server ----------------------------------


async def sync_user_folders(client: Client, servers: MailServers, counts: dict[str, int]) -> dict[str, Any]:
    """User folders created on the server with messages, chosen for sync, fetched once
    (automation off: only the tests' fetches run, so each note is seen by the fetch it expects)."""
    await client.call("automation.set", {"enabled": False})
    with servers.user.imap() as imap:
        for name in counts:
            imap.create(name)
    for name, count in counts.items():
        servers.user.deliver_many([make_message(i, folder=name) for i in range(count)], name)
    await add_account(client, servers)
    await client.call("account.folders", {"account": "Work", "select": list(counts)})
    return by_folder(await fetch(client))


async def folders(client: Client) -> dict[str, dict[str, Any]]:
    listing = await client.call("account.folders", {"account": "Work", "refresh": False})
    return {f["name"]: f for f in listing["folders"]}


async def test_folder_renamed_on_server_keeps_its_copies_and_syncs(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """RENAME by another client, a sub-folder with it: the rows follow (same ids, same Maildir),
    nothing is downloaded again, and new mail in the renamed folders syncs."""
    user = mail_servers.user
    first = await sync_user_folders(client, mail_servers, {"Projets": 5, "Projets/2023": 3})
    assert (first["Projets"]["new"], first["Projets/2023"]["new"]) == (5, 3)
    before = {r["message_id"]: (r["id"], r["maildir"]) for r in index(daemon)}

    with user.imap() as imap:
        typ, data = imap.rename("Projets", "Clients")
        assert typ == "OK", data
    result = await fetch(client)
    assert result["state"] == "ok", result
    synced = by_folder(result)
    assert "Projets" not in synced and "Projets/2023" not in synced
    assert synced["Clients"]["unchanged"] and synced["Clients/2023"]["unchanged"], "nothing downloaded again"
    assert sorted(result["notes"]) == [
        "folder 'Projets' was renamed 'Clients' on the server; its local copies follow it",
        "folder 'Projets/2023' was renamed 'Clients/2023' on the server; its local copies follow it",
    ]
    assert {r["message_id"]: (r["id"], r["maildir"]) for r in index(daemon)} == before, "same rows, same Maildirs"
    listed = await folders(client)
    assert "Projets" not in listed and "Projets/2023" not in listed, "no gone row left behind"
    assert (listed["Clients"]["selected"], listed["Clients"]["state"], listed["Clients"]["messages"]) == (
        True, "present", 5,
    )  # fmt: skip
    assert listed["Clients/2023"]["messages"] == 3

    user.append(make_message(50, folder="Clients"), "Clients")
    later = await fetch(client)
    assert by_folder(later)["Clients"]["new"] == 1 and later["notes"] == []
    assert_exact(daemon.data_dir, user, "Clients")
    assert_exact(daemon.data_dir, user, "Clients/2023")


async def test_folder_deleted_while_another_appears_is_no_rename(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    """A folder deleted on the server and an unrelated new one (another UIDVALIDITY): the first
    stays ``gone`` with its local copies, the second is a new folder, not synchronised."""
    user = mail_servers.user
    assert (await sync_user_folders(client, mail_servers, {"Projets": 5}))["Projets"]["new"] == 5
    with user.imap() as imap:
        imap.delete("Projets")
        imap.create("Autre")
    user.deliver_many([make_message(i, folder="Projets") for i in range(5)], "Autre")  # same messages, even
    result = await fetch(client)
    assert result["state"] == "ok" and "Autre" not in by_folder(result)
    assert result["notes"] == [
        "folder 'Projets' is no longer on the server (renamed or deleted there); its local copies are kept"
    ]
    listed = await folders(client)
    assert (listed["Projets"]["state"], listed["Projets"]["messages"]) == ("gone", 5)
    assert (listed["Autre"]["state"], listed["Autre"]["selected"], listed["Autre"]["messages"]) == ("present", False, 0)
