"""Sending through the daemon against the real test SMTP server and Dovecot (R-D1, R-D2, R-E2)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage
from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.protocol.errors import BimmailError, ErrorCode
from tests.servers.fixtures import MailServers


async def add_account(client: Client, servers: MailServers, name: str = "Work", **overrides: Any) -> dict[str, Any]:
    params = servers.account_params(name=name, test=False, **overrides)
    result: dict[str, Any] = await client.call("account.add", params)
    return result


def sent_folder(servers: MailServers) -> list[EmailMessage]:
    """The messages of the user's Sent folder on the server, with their flags checked by the caller."""
    out = []
    with servers.user.imap() as imap:
        imap.select("Sent", readonly=True)
        _, data = imap.uid("SEARCH", None, "ALL")
        for uid in data[0].split():
            _, fetched = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            flags, raw = fetched[0][0], fetched[0][1]
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            message["X-Test-Flags"] = flags.decode()
            out.append(message)
    return out


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_send_delivers_and_files_a_sent_copy(client: Client, mail_servers: MailServers) -> None:
    """R-D1/R-D2: one RCPT per recipient, every one accepted; one \\Seen copy in Sent."""
    await add_account(client, mail_servers)
    result = await client.call(
        "send",
        {"from": "Work", "to": "bob@example.net, Carol <carol@example.net>", "subject": "Hello", "text": "Hi!\n"},
    )
    assert result["state"] == "sent", result
    assert result["accepted"] == ["bob@example.net", "carol@example.net"]
    assert result["refused"] == {} and not result["partial"]
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    assert delivery.rcpt_tos == ["bob@example.net", "carol@example.net"]
    assert delivery.mail_from == mail_servers.user.login
    message = delivery.message
    assert message["Message-ID"] == result["message_id"]
    assert message["To"] == "bob@example.net, Carol <carol@example.net>"
    assert message.get_content().strip() == "Hi!"
    await wait_for(lambda: len(sent_folder(mail_servers)) == 1)
    [copy] = sent_folder(mail_servers)
    assert copy["Message-ID"] == result["message_id"] and "\\Seen" in copy["X-Test-Flags"]
