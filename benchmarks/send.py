"""Sending benchmark: what ``send`` costs over a bare SMTP submission of the same message.

The daemon composes the message, writes it durably to the outbox (fsync), journals its
Sent copy, submits it with one RCPT per recipient and reports per recipient.  The
baseline, measured in the same run against the same test SMTP server (STARTTLS + AUTH
on 127.0.0.1), is aiosmtplib sending an equivalent, already composed message over a
fresh connection — what a minimal script would do.  Also timed: how long after
``send`` returns the copy is in the Sent folder on the IMAP server.  Run from the
repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/send.py [--runs 20] [--attachment-mb 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib

from bimmailctl.client import Client
from tests.helpers import spawn_daemon
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.smtp import SmtpServer

RECIPIENTS = ["bob@example.net", "carol@example.net"]


def _message(user: ImapUser, attachment: bytes | None) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = user.login, ", ".join(RECIPIENTS), "Bench"
    message.set_content("Bonjour,\n" + "x" * 2000 + "\n")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="a.bin")
    return message


async def baseline(server: Dovecot, smtp: SmtpServer, user: ImapUser, attachment: bytes | None) -> float:
    message = _message(user, attachment)
    start = time.perf_counter()
    await aiosmtplib.send(
        message, hostname="127.0.0.1", port=smtp.ports["starttls"], start_tls=True,
        tls_context=server.tls.client_context(), username=user.login, password=user.password,
    )  # fmt: skip
    return time.perf_counter() - start


async def daemon_send(client: Client, attachment: bytes | None) -> tuple[float, dict[str, Any]]:
    params: dict[str, Any] = {"to": ", ".join(RECIPIENTS), "subject": "Bench", "text": "Bonjour,\n" + "x" * 2000}
    if attachment is not None:
        params["attachments"] = [{"filename": "a.bin", "data": attachment}]
    start = time.perf_counter()
    result = await client.call("send", params)
    elapsed = time.perf_counter() - start
    assert result["state"] == "sent" and result["accepted"] == RECIPIENTS, result
    return elapsed, result


def sent_count(user: ImapUser) -> int:
    with user.imap() as imap:
        typ, data = imap.status("Sent", "(MESSAGES)")
        assert typ == "OK"
        return int(data[0].split()[-1].rstrip(b")"))


async def wait_sent(user: ImapUser, count: int) -> float:
    start = time.perf_counter()
    for _ in range(3000):  # polled: the copy is made by the daemon, out of our sight
        if await asyncio.to_thread(sent_count, user) >= count:
            return time.perf_counter() - start
        await asyncio.sleep(0.01)
    raise AssertionError("the Sent copy did not arrive within 30 s")


def _line(what: str, ours: list[float], base: list[float]) -> str:
    a, b = statistics.median(ours), statistics.median(base)
    return f"{what}: bimmail {a * 1000:.1f} ms, baseline {b * 1000:.1f} ms, ratio {a / b:.2f} (medians)"


async def run(server: Dovecot, runs: int, attachment_mb: int) -> None:
    user = server.add_user()
    workdir = Path(tempfile.mkdtemp(prefix="bm-send-", dir="/tmp"))
    big = bytes(range(256)) * (attachment_mb * 4096)
    async with SmtpServer.start(server.tls, users={user.login: user.password}) as smtp:
        process = await spawn_daemon(workdir / "s.sock", workdir / "data")
        try:
            async with await Client.connect(workdir / "s.sock") as client:
                await client.call("account.add", {
                    "name": "Bench", "email": user.login, "password": user.password, "test": False,
                    "imap": {"host": "127.0.0.1", "port": server.ports["imap"], "security": "starttls"},
                    "smtp": {"host": "127.0.0.1", "port": smtp.ports["starttls"], "security": "starttls"},
                    "tls_ca_file": str(server.tls.ca_file),
                })  # fmt: skip
                await client.call("fetch", {"wait": True})
                ours, base, copies = [], [], []
                for i in range(runs):
                    base.append(await baseline(server, smtp, user, None))
                    elapsed, _ = await daemon_send(client, None)
                    ours.append(elapsed)
                    copies.append(await wait_sent(user, i + 1))
                print(_line(f"send of a 2 KB message to {len(RECIPIENTS)} recipients", ours, base))
                print(f"Sent copy on the server after send returned: median {statistics.median(copies) * 1000:.0f} ms, "
                      f"max {max(copies) * 1000:.0f} ms")  # fmt: skip
                ours, base = [], []
                for _ in range(max(3, runs // 5)):
                    base.append(await baseline(server, smtp, user, big))
                    ours.append((await daemon_send(client, big))[0])
                print(_line(f"send with a {attachment_mb} MB attachment", ours, base))
                print(f"messages accepted by the SMTP server: {len(smtp.deliveries)}")
        finally:
            process.terminate()
            await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--attachment-mb", type=int, default=10)
    args = parser.parse_args()
    with Dovecot.running() as server:
        asyncio.run(run(server, args.runs, args.attachment_mb))


if __name__ == "__main__":
    main()
