"""SIGKILL at chosen points between a journal entry and the server's confirmation (R-C4, R-C7).

``test_crash_points`` kills the daemon at random moments; here each kill lands at
a named point of a delete's way to the server trash, every time.  The daemon is a
real process; between it and Dovecot's clear-text listener, the fault proxy
(``tests/servers/proxy.py``) holds back the server's answers from a chosen line on.
The daemon has then sent its next command, which the server carries out while its
answer waits: the test watches the server until the command has taken effect, and
kills the daemon there — the server changed, the daemon never heard of it.  After
a restart and a fetch: the message is in the server trash exactly once, nowhere
else, indexed once locally, and the journal is empty.

Points, with MOVE (RFC 6851):
* ``journaled``: the entry is committed, nothing sent (the server's LIST answer held);
* ``moved``: UID MOVE done on the server, its answer held;
and on a server without MOVE (the proxy hides the capability):
* ``copied``: UID COPY done, answer (with COPYUID) held;
* ``flagged``: then STORE \\Deleted done, answer held;
* ``expunged``: then UID EXPUNGE done, answer held.

And for a deletion for good from the trash (the journal's ``expunge``): journaled; STORE
``\\Deleted`` done; UID EXPUNGE done.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from tests.reliability.test_crash_points import Daemon, check_store, server_ids
from tests.servers.dovecot import ImapUser
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy
from tests.sync.test_sync import make_message

VICTIM = "<msg1.INBOX@example.fr>"


def in_inbox(user: ImapUser) -> bool:
    return server_ids(user, "INBOX")[VICTIM] == 1


def in_trash(user: ImapUser) -> bool:
    return server_ids(user, "BIMoffice")[VICTIM] == 1


def flagged_deleted(user: ImapUser) -> bool:
    with user.imap() as imap:
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("SEARCH", "DELETED")
    return bool(data[0].split())


# point → (capability hidden, server line after which answers are held, what the server shows then).
# A move is: SELECT the source, UID SEARCH UID n (still there?), then UID MOVE — or UID COPY,
# UID STORE +FLAGS.SILENT (\Deleted), UID EXPUNGE.
POINTS: dict[str, tuple[bytes | None, bytes, Callable[[ImapUser], bool]]] = {
    "journaled": (None, rb"^\* LIST ", lambda user: in_inbox(user) and not in_trash(user)),
    "moved": (None, rb"OK Search completed", lambda user: in_trash(user) and not in_inbox(user)),
    "copied": (b"MOVE", rb"OK Search completed", lambda user: in_trash(user) and in_inbox(user)),
    "flagged": (b"MOVE", rb"OK \[COPYUID ", lambda user: in_trash(user) and flagged_deleted(user)),
    "expunged": (b"MOVE", rb"OK Store completed", lambda user: in_trash(user) and not in_inbox(user)),
}


@pytest.fixture
async def proxy(mail_servers: MailServers) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.start("127.0.0.2", mail_servers.dovecot.ports["imap_notls"]) as running:
        yield running
    assert running.errors == [], "the proxy itself failed"


async def wait_until(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server never showed: {what}")


pytestmark = pytest.mark.slow


async def synced_account(client: Client, servers: MailServers, proxy: FaultProxy) -> tuple[int, int]:
    """The account, reached through the proxy and fetched once; (its id, VICTIM's message id).
    Automation off: no IDLE connection, so the mirror's is the only one the proxy's fault meets."""
    await client.call("automation.set", {"enabled": False})
    params = servers.account_params(imap={"host": "127.0.0.1", "port": proxy.port, "security": "none"})
    account = (await client.call("account.add", {**params, "test": False}))["account"]["id"]
    await client.call("fetch", {"wait": True})
    [victim] = [m for m in await client.call("messages.list", {"account": "Work"}) if m["message_id"] == VICTIM]
    return account, victim["id"]


async def kill_at(
    daemon: Daemon, client: Client, proxy: FaultProxy, held_after: bytes, ask: Awaitable[Any], shows: Callable[[], bool]
) -> None:
    """Hold the server's answers after ``held_after``, ask, wait until the server ``shows`` the
    command carried out, SIGKILL the daemon."""
    fault = proxy.stall(after_line=held_after)
    await ask  # journaled, then the mirror runs
    await asyncio.wait_for(fault.tripped.wait(), 10)
    await wait_until(shows, held_after.decode())
    await daemon.kill()


async def replay_after_restart(daemon: Daemon) -> Client:
    """Restart; the entry survived the kill, and one fetch carries it out."""
    await daemon.start()
    client = await Client.connect(daemon.socket)
    assert (await client.call("status"))["pending_operations"] == {"Work": 1}, "the entry survived the kill"
    result = await client.call("fetch", {"wait": True})
    assert result["accounts"][0]["state"] == "ok", result
    assert (await client.call("status"))["pending_operations"] == {"Work": 0}
    return client


CASES = [(point, False) for point in POINTS] + [(point, True) for point, (hidden, *_) in POINTS.items() if hidden]


@pytest.mark.parametrize(("point", "upgraded"), CASES, ids=[p + ("-then-MOVE" if u else "") for p, u in CASES])
async def test_sigkill_between_journal_and_confirmation(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers, proxy: FaultProxy, point: str, upgraded: bool
) -> None:
    """``upgraded``: the server offers MOVE after the restart (upgraded while the daemon was down):
    a move begun as COPY is finished as such, or the message would be copied twice."""
    hidden, held_after, server_shows = POINTS[point]
    if hidden is not None:
        proxy.rewrite(rb" " + hidden + rb"\b", b"")
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(3)])
    daemon = Daemon(short_dir, tmp_path)
    await daemon.start()
    try:
        async with daemon.client() as client:
            account, victim = await synced_account(client, mail_servers, proxy)
            ask = client.call("messages.delete", {"ids": [victim]})
            await kill_at(daemon, client, proxy, held_after, ask, lambda: server_shows(user))
        proxy.release()
        if upgraded:
            proxy.clear()
        async with await replay_after_restart(daemon) as client:
            trash = await client.call("messages.list", {"account": "Work", "trash": True})
    finally:
        await daemon.stop()
    assert server_ids(user, "BIMoffice") == {VICTIM: 1}, "exactly one copy in the server trash"
    assert VICTIM not in server_ids(user, "INBOX")
    assert not flagged_deleted(user), "no other message was marked deleted"
    assert [m["message_id"] for m in trash] == [VICTIM]
    assert sum(server_ids(user, "INBOX").values()) == 2, "the two others untouched"
    check_store(daemon.data, {account: user})


def trash_flagged_deleted(user: ImapUser) -> bool:
    with user.imap() as imap:
        imap.select("BIMoffice", readonly=True)
        _, data = imap.uid("SEARCH", "DELETED")
    return bool(data[0].split())


# A deletion for good from the trash: SELECT the trash, UID SEARCH UID n, UID STORE +FLAGS.SILENT
# (\Deleted), UID EXPUNGE of that UID only.
PURGE_POINTS: dict[str, tuple[bytes, Callable[[ImapUser], bool]]] = {
    "journaled": (rb"^\* LIST ", lambda user: in_trash(user) and not trash_flagged_deleted(user)),
    "flagged": (rb"OK Search completed", lambda user: in_trash(user) and trash_flagged_deleted(user)),
    "expunged": (rb"OK Store completed", lambda user: not in_trash(user)),
}


@pytest.mark.parametrize("point", list(PURGE_POINTS))
async def test_sigkill_during_a_permanent_deletion(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers, proxy: FaultProxy, point: str
) -> None:
    """R-C4, R-C7: a message deleted for good from the trash is expunged on the server exactly once
    — that message only — whatever point the daemon dies at, and is gone locally."""
    held_after, server_shows = PURGE_POINTS[point]
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(3)])
    daemon = Daemon(short_dir, tmp_path)
    await daemon.start()
    try:
        async with daemon.client() as client:
            account, victim = await synced_account(client, mail_servers, proxy)
            await client.call("messages.delete", {"ids": [victim]})
            await client.call("fetch", {"wait": True})  # the move done, the copy indexed in the trash
            assert await asyncio.to_thread(in_trash, user)
            [trashed] = await client.call("messages.list", {"account": "Work", "trash": True})
            ask = client.call("messages.delete", {"ids": [trashed["id"]], "permanent": True, "confirm": True})
            await kill_at(daemon, client, proxy, held_after, ask, lambda: server_shows(user))
        proxy.release()
        async with await replay_after_restart(daemon) as client:
            assert await client.call("messages.list", {"account": "Work", "trash": True}) == []
    finally:
        await daemon.stop()
    assert server_ids(user, "BIMoffice") == {}, "expunged from the server trash"
    assert sum(server_ids(user, "INBOX").values()) == 2, "the two others untouched"
    check_store(daemon.data, {account: user})
