"""Quick resynchronisation (QRESYNC, RFC 7162) against the real Dovecot (R-C2).

With QRESYNC the SELECT answer itself says which messages vanished and whose
flags changed since the last complete sync: a changed folder costs STATUS +
SELECT (+ the new messages), never its whole UID list.  Without it (the proxy
hides the capability, as a server lacking it would) the same changes are found
with CONDSTORE's CHANGEDSINCE and a UID SEARCH.  What the daemon sent is read
off the proxy between it and Dovecot's clear-text listener.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from bimmailctl.client import Client
from tests.helpers import RunningDaemon
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy
from tests.sync.test_sync import add_account, by_folder, fetch, index, make_message


@pytest.fixture
async def proxy(mail_servers: MailServers) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.start("127.0.0.2", mail_servers.dovecot.ports["imap_notls"]) as running:
        yield running
    assert running.errors == [], "the proxy itself failed"


@pytest.mark.parametrize("qresync", [True, False], ids=["qresync", "condstore-only"])
async def test_changes_found_with_and_without_qresync(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers, proxy: FaultProxy, qresync: bool
) -> None:
    if not qresync:
        proxy.rewrite(rb" QRESYNC\b", b"")
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(30)])
    await add_account(client, mail_servers, imap={"host": "127.0.0.1", "port": proxy.port, "security": "none"})
    assert by_folder(await fetch(client))["INBOX"]["new"] == 30
    with user.imap() as imap:  # another client: reads one, flags one, deletes three
        imap.select("INBOX")
        imap.uid("STORE", "1", "+FLAGS", "(\\Seen)")
        imap.uid("STORE", "2", "+FLAGS", "(\\Flagged)")
        imap.uid("STORE", "3,4,10", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    user.append(make_message(100), "INBOX")
    start = len(proxy.from_clients)
    result = by_folder(await fetch(client))["INBOX"]
    sent = bytes(proxy.from_clients[start:])

    assert (result["new"], result["updated"], result["removed"]) == (1, 2, 3)
    rows = {r["uid"]: r for r in index(daemon) if r["folder"] == "INBOX"}
    assert set(rows) == set(range(1, 32)) - {3, 4, 10}
    assert (rows[1]["flags"], rows[2]["flags"], rows[5]["flags"]) == ("\\Seen", "\\Flagged", "")
    if qresync:
        assert b"ENABLE QRESYNC" in sent
        assert re.search(rb'SELECT "INBOX" \(QRESYNC \(\d+ \d+\)\)', sent)
        assert b"UID SEARCH" not in sent and b"CHANGEDSINCE" not in sent, sent
    else:
        assert b"QRESYNC" not in sent
        assert b"CHANGEDSINCE" in sent and b"UID SEARCH" in sent


async def test_qresync_mass_removal_still_stops_until_confirmed(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers, proxy: FaultProxy
) -> None:
    """A VANISHED list is held to the same safety stop as a UID SEARCH, and the stopped sync's
    MODSEQ is not trusted later: the next runs look again until the removal is confirmed."""
    user = mail_servers.user
    user.deliver_many([make_message(i) for i in range(40)])
    await add_account(client, mail_servers, imap={"host": "127.0.0.1", "port": proxy.port, "security": "none"})
    await fetch(client)
    with user.imap() as imap:
        imap.select("INBOX")
        imap.uid("STORE", "1:30", "+FLAGS", "(\\Deleted)")
        imap.expunge()
    for _ in range(2):
        stopped = await fetch(client)
        assert stopped["state"] == "needs-attention", stopped
        assert by_folder(stopped)["INBOX"]["removed"] == 0
        assert len([r for r in index(daemon) if r["folder"] == "INBOX"]) == 40
    confirmed = by_folder(await fetch(client, confirm=True))["INBOX"]
    assert confirmed["removed"] == 30
    assert sorted(r["uid"] for r in index(daemon) if r["folder"] == "INBOX") == list(range(31, 41))
