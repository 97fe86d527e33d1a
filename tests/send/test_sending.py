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
        _, data = imap.uid("SEARCH", "ALL")
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


async def local_folder(client: Client, folder: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await client.call("messages.list", {"account": "Work", "folder": folder})
    return rows


async def test_sent_copy_is_downloaded_into_the_local_sent_folder(client: Client, mail_servers: MailServers) -> None:
    """R-D2: the copy is indexed locally too, without waiting for the next fetch."""
    await add_account(client, mail_servers)
    await client.call("fetch", {"accounts": ["Work"], "wait": True})
    result = await client.call("send", {"to": "bob@example.net", "subject": "Local", "text": "x"})
    deadline = asyncio.get_running_loop().time() + 10
    while not [m for m in await local_folder(client, "Sent") if m["message_id"] == result["message_id"]]:
        assert asyncio.get_running_loop().time() < deadline, "the Sent copy never reached the local store"
        await asyncio.sleep(0.1)
    [row] = await local_folder(client, "Sent")
    assert "\\Seen" in row["flags"] and row["subject"] == "Local"


@pytest.mark.parametrize(
    ("port", "security", "auth"),
    [
        ("ssl", "ssl", True),
        ("starttls", "starttls", True),
        ("plain", "none", False),
        ("starttls", "starttls", False),
        ("ssl", "ssl", False),
    ],
)
async def test_each_security_mode_and_auth_setting(
    client: Client, mail_servers: MailServers, port: str, security: str, auth: bool
) -> None:
    """R-B3: the account's SMTP transport and authentication, exactly as configured."""
    mail_servers.smtp.auth_required = auth
    smtp = {"host": "127.0.0.1", "port": mail_servers.smtp.ports[port], "security": security, "auth": auth}  # type: ignore[index]
    await add_account(client, mail_servers, smtp=smtp)
    result = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert result["state"] == "sent", result
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    assert delivery.port_kind == port
    assert delivery.auth_login == (mail_servers.user.login if auth else None)


async def test_starttls_not_offered_is_a_permanent_failure(client: Client, mail_servers: MailServers) -> None:
    """Never a downgrade: STARTTLS required on a server that does not offer it sends nothing."""
    smtp = {"port": mail_servers.smtp.ports["plain"], "security": "starttls"}
    await add_account(client, mail_servers, smtp=smtp)
    result = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert result["state"] == "failed" and "STARTTLS" in result["error"], result
    assert mail_servers.smtp.deliveries == []


async def test_untrusted_certificate_is_refused(client: Client, mail_servers: MailServers) -> None:
    await add_account(client, mail_servers, tls_ca_file=None)
    result = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert result["state"] == "failed" and "certificate" in result["error"], result
    assert mail_servers.smtp.deliveries == []


async def test_primary_account_is_the_default_sender(client: Client, mail_servers: MailServers, dovecot: Any) -> None:
    """R-D2, R-E2: no --from → the primary account; none primary → a clear error naming 'from'."""
    other = dovecot.add_user()
    mail_servers.smtp.users[other.login] = other.password
    await add_account(client, mail_servers, "Work")
    await add_account(client, mail_servers, "Home", email=other.login, password=other.password)
    first = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert first["account"] == "Work"
    await client.call("account.primary", {"account": "Home"})
    second = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert second["account"] == "Home"
    deliveries = await mail_servers.smtp.wait_for_deliveries(2)
    assert [d.mail_from for d in deliveries] == [mail_servers.user.login, other.login]
    assert [d.auth_login for d in deliveries] == [mail_servers.user.login, other.login]
    await client.call("account.modify", {"account": "Home", "primary": False})
    with pytest.raises(BimmailError) as caught:
        await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert caught.value.code == ErrorCode.INVALID_PARAMS and caught.value.field == "from"


async def test_semicolon_separator_keeps_quoted_commas(client: Client, mail_servers: MailServers) -> None:
    """R-D1: ';' splits; the ',' inside a quoted display name does not; headers use ','."""
    await add_account(client, mail_servers, separator=";")
    result = await client.call(
        "send", {"to": '"Dupont, Jean" <jean@x.fr>; bob@example.net', "cc": "Zoé <zoe@example.net>", "text": "x"}
    )
    assert result["accepted"] == ["jean@x.fr", "bob@example.net", "zoe@example.net"]
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    assert delivery.rcpt_tos == ["jean@x.fr", "bob@example.net", "zoe@example.net"]
    message = delivery.message
    assert [a.addr_spec for a in message["To"].addresses] == ["jean@x.fr", "bob@example.net"]
    assert message["To"].addresses[0].display_name == "Dupont, Jean"
    assert message["Cc"].addresses[0].display_name == "Zoé"
    assert b"=?utf-8?" in delivery.data.split(b"\r\n\r\n")[0]  # the raw header is RFC 2047-encoded


async def test_wrong_separator_is_refused_with_a_hint(client: Client, mail_servers: MailServers) -> None:
    """R-D1: the manual's 'only one of two recipients got it': refused, nothing sent, the setting named."""
    await add_account(client, mail_servers, separator=";")
    with pytest.raises(BimmailError) as caught:
        await client.call("send", {"to": "bob@example.net, carol@example.net", "text": "x"})
    assert caught.value.code == ErrorCode.INVALID_PARAMS and caught.value.field == "to"
    assert "separator" in caught.value.message
    assert await client.call("outbox.list") == []
    assert mail_servers.smtp.deliveries == []


async def test_bad_recipient_names_its_field(client: Client, mail_servers: MailServers) -> None:
    await add_account(client, mail_servers)
    for field, value in (("cc", "not an address"), ("bcc", "bob@"), ("to", "")):
        params = {"to": "bob@example.net", "text": "x", field: value}
        if field == "to":
            params = {"text": "x"}
        with pytest.raises(BimmailError) as caught:
            await client.call("send", params)
        assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID_PARAMS, field)
    assert mail_servers.smtp.deliveries == []


