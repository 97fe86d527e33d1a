"""200 clients at once while a fetch downloads thousands of messages (issue 9).

Every request of every client is answered with a result: no error, no "database is locked", no
connection refused in the burst; the fetch itself completes with every message.  No timing is
asserted here: ``benchmarks/many_clients.py`` measures the latencies.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from bimmailctl.client import Client
from tests.helpers import RunningDaemon
from tests.servers.dovecot import Dovecot, ImapUser

CLIENTS = 200
MESSAGES = 3000
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@many>\r\n\r\n%s\r\n"


async def fetching(client: Client) -> bool:
    return bool((await client.call("account.show", {"account": "Work"}))["status"]["fetching"])


async def busy_client(daemon: RunningDaemon, index: int) -> tuple[int, int]:
    """Rounds of the usual requests until the fetch is over: (requests, those made during it)."""
    requests = during = 0
    async with await Client.connect(daemon.socket_path, client_name=f"client {index}") as client:
        for _ in range(10_000):
            accounts = await client.call("account.list")
            status = await client.call("status")
            listed = await client.call("messages.list", {"account": "Work", "limit": 20, "offset": index})
            shown = await client.call("account.show", {"account": accounts[0]["id"]})
            assert status["accounts"]["total"] == 1 and isinstance(listed, list)
            requests += 4
            if not shown["status"]["fetching"]:
                return requests, during
            during += 4
    raise AssertionError("the fetch never ended")


@pytest.mark.slow
async def test_200_clients_during_a_fetch(
    daemon: RunningDaemon, client: Client, dovecot: Dovecot, imap_user: ImapUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    imap_user.deliver_many([MESSAGE % (i, i, b"x" * 500) for i in range(MESSAGES)])
    await client.call("account.add", imap_user.account_params(security="starttls"))
    await client.call("fetch", {"accounts": ["Work"]})  # starts it and returns
    for _ in range(500):
        if await fetching(client):
            break
        await asyncio.sleep(0.01)
    assert await fetching(client), "the fetch did not start"

    results = await asyncio.gather(*(busy_client(daemon, i) for i in range(CLIENTS)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == [], failures[:3]
    answered = [r for r in results if not isinstance(r, BaseException)]
    assert len(answered) == CLIENTS
    assert sum(during for _, during in answered) > 0, "no request was made while the fetch ran"

    done = await client.call("fetch", {"accounts": ["Work"], "wait": True})  # waits for the running one
    [account] = done["accounts"]
    assert account["state"] == "ok", account
    inbox = await client.call("messages.list", {"account": "Work", "folder": "INBOX", "limit": 10_000})
    assert len(inbox) == MESSAGES
    assert "database is locked" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[-3000:]
