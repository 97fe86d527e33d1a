"""The outbox: nothing handed to sending is lost or sent twice (R-D1, R-D2, R-C7).

Against the real test SMTP server (its listener stopped for "server down",
its answers switched for refusals) and the real Dovecot for the Sent copy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client, ConnectionLost
from bimmaild.protocol.errors import BimmailError, ErrorCode
from tests.helpers import daemon_config, spawn_daemon, start_daemon, stop_daemon
from tests.send.test_sending import add_account, sent_folder, wait_for
from tests.servers.fixtures import MailServers


@pytest.fixture
async def fast_client(short_dir: Path, tmp_path: Path) -> AsyncIterator[Client]:
    """A daemon whose outbox retries after 0.3 s (doubling), instead of a minute."""
    config = dataclasses.replace(daemon_config(short_dir, tmp_path), send_retry_seconds=0.3)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path, client_name="pytest") as client:
            yield client
    finally:
        await stop_daemon(running)


async def outbox_state(client: Client, outbox_id: int) -> dict[str, Any]:
    entries: list[dict[str, Any]] = await client.call("outbox.list")
    return next(e for e in entries if e["id"] == outbox_id)


def outbox_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "outbox").glob("*.eml"))


async def test_server_down_then_delivered_when_it_returns(fast_client: Client, mail_servers: MailServers) -> None:
    """Temporary failure → kept in the outbox → retried with back-off → delivered, Sent copy once."""
    await add_account(fast_client, mail_servers)
    await mail_servers.smtp.stop_listener("starttls")
    result = await fast_client.call("send", {"to": "bob@example.net", "subject": "Later", "text": "x"})
    assert result["state"] == "queued" and "cannot reach" in result["error"], result
    entry = await outbox_state(fast_client, result["outbox_id"])
    assert entry["state"] == "queued" and entry["next_attempt_at"] is not None and entry["attempts"] == 1
    await asyncio.sleep(1.0)
    assert sent_folder(mail_servers) == []  # no Sent copy of a message not sent yet
    await mail_servers.smtp.start_listener("starttls")
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1, timeout=15)
    assert delivery.message["Message-ID"] == result["message_id"]
    await wait_for(lambda: len(sent_folder(mail_servers)) == 1)
    entry = await outbox_state(fast_client, result["outbox_id"])
    assert entry["state"] == "sent" and entry["result"]["accepted"] == ["bob@example.net"]
    await asyncio.sleep(0.5)
    assert len(mail_servers.smtp.deliveries) == 1 and len(sent_folder(mail_servers)) == 1


async def test_temporarily_refused_recipient_is_retried_alone(fast_client: Client, mail_servers: MailServers) -> None:
    await add_account(fast_client, mail_servers)
    mail_servers.smtp.refuse["carol@example.net"] = (450, "4.2.1 Mailbox busy")
    result = await fast_client.call("send", {"to": "bob@example.net, carol@example.net", "text": "x"})
    assert result["state"] == "sent" and result["partial"] and result["retrying"] == ["carol@example.net"]
    del mail_servers.smtp.refuse["carol@example.net"]
    first, second = await mail_servers.smtp.wait_for_deliveries(2, timeout=15)
    assert (first.rcpt_tos, second.rcpt_tos) == (["bob@example.net"], ["carol@example.net"])
    assert first.data == second.data  # the very same message (Message-ID, Date)
    await wait_for(lambda: len(sent_folder(mail_servers)) == 1)
    states = [e["state"] for e in await fast_client.call("outbox.list")]
    assert states == ["sent", "sent"]


async def test_every_recipient_refused_some_only_for_now(fast_client: Client, mail_servers: MailServers) -> None:
    """Nobody accepted it: the one refused for good is kept for the user, the one refused for now is
    retried on its own entry — not held back by the other's permanent refusal."""
    await add_account(fast_client, mail_servers)
    mail_servers.smtp.refuse["bob@example.net"] = (450, "4.2.1 Mailbox busy")
    mail_servers.smtp.refuse["carol@example.net"] = (550, "5.1.1 No such user")
    result = await fast_client.call("send", {"to": "bob@example.net, carol@example.net", "text": "x"})
    assert (result["state"], result["retrying"]) == ("failed", ["bob@example.net"])
    del mail_servers.smtp.refuse["bob@example.net"]
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1, timeout=15)
    assert delivery.rcpt_tos == ["bob@example.net"]
    entries = {e["id"]: e for e in await fast_client.call("outbox.list")}
    kept = entries[result["outbox_id"]]
    assert (kept["state"], kept["recipients"]) == ("failed", ["carol@example.net"])
    [retried] = [e for e in entries.values() if e["id"] != kept["id"]]
    assert (retried["state"], retried["recipients"]) == ("sent", ["bob@example.net"])


