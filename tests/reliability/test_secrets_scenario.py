"""Secrets stay secret through a whole life of an account, against the real servers.

A real daemon process at debug log level: add (connection test), test (also with
a wrong password), fetch, send, modify (passwords changed, split per server,
changed back), fetch and send again, delete.  Afterwards none of the passwords —
the real one and the wrong one tried — is in: any response or error, any event,
the log, any file of the data dir but the secrets file (SQLite with its WAL,
Maildir, outbox), or the daemon's command line.  The secrets file is 0600 and
forgets a deleted account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import stat
from pathlib import Path
from typing import Any

from bimmailctl.client import Client
from bimmaild.protocol.errors import BimmailError
from tests.helpers import spawn_daemon
from tests.servers.fixtures import MailServers


class Recorder:
    """Every answer and error a client got, as text."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[str] = []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        try:
            result = await self.client.call(method, params)
        except BimmailError as exc:
            self.seen.append(repr(exc.to_wire()) + str(exc))
            raise
        self.seen.append(repr(result))
        return result


async def test_passwords_appear_nowhere(short_dir: Path, tmp_path: Path, mail_servers: MailServers) -> None:
    password = mail_servers.user.password
    wrong = "Wrong-" + password[::-1]
    sock, data = short_dir / "d.sock", tmp_path / "data"
    process = await spawn_daemon(sock, data)  # --log-level debug --secret-backend file
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    events: list[str] = []
    try:
        async with await Client.connect(sock) as raw, await Client.connect(sock) as watcher:
            await watcher.call("subscribe", {"topics": sorted(watcher.hello["events"])})

            async def collect() -> None:
                async for event, params in watcher.events():
                    events.append(event + repr(params))

            collector = asyncio.create_task(collect())
            client = Recorder(raw)
            added = await client.call("account.add", {**mail_servers.account_params(), "test": True})
            assert added["test"]["ok"]
            tested = await client.call("account.test", {"account": "Work"})
            assert tested["ok"], json.dumps(tested)
            refused = await client.call("account.test", {"account": "Work", "password": wrong})
            assert not refused["ok"]
            assert (await client.call("fetch", {"wait": True}))["accounts"][0]["state"] == "ok"
            assert (await client.call("send", {"to": "bob@example.net", "text": "x"}))["state"] == "sent"
            await client.call("account.modify", {"account": "Work", "password": wrong})
            assert (await client.call("fetch", {"wait": True}))["accounts"][0]["state"] == "needs-attention"
            await client.call(
                "account.modify",
                {"account": "Work", "separate_auth": True, "imap": {"password": password},
                 "smtp": {"password": password}},
            )  # fmt: skip
            assert (await client.call("fetch", {"wait": True}))["accounts"][0]["state"] == "ok"
            assert (await client.call("send", {"to": "bob@example.net", "text": "y"}))["state"] == "sent"
            secrets_file = data / "secrets.json"
            assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
            assert password in secrets_file.read_text()
            await client.call("account.delete", {"account": "Work", "confirm": True})
            assert json.loads(secrets_file.read_text()) == {}
            await asyncio.sleep(0.2)  # the last events
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
    finally:
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    log = (data.parent / f"{data.name}.log").read_text()
    assert "DEBUG" in log and "account 1 'Work' added" in log  # the log is really at debug level
    assert len(mail_servers.smtp.deliveries) == 2 and len(client.seen) >= 10 and events
    stored = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != "secrets.json")
    for secret in (password, wrong):
        assert secret not in "".join(client.seen), "in a response"
        assert secret not in "".join(events), "in an event"
        assert secret not in log, "in the log"
        assert secret.encode() not in stored, "in the store"
        assert secret.encode() not in cmdline, "on the command line"
