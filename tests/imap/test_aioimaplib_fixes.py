"""Each defect of aioimaplib 2.0.3 that the adapter fixes, against Dovecot: first the library's own
behaviour (so that a future version without the defect is noticed and the override can go), then
ours.  DESIGN.md §6 and ``bimmaild/imap/protocol.py`` describe the defects.
"""

from __future__ import annotations

import asyncio

import pytest
from aioimaplib import aioimaplib as lib

from bimmaild.imap.connection import ImapConnection
from bimmaild.imap.parse import FetchItem
from tests.servers.dovecot import Dovecot, ImapUser

BIG = 30_000
# Sent as a quoted string inside ENVELOPE: "* " and an unbalanced "(" within quotes.
TRICKY_SUBJECT = b"Hello * (world * star"


@pytest.fixture(scope="module")
def big_mailbox(dovecot: Dovecot) -> ImapUser:
    """30,000 small messages in INBOX, and one with a subject that trips the library's parser."""
    user = dovecot.add_user()
    template = b"From: a@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@big>\r\n\r\nbody\r\n"
    user.deliver_many([template % (i, i) for i in range(BIG)])
    user.deliver(
        b"From: b@example.org\r\nSubject: " + TRICKY_SUBJECT + b"\r\nMessage-ID: <tricky@x>\r\n\r\nx\r\n", "Archive"
    )
    return user


async def _library_client(dovecot: Dovecot, user: ImapUser) -> lib.IMAP4_SSL:
    client = lib.IMAP4_SSL("127.0.0.1", dovecot.ports["imaps"], ssl_context=dovecot.client_context(), timeout=10)
    await client.wait_hello_from_server()
    await client.login(user.login, user.password)
    return client


async def _ours(dovecot: Dovecot, user: ImapUser) -> ImapConnection:
    conn = await ImapConnection.open("127.0.0.1", dovecot.ports["imaps"], "ssl", dovecot.client_context(), 30)
    await conn.login(user.login, user.password)
    return conn


async def test_library_hangs_on_a_long_response(dovecot: Dovecot, big_mailbox: ImapUser) -> None:
    """Upstream #118: >1,000 lines in one read → RecursionError in data_received, call never returns."""
    client = await _library_client(dovecot, big_mailbox)
    try:
        await client.select("INBOX")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.uid("fetch", "1:5000", "(UID FLAGS)"), 3)
    finally:
        client.protocol.transport.close()


async def test_adapter_streams_thirty_thousand_items(dovecot: Dovecot, big_mailbox: ImapUser) -> None:
    conn = await _ours(dovecot, big_mailbox)
    try:
        state = await conn.select('"INBOX"')
        assert state.exists == BIG
        uids: list[int] = []
        count = await conn.uid_fetch("1:*", "(UID FLAGS)", lambda item: uids.append(item.uid or 0))
        assert count == BIG and uids == list(range(1, BIG + 1))
        subjects: list[bytes] = []

        def on_item(item: FetchItem) -> None:
            subjects.append(item.sections["BODY[HEADER.FIELDS (SUBJECT)]"])

        await conn.uid_fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])", on_item)
        assert sorted(subjects) == sorted(b"Subject: message %d\r\n\r\n" % i for i in range(BIG))
    finally:
        await conn.logout()


async def test_library_corrupts_star_space_in_data(dovecot: Dovecot, big_mailbox: ImapUser) -> None:
    """The library deletes every "* " of an untagged line; the adapter keeps the data intact."""
    client = await _library_client(dovecot, big_mailbox)
    try:
        await client.select("Archive")
        response = await asyncio.wait_for(client.uid("fetch", "1", "(ENVELOPE)"), 5)
        text = b" ".join(line for line in response.lines if isinstance(line, bytes))
        assert b'"Hello (world star"' in text, "if this fails, aioimaplib no longer strips '* ' inside data"
    finally:
        client.protocol.transport.close()
    conn = await _ours(dovecot, big_mailbox)
    try:
        await conn.select('"Archive"')
        found: list[FetchItem] = []
        await conn.uid_fetch("1", "(UID ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])", found.append)
        [item] = found  # the unbalanced "(" in the quoted subject did not swallow the item's end
        assert item.sections["BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: " + TRICKY_SUBJECT + b"\r\n\r\n"
    finally:
        await conn.logout()