async def test_queued_message_goes_out_when_the_daemon_starts(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers
) -> None:
    """A message whose retry fell due while the daemon was stopped (a machine switched off) is
    sent at start, not one retry period (a minute) later."""
    config = daemon_config(short_dir, tmp_path)
    running = await start_daemon(config)
    try:
        async with await Client.connect(config.socket_path) as client:
            await add_account(client, mail_servers)
            await mail_servers.smtp.stop_listener("starttls")
            queued = await client.call("send", {"to": "bob@example.net", "text": "x"})
            assert queued["state"] == "queued"
    finally:
        await stop_daemon(running)
    db = sqlite3.connect(config.data_dir / "bimmail.sqlite3")
    with db:
        db.execute("UPDATE outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
    db.close()
    await mail_servers.smtp.start_listener("starttls")
    running = await start_daemon(config)
    try:
        [delivery] = await mail_servers.smtp.wait_for_deliveries(1, timeout=10)
        assert delivery.message["Message-ID"] == queued["message_id"]
    finally:
        await stop_daemon(running)


async def test_temporary_authentication_failure_is_retried(fast_client: Client, mail_servers: MailServers) -> None:
    """454 4.7.0 (the server cannot check credentials now, RFC 4954) is no wrong password: the
    message stays queued and goes out once the server checks logins again."""
    await add_account(fast_client, mail_servers)
    mail_servers.smtp.auth_unavailable = True
    result = await fast_client.call("send", {"to": "bob@example.net", "text": "x"})
    assert result["state"] == "queued" and "454" in result["error"], result
    mail_servers.smtp.auth_unavailable = False
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1, timeout=15)
    assert delivery.message["Message-ID"] == result["message_id"]


async def test_permanent_failure_waits_for_the_user(client: Client, mail_servers: MailServers) -> None:
    """5xx: reported, kept (never silently dropped), no Sent copy; retry after the fix delivers it."""
    await add_account(client, mail_servers)
    mail_servers.smtp.refuse_data = (554, "5.7.1 Message rejected")
    result = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert result["state"] == "failed" and "554" in result["error"]
    await client.call("fetch", {"accounts": ["Work"], "wait": True})
    assert sent_folder(mail_servers) == []
    entry = await outbox_state(client, result["outbox_id"])
    assert entry["state"] == "failed" and "5.7.1" in entry["last_error"]
    mail_servers.smtp.refuse_data = None
    retried = await client.call("outbox.retry", {"id": result["outbox_id"]})
    assert retried["state"] == "sent"
    await wait_for(lambda: len(sent_folder(mail_servers)) == 1)
    with pytest.raises(BimmailError) as caught:
        await client.call("outbox.retry", {"id": result["outbox_id"]})
    assert caught.value.code == ErrorCode.INVALID_PARAMS  # sent: nothing to retry
    with pytest.raises(BimmailError) as missing:
        await client.call("outbox.cancel", {"id": 999})
    assert missing.value.code == ErrorCode.NOT_FOUND and missing.value.field == "id"