async def test_one_recipient_refused_is_a_partial_result(client: Client, mail_servers: MailServers) -> None:
    """R-D1: per-recipient result; the refused one listed with the server's reply."""
    await add_account(client, mail_servers)
    mail_servers.smtp.refuse["carol@example.net"] = (550, "5.1.1 No such user")
    result = await client.call("send", {"to": "bob@example.net, carol@example.net", "text": "x"})
    assert result["state"] == "sent" and result["partial"]
    assert result["accepted"] == ["bob@example.net"]
    assert result["refused"] == {"carol@example.net": {"code": 550, "message": "5.1.1 No such user"}}
    assert result["retrying"] == []
    assert "OK" in result["reply"], "the server's own answer to the message"
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    assert delivery.rcpt_tos == ["bob@example.net"]
    # The refused recipient is kept for the user, as a wholly refused message is (outbox retry|cancel).
    entries = {e["id"]: e for e in await client.call("outbox.list")}
    kept = entries[result["refused_outbox_id"]]
    assert (kept["state"], kept["recipients"]) == ("failed", ["carol@example.net"])
    assert "carol@example.net: 550 5.1.1 No such user" in kept["last_error"]
    assert entries[result["outbox_id"]]["state"] == "sent"
    mail_servers.smtp.refuse.clear()  # the address was fixed on the server side
    retried = await client.call("outbox.retry", {"id": kept["id"]})
    assert retried["state"] == "sent" and retried["accepted"] == ["carol@example.net"]


async def test_international_domain_needs_no_smtputf8(client: Client, mail_servers: MailServers) -> None:
    """An IDN domain has an ASCII form (its A-label), in the envelope as in the headers: a server
    without SMTPUTF8 (the test server offers none) takes the message."""
    await add_account(client, mail_servers)
    result = await client.call("send", {"to": "Jean <jean@exämple.fr>", "text": "x"})
    assert result["state"] == "sent", result
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    assert delivery.rcpt_tos == ["jean@xn--exmple-cua.fr"]
    assert delivery.message["To"] == "Jean <jean@xn--exmple-cua.fr>"


async def test_bcc_is_in_the_envelope_only(client: Client, mail_servers: MailServers) -> None:
    await add_account(client, mail_servers)
    await client.call("send", {"to": "bob@example.net", "bcc": "secret@example.net", "text": "x"})
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    assert delivery.rcpt_tos == ["bob@example.net", "secret@example.net"]
    assert "Bcc" not in delivery.message and b"secret@" not in delivery.data
    await wait_for(lambda: len(sent_folder(mail_servers)) == 1)
    assert sent_folder(mail_servers)[0]["Bcc"] == "secret@example.net"  # the sender's own copy keeps it


async def test_every_recipient_refused_sends_nothing(client: Client, mail_servers: MailServers) -> None:
    await add_account(client, mail_servers)
    mail_servers.smtp.refuse["bob@example.net"] = (550, "5.1.1 No such user")
    result = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert result["state"] == "failed" and "bob@example.net" in result["error"]
    assert mail_servers.smtp.deliveries == []
    [entry] = await client.call("outbox.list")
    assert entry["state"] == "failed"


async def test_attachments(client: Client, mail_servers: MailServers) -> None:
    await add_account(client, mail_servers)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    await client.call(
        "send",
        {"to": "bob@example.net", "text": "see attached", "attachments": [{"filename": "rapport é.pdf", "data": pdf}]},
    )
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1)
    [attachment] = list(delivery.message.iter_attachments())
    assert attachment.get_filename() == "rapport é.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf


async def test_invalid_attachment_is_refused(client: Client, mail_servers: MailServers) -> None:
    await add_account(client, mail_servers)
    with pytest.raises(BimmailError) as caught:
        await client.call("send", {"to": "bob@example.net", "text": "x", "attachments": [{"filename": "a"}]})
    assert caught.value.field == "attachments[0].data"
