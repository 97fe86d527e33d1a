"""Incremental synchronisation benchmark: what a fetch costs when nothing (or little) changed.

Issue 4's goal: a no-change sync of 20 folders under 0.3 s.  The test Dovecot gets F folders of
M messages each, all selected; after the initial sync, each no-change fetch is timed through the
client library (``fetch`` with ``wait``), then one fetch after a single new message and a flag
change in one folder.  Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/incremental_sync.py [--folders 20] [--messages 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bimmailctl.client import Client
from tests.helpers import spawn_daemon
from tests.servers.dovecot import Dovecot, ImapUser

TEMPLATE = b"From: a@example.org\r\nSubject: message %d of %s\r\nMessage-ID: <%d.%s@bench>\r\n\r\n%s\r\n"


def fill(user: ImapUser, folders: int, messages: int) -> list[str]:
    names = [f"Dossier {i:02d}" for i in range(folders)]
    with user.imap() as imap:
        for name in names:
            imap.create(f'"{name}"')
    for name in names:
        body = b"x" * 2000
        user.deliver_many(
            [TEMPLATE % (i, name.encode(), i, name.encode().replace(b" ", b"_"), body) for i in range(messages)], name
        )
    return names


async def timed_fetch(client: Client) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    result = await client.call("fetch", {"wait": True})
    elapsed = time.perf_counter() - start
    [account] = result["accounts"]
    assert account["state"] == "ok", account
    return elapsed, {k: account[k] for k in ("new", "updated", "removed")}


async def run(server: Dovecot, folders: int, messages: int, runs: int) -> None:
    user = server.add_user()
    names = fill(user, folders, messages)
    base = Path(tempfile.mkdtemp(prefix="bm-incr-", dir="/tmp"))
    process = await spawn_daemon(base / "s.sock", base / "data")
    try:
        async with await Client.connect(base / "s.sock") as client:
            await client.call("account.add", {
                "name": "Bench", "email": user.login, "password": user.password, "test": False,
                "imap": {"host": "127.0.0.1", "port": server.ports["imap"], "security": "starttls"},
                "smtp": {"host": "127.0.0.1", "port": 25, "security": "none", "auth": False},
                "tls_ca_file": str(server.tls.ca_file),
            })  # fmt: skip
            await client.call("account.folders", {"account": "Bench", "select": names, "unselect": ["Sent", "Archive"]})
            initial, counts = await timed_fetch(client)
            print(f"initial sync of {folders} folders × {messages} messages (+INBOX, trash): {initial:.2f} s, {counts}")
            times = [(await timed_fetch(client))[0] for _ in range(runs)]
            print(f"no-change fetch, {folders + 2} folders: median {statistics.median(times) * 1000:.0f} ms "
                  f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}) over {runs} runs")  # fmt: skip
            user.append(TEMPLATE % (99999, b"new", 99999, b"new", b"y"), f'"{names[0]}"')
            with user.imap() as imap:
                imap.select(f'"{names[1]}"')
                imap.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
            changed, counts = await timed_fetch(client)
            print(f"fetch after 1 new message and 1 flag change: {changed * 1000:.0f} ms, {counts}")
    finally:
        process.terminate()
        await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folders", type=int, default=20)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with Dovecot.running() as server:
        asyncio.run(run(server, args.folders, args.messages, args.runs))


if __name__ == "__main__":
    main()