async def test_cancelled_message_gets_no_sent_copy(client: Client, mail_servers: MailServers, daemon: Any) -> None:
    await add_account(client, mail_servers)
    mail_servers.smtp.refuse_data = (554, "5.7.1 Message rejected")
    result = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert len(outbox_files(daemon.data_dir)) == 1
    cancelled = await client.call("outbox.cancel", {"id": result["outbox_id"]})
    assert cancelled["state"] == "cancelled"
    await client.call("fetch", {"accounts": ["Work"], "wait": True})
    assert sent_folder(mail_servers) == []
    assert outbox_files(daemon.data_dir) == []
    status = await client.call("status")
    assert status["pending_operations"].get("Work", 0) == 0


async def test_sent_message_leaves_no_file_behind(client: Client, mail_servers: MailServers, daemon: Any) -> None:
    await add_account(client, mail_servers)
    await client.call("send", {"to": "bob@example.net", "text": "x"})
    await wait_for(lambda: len(sent_folder(mail_servers)) == 1)
    await wait_for(lambda: outbox_files(daemon.data_dir) == [])


async def test_provider_that_files_sent_mail_gets_no_copy(
    client: Client, mail_servers: MailServers, daemon: Any
) -> None:
    """R-D2: Gmail stores the Sent copy itself; appending one would show the message twice."""
    await add_account(client, mail_servers, provider="gmail")
    result = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert result["state"] == "sent"
    await client.call("fetch", {"accounts": ["Work"], "wait": True})
    assert sent_folder(mail_servers) == []
    assert outbox_files(daemon.data_dir) == []


async def test_sent_folder_created_when_missing(client: Client, mail_servers: MailServers) -> None:
    """No Sent folder on the server: one is created (as Thunderbird does) and gets the copy."""
    with mail_servers.user.imap() as imap:
        assert imap.delete("Sent")[0] == "OK"
    await add_account(client, mail_servers)
    await client.call("send", {"to": "bob@example.net", "text": "x"})
    await wait_for(lambda: len(sent_folder(mail_servers)) == 1)
    folders = {f["name"]: f for f in (await client.call("account.folders", {"account": "Work"}))["folders"]}
    assert folders["Sent"]["role"] == "sent"


# -- crashes --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def _kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


async def test_sigkill_between_submission_and_sent_copy(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers
) -> None:
    """The Sent copy is journaled before submission: a crash before it is appended delays it,
    never loses or duplicates it — also when the APPEND reached the server just before the crash."""
    socket_path, data_dir = short_dir / "d.sock", tmp_path / "data"
    process = await spawn_daemon(socket_path, data_dir)
    try:
        async with await Client.connect(socket_path) as client:
            await add_account(client, mail_servers)
            await client.call("account.modify", {"account": "Work", "imap": {"port": _free_port()}})
            first = await client.call("send", {"to": "bob@example.net", "subject": "one", "text": "x"})
            second = await client.call("send", {"to": "bob@example.net", "subject": "two", "text": "y"})
            assert first["state"] == second["state"] == "sent"
        await _kill(process)
        assert sent_folder(mail_servers) == []
        # The second message's APPEND got through just before the crash; its result was never recorded.
        [file_two] = [p for p in outbox_files(data_dir) if second["message_id"].encode() in p.read_bytes()]
        mail_servers.user.append(file_two.read_bytes(), "Sent", "(\\Seen)")

        process = await spawn_daemon(socket_path, data_dir)
        async with await Client.connect(socket_path) as client:
            await client.call("account.modify", {"account": "Work", "imap": {"port": mail_servers.imap()["port"]}})
            await client.call("fetch", {"accounts": ["Work"], "wait": True})
            copies = [m["Message-ID"] for m in sent_folder(mail_servers)]
            assert sorted(copies) == sorted([first["message_id"], second["message_id"]])
            await client.call("fetch", {"accounts": ["Work"], "wait": True})
            assert len(sent_folder(mail_servers)) == 2
            assert outbox_files(data_dir) == []
        assert len(mail_servers.smtp.deliveries) == 2  # nothing was resent
    finally:
        if process.returncode is None:
            await _kill(process)


async def test_connection_lost_after_the_message_is_uncertain_not_resent(
    fast_client: Client, mail_servers: MailServers
) -> None:
    """The server took the message and the connection broke before its answer (RFC 5321 §6.1): the
    outcome is unknown, so the message is not resent on its own — it would arrive twice."""
    client = fast_client
    await add_account(client, mail_servers)
    mail_servers.smtp.hold_data = asyncio.Event()
    sending = asyncio.create_task(client.call("send", {"to": "bob@example.net", "text": "x"}))
    await mail_servers.smtp.wait_for_deliveries(1)
    assert mail_servers.smtp.close_all_connections() == 1
    result = await sending
    mail_servers.smtp.hold_data.set()
    assert result["state"] == "uncertain" and "may have taken it" in result["error"]
    await asyncio.sleep(1.5)  # several retry periods of this daemon (0.3 s, doubling)
    assert len(mail_servers.smtp.deliveries) == 1
    entry = await outbox_state(client, result["outbox_id"])
    assert entry["state"] == "uncertain" and "retry or cancel" in entry["last_error"]
    retried = await client.call("outbox.retry", {"id": entry["id"]})  # the user's decision
    assert retried["state"] == "sent" and len(mail_servers.smtp.deliveries) == 2


async def test_connection_lost_before_the_message_is_retried(fast_client: Client, mail_servers: MailServers) -> None:
    """Cut before DATA (here: at the recipients), nothing can have been taken: queued, retried, delivered once."""
    client = fast_client
    await add_account(client, mail_servers)
    mail_servers.smtp.refuse["bob@example.net"] = (421, "4.3.2 Shutting down")  # aiosmtpd then closes
    result = await client.call("send", {"to": "bob@example.net", "text": "x"})
    assert result["state"] == "queued", result
    mail_servers.smtp.refuse.clear()
    [delivery] = await mail_servers.smtp.wait_for_deliveries(1, timeout=15)
    assert delivery.rcpt_tos == ["bob@example.net"]


async def test_sigkill_during_submission_is_uncertain_not_resent(
    short_dir: Path, tmp_path: Path, mail_servers: MailServers
) -> None:
    """Killed while the server holds the message: SMTP cannot tell whether it was taken, so the
    message is marked uncertain for the user — never resent on its own (no double delivery)."""
    socket_path, data_dir = short_dir / "d.sock", tmp_path / "data"
    process = await spawn_daemon(socket_path, data_dir)
    try:
        async with await Client.connect(socket_path) as client:
            await add_account(client, mail_servers)
            mail_servers.smtp.hold_data = asyncio.Event()
            sending = asyncio.create_task(client.call("send", {"to": "bob@example.net", "text": "x"}))
            await mail_servers.smtp.wait_for_deliveries(1)
            await _kill(process)
            with pytest.raises(ConnectionLost):  # the daemon died with the request
                await sending
        mail_servers.smtp.hold_data.set()

        process = await spawn_daemon(socket_path, data_dir)
        async with await Client.connect(socket_path) as client:
            [entry] = await client.call("outbox.list")
            assert entry["state"] == "uncertain" and "may have taken" in entry["last_error"]
            await asyncio.sleep(0.5)
            assert len(mail_servers.smtp.deliveries) == 1
            cancelled = await client.call("outbox.cancel", {"id": entry["id"]})
            assert cancelled["state"] == "cancelled"
        assert outbox_files(data_dir) == []
        assert mail_servers.user.password not in (data_dir.parent / "data.log").read_text()  # debug log
    finally:
        if process.returncode is None:
            await _kill(process)
