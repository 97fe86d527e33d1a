"""Server faults during synchronisation (R-C7): reported, retried with back-off, nothing lost.

Each test has two accounts in one real daemon: ``Faulty``, whose IMAP traffic
goes through the fault proxy (``tests/servers/proxy.py``) to Dovecot's
clear-text listener — the proxy can only steer plain text —, and ``Steady``,
another Dovecot user reached directly over TLS.  For every fault the tests
prove the same four things:

1. the error is on the account (``account.show``: state ``error`` and a
   message saying what happened), not swallowed, not an "internal error";
2. automatic fetches back off (``SyncService.backoff_over``) instead of
   hammering the server; ``test_failed_fetches_back_off_then_resume`` drives
   the scheduler through it;
3. the second account keeps working during the fault;
4. once the fault is gone, one fetch leaves every server message stored
   exactly once: index = server = Maildir, byte for byte.

One fault is no error: an unsolicited FETCH for a UID not asked for is legal
IMAP (RFC 3501 §7.4.2), so there the proof is that nothing not asked for is
stored.  For "Dovecot goes down", Faulty has a Dovecot of its own, killed and
started again, so that Steady and the other tests keep theirs.

Automation is switched off (no scheduled fetch, no IDLE connection) so that
the only traffic through the proxy is the fetch each test starts, except in
the back-off test, which drives the scheduler itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.sync import service
from bimmaild.sync.service import SyncService
from tests.helpers import RunningDaemon, daemon_config, start_daemon, stop_daemon
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy
from tests.sync.test_sync import make_message, server_messages

# The server line that opens a message's body in the answer to the daemon's download
# (``UID FETCH … (UID FLAGS INTERNALDATE BODY.PEEK[])``): a trigger inside a literal.
BODY_LINE = rb"^\* \d+ FETCH \(.*BODY\[\] \{\d+\}\r\n$"
BODY_FETCH = rb"^UID FETCH \S+ \(UID FLAGS INTERNALDATE BODY\.PEEK\[\]\)$"


@dataclass
class Bench:
    """The daemon, its client, and the two accounts (see the module docstring)."""

    client: Client
    daemon: RunningDaemon
    proxy: FaultProxy
    faulty: ImapUser
    steady: ImapUser
    ids: dict[str, int]

    @property
    def sync(self) -> SyncService:
        return self.daemon.daemon.scheduler.sync

    async def fetch(self, name: str) -> dict[str, Any]:
        result = await self.client.call("fetch", {"accounts": [name], "wait": True})
        [account] = result["accounts"]
        assert isinstance(account, dict)
        return account

    async def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = (await self.client.call("account.show", {"account": name}))["status"]
        return status

    async def assert_error_reported(self, name: str, *fragments: str) -> dict[str, Any]:
        """(1) and (2): state error with a message naming the cause; automatic fetches back off."""
        status = await self.status(name)
        assert status["state"] == "error", status
        message = status["message"] or ""
        assert "internal error" not in message, message
        for fragment in fragments:
            assert fragment in message, message
        assert not self.sync.backoff_over(self.ids[name]), "the next automatic fetch must wait"
        return status

    async def assert_steady_works(self, new: int) -> None:
        """(3): the other account fetches normally."""
        result = await self.fetch("Steady")
        assert result["state"] == "ok", result
        assert result["new"] == new, result

    async def assert_recovered(self, folders: list[str]) -> dict[str, Any]:
        """(4): a fetch after the fault succeeds, clears the back-off, and the store is exact."""
        result = await self.fetch("Faulty")
        assert result["state"] == "ok", result
        assert (await self.status("Faulty"))["state"] == "ok"
        assert self.sync.backoff_over(self.ids["Faulty"])
        assert_stored_once(self.daemon.data_dir, self.ids["Faulty"], self.faulty, folders)
        return result


def assert_stored_once(data_dir: Path, account_id: int, user: ImapUser, folders: list[str]) -> None:
    """R-C7, as tests/sync/test_crash.py's check_store but per account and against the server's
    bytes: one row and one file per server message, the same bytes, nothing half-written."""
    db = sqlite3.connect(data_dir / "bimmail.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for folder in folders:
            server = server_messages(user, folder)
            rows = db.execute(
                "SELECT m.uid, m.filename, f.maildir FROM messages m JOIN folders f ON f.id = m.folder_id "
                "WHERE f.account_id = ? AND f.name = ?",
                (account_id, folder),
            ).fetchall()
            assert sorted(r["uid"] for r in rows) == sorted(server), f"{folder}: one row per server message"
            if not rows:
                continue
            directory = data_dir / "mail" / str(account_id) / rows[0]["maildir"]
            assert sorted(p.name for p in (directory / "cur").iterdir()) == sorted(r["filename"] for r in rows)
            assert not list((directory / "tmp").iterdir()), "nothing half-written"
            for row in rows:
                assert (directory / "cur" / row["filename"]).read_bytes() == server[row["uid"]][0]
    finally:
        db.close()


def stored_count(data_dir: Path, account_id: int) -> int:
    db = sqlite3.connect(data_dir / "bimmail.sqlite3")
    try:
        count: int = db.execute("SELECT count(*) FROM messages WHERE account_id = ?", (account_id,)).fetchone()[0]
        return count
    finally:
        db.close()


def big_messages(count: int, size: int, start: int = 0, folder: str = "INBOX") -> list[bytes]:
    return [make_message(i, attachment=size, folder=folder) for i in range(start, start + count)]


def huge_message(size: int) -> bytes:
    """One message of about ``size`` bytes, built directly (the email package is slow at this)."""
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
    head = b"From: big@example.fr\r\nTo: bob@example.org\r\nSubject: huge\r\nMessage-ID: <huge@example.fr>\r\n\r\n"
    return head + line * (size // len(line))


@pytest.fixture
def connect_timeout() -> float:
    """The daemon's connect_timeout (sync timeouts are 6 times it); a test parametrizes it to change it."""
    return 2.0


@pytest.fixture
async def fault_daemon(short_dir: Path, tmp_path: Path, connect_timeout: float) -> AsyncIterator[RunningDaemon]:
    config = dataclasses.replace(daemon_config(short_dir, tmp_path), connect_timeout=connect_timeout)
    running = await start_daemon(config)
    try:
        yield running
    finally:
        await stop_daemon(running)


@pytest.fixture
def faulty_server(request: pytest.FixtureRequest, dovecot: Dovecot) -> Iterator[Dovecot]:
    """The Faulty account's Dovecot: the session's, or — parametrized ``"private"`` (indirect) — one
    of its own, which the test may stop without disturbing the Steady account or any other test."""
    if getattr(request, "param", "session") == "private":
        with Dovecot.running() as server:
            yield server
    else:
        yield dovecot


@pytest.fixture
def upstream(faulty_server: Dovecot) -> tuple[str, int]:
    """Where the proxy leads: the clear-text listener (no STARTTLS), the only traffic it can steer."""
    return "127.0.0.2", faulty_server.ports["imap_notls"]


@pytest.fixture
async def proxy(upstream: tuple[str, int]) -> AsyncIterator[FaultProxy]:
    async with FaultProxy.start(*upstream) as running:
        yield running
    assert running.errors == [], "the fault proxy itself failed"


@pytest.fixture
def faulty_user(mail_servers: MailServers, faulty_server: Dovecot) -> ImapUser:
    return mail_servers.user if faulty_server is mail_servers.dovecot else faulty_server.add_user()


@pytest.fixture
async def bench(
    fault_daemon: RunningDaemon,
    mail_servers: MailServers,
    dovecot: Dovecot,
    proxy: FaultProxy,
    faulty_user: ImapUser,
) -> AsyncIterator[Bench]:
    steady = dovecot.add_user()
    steady.deliver_many([make_message(i) for i in range(5)])
    async with await Client.connect(fault_daemon.socket_path, client_name="pytest") as client:
        faulty_params = mail_servers.account_params(
            name="Faulty", imap={"host": "127.0.0.1", "port": proxy.port, "security": "none"}
        )
        faulty_params.update(email=faulty_user.login, password=faulty_user.password, test=False)
        steady_params = {
            **mail_servers.account_params(name="Steady"),
            "email": steady.login,
            "password": steady.password,
            "test": False,
        }
        ids = {}
        for params in (faulty_params, steady_params):
            ids[params["name"]] = (await client.call("account.add", params))["account"]["id"]
        await client.call("automation.set", {"enabled": False})
        yield Bench(client, fault_daemon, proxy, faulty_user, steady, ids)


async def wait_event(client: Client, name: str, account: str, timeout: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        async for event, params in client.events():
            if event == name and params.get("account") == account:
                return params
    raise AssertionError("the daemon closed the connection")


class Clock:
    """``time`` for bimmaild.sync.service, whose monotonic clock a test moves forward: the back-off is
    minutes long, a test is not."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


# -- the faults ----------------------------------------------------------------


@pytest.mark.parametrize("faulty_server", ["private"], indirect=True)
async def test_dovecot_down_mid_fetch_then_restarted(bench: Bench, faulty_server: Dovecot) -> None:
    """Dovecot goes down while a FETCH answer is in flight (the second download batch: one 24 MB
    message), then comes back.  Down means killed, every process: on a clean stop Dovecot lets a
    session under way finish its answer.  The proxy holds the answer at that point only so that
    the kill lands mid-FETCH every time.  While the server is down the account fails fast and the
    other account works; once it is back one fetch completes the mailbox, nothing downloaded twice."""
    bench.faulty.deliver_many(big_messages(10, 100_000))
    with bench.faulty.imap() as imap:
        imap.select("INBOX")  # UIDs 1-10 given now: Dovecot numbers new files in directory order
    bench.faulty.deliver(huge_message(24_000_000))
    fault = bench.proxy.stall(1_000, after_line=rb"BODY\[\] \{\d{8,}\}\r\n$")
    faulty = asyncio.ensure_future(bench.fetch("Faulty"))
    try:
        await asyncio.wait_for(fault.tripped.wait(), 10)
        await asyncio.to_thread(faulty_server.crash)
        bench.proxy.release()
        result = await asyncio.wait_for(faulty, 30)
    finally:
        bench.proxy.release()
        await asyncio.gather(faulty, return_exceptions=True)
    assert result["state"] == "error", result
    await bench.assert_error_reported("Faulty", "connection to the IMAP server failed")
    partial = stored_count(bench.daemon.data_dir, bench.ids["Faulty"])
    assert partial == 10, "the first batch is stored, the message in flight is not"
    down = await bench.fetch("Faulty")
    assert down["state"] == "error" and "cannot reach" in down["error"], down
    await bench.assert_steady_works(new=5)
    await asyncio.to_thread(faulty_server.start)
    recovered = await bench.assert_recovered(["INBOX"])
    assert recovered["new"] == 1, "nothing downloaded twice"


async def test_connection_cut_mid_literal(bench: Bench) -> None:
    """The connection dies inside a message's literal, in the second download batch: what the first
    batch stored stays, the cut message is not stored half, the next fetch completes the rest."""
    bench.faulty.deliver_many(big_messages(30, 400_000))  # 12 MB: two batches of at most 8 MB
    fault = bench.proxy.cut(100_000, after_line=BODY_LINE, nth=25)
    faulty, _ = await asyncio.gather(bench.fetch("Faulty"), bench.assert_steady_works(new=5))
    assert fault.tripped.is_set()
    assert faulty["state"] == "error", faulty
    await bench.assert_error_reported("Faulty", "connection")
    partial = stored_count(bench.daemon.data_dir, bench.ids["Faulty"])
    assert 0 < partial < 25, "the first batch (whole messages) is stored; the cut message is not"
    bench.proxy.clear()
    result = await bench.assert_recovered(["INBOX"])
    assert result["new"] == 30 - partial, "nothing downloaded twice"


@pytest.mark.parametrize("connect_timeout", [0.5])  # the sync's command timeout: 6 × 0.5 = 3 s
@pytest.mark.parametrize(
    ("after_line", "after_bytes", "reported"),
    [
        pytest.param(
            BODY_LINE, 1_000, "no answer from the server during UID FETCH", id="mid-literal", marks=pytest.mark.slow
        ),  # 3 s for the FETCH, 3 more for the LOGOUT that the stalled server does not answer either
        pytest.param(
            rb"^\* OK ", 0, "cannot reach 127.0.0.1:%d: no answer from the server during greeting", id="after-greeting"
        ),
    ],
)
async def test_stall_longer_than_the_command_timeout(
    bench: Bench, after_line: bytes, after_bytes: int, reported: str
) -> None:
    """The server goes silent, socket open — inside a message's literal, or right after its greeting:
    the fetch gives up after the timeout (not before, not never) while the other account fetches;
    after the stall a fetch completes."""
    bench.faulty.deliver_many(big_messages(10, 100_000))
    fault = bench.proxy.stall(after_bytes, after_line=after_line)
    loop = asyncio.get_running_loop()
    started = loop.time()
    faulty = asyncio.ensure_future(bench.fetch("Faulty"))
    try:
        await asyncio.wait_for(fault.tripped.wait(), 10)
        await bench.assert_steady_works(new=5)
        assert not faulty.done() and (await bench.status("Faulty"))["fetching"], "Faulty still stalled"
        result = await asyncio.wait_for(faulty, 30)
    finally:
        bench.proxy.release()
        await asyncio.gather(faulty, return_exceptions=True)
    assert 3.0 <= loop.time() - started < 15, "given up after the timeout, not before, not never"
    assert result["state"] == "error", result
    await bench.assert_error_reported("Faulty", reported.replace("%d", str(bench.proxy.port)))
    await bench.assert_recovered(["INBOX"])


@pytest.mark.parametrize(
    ("command", "reply", "reported"),
    [
        (BODY_FETCH, b"NO [SERVERBUG] simulated", "folder 'INBOX': UID FETCH: NO [SERVERBUG] simulated"),
        (BODY_FETCH, b"BAD simulated parse error", "folder 'INBOX': UID FETCH: BAD simulated parse error"),
        (rb'^SELECT "INBOX"', b"NO [UNAVAILABLE] simulated", "folder 'INBOX': SELECT: NO [UNAVAILABLE] simulated"),
        (rb"^LIST ", b"BAD simulated", "LIST failed: BAD simulated"),
    ],
    ids=["fetch-NO", "fetch-BAD", "select-NO", "list-BAD"],
)
async def test_server_answers_no_or_bad(bench: Bench, command: bytes, reply: bytes, reported: str) -> None:
    """The server refuses a command (its data, if any, already streamed): nothing of the refused
    answer is stored, the refusal is the account's error, the next fetch stores everything once."""
    bench.faulty.deliver_many(big_messages(8, 10_000))
    bench.proxy.answer(command, reply)
    faulty, _ = await asyncio.gather(bench.fetch("Faulty"), bench.assert_steady_works(new=5))
    assert faulty["state"] == "error", faulty
    await bench.assert_error_reported("Faulty", reported)
    assert stored_count(bench.daemon.data_dir, bench.ids["Faulty"]) == 0
    bench.proxy.clear()
    result = await bench.assert_recovered(["INBOX"])
    assert result["new"] == 8


async def test_mailbox_deleted_while_selected(bench: Bench) -> None:
    """Another client deletes a synchronised folder the daemon has just selected (the daemon's
    session is held right after SELECT's answer, the folder is deleted, then the session goes on):
    Dovecot says BYE, which is the account's error; the next fetch knows the folder gone and keeps
    its local copies (R-C7), and stores the rest exactly once."""
    user = bench.faulty
    user.deliver_many([make_message(i) for i in range(3)])
    with user.imap() as imap:
        imap.create("Projets")
    user.deliver_many(big_messages(12, 50_000, folder="Projets"), "Projets")
    await bench.client.call("account.folders", {"account": "Faulty", "select": ["Projets"]})
    assert (await bench.fetch("Faulty"))["new"] == 15
    user.deliver_many(big_messages(5, 50_000, start=100, folder="Projets"), "Projets")
    # INBOX and the trash folder are unchanged (STATUS), so the one SELECT is Projets'.
    fault = bench.proxy.stall(after_line=rb"^\S+ OK \[READ-WRITE\]")
    faulty = asyncio.ensure_future(bench.fetch("Faulty"))
    try:
        await asyncio.wait_for(fault.tripped.wait(), 10)
        await asyncio.to_thread(_delete_folder, user, "Projets")
        bench.proxy.release()
        result = await asyncio.wait_for(faulty, 30)
    finally:
        bench.proxy.release()
        await asyncio.gather(faulty, return_exceptions=True)
    assert result["state"] == "error", result
    await bench.assert_error_reported("Faulty", "Mailbox was deleted")
    await bench.assert_steady_works(new=5)
    recovered = await bench.assert_recovered(["INBOX"])
    assert recovered["notes"] == [
        "folder 'Projets' is no longer on the server (renamed or deleted there); its local copies are kept"
    ]
    folders = {f["name"]: f for f in (await bench.client.call("account.folders", {"account": "Faulty"}))["folders"]}
    assert folders["Projets"]["state"] == "gone"
    assert folders["Projets"]["messages"] == 12, "the copies made before are kept, nothing added twice"


def _delete_folder(user: ImapUser, folder: str) -> None:
    with user.imap() as imap:
        typ, data = imap.delete(folder)
        assert typ == "OK", data


async def test_unsolicited_fetch_for_a_uid_not_asked_for(bench: Bench) -> None:
    """The server slips in FETCH responses for a UID that does not exist (one with a body literal,
    during the download; one with a size, during the listing).  RFC 3501 §7.4.2 lets a server send
    unsolicited FETCH responses, so this is no error — but nothing that was not asked for is stored:
    the store is exactly the server's mailbox."""
    bench.faulty.deliver_many([make_message(i) for i in range(6)])
    phantom = make_message(99, subject="phantom")
    bench.proxy.inject(BODY_FETCH, b"* 1 FETCH (UID 99999 FLAGS (\\Seen) BODY[] {%d}\r\n%s)" % (len(phantom), phantom))
    bench.proxy.inject(rb"^UID FETCH \S+ \(UID RFC822\.SIZE\)$", b"* 2 FETCH (UID 99998 RFC822.SIZE 1234)")
    faulty, _ = await asyncio.gather(bench.fetch("Faulty"), bench.assert_steady_works(new=5))
    assert faulty["state"] == "ok", faulty
    assert faulty["new"] == 6
    assert_stored_once(bench.daemon.data_dir, bench.ids["Faulty"], bench.faulty, ["INBOX"])
    assert bench.sync.backoff_over(bench.ids["Faulty"])
    assert (await bench.fetch("Faulty"))["new"] == 0, "the phantom UIDs are not waited for either"


async def test_failed_fetches_back_off_then_resume(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's automatic fetch after failures: n failures in a row make it wait 2^(n-1)
    minutes (a failing server is not hammered), and the first success ends the back-off."""
    bench.faulty.deliver_many([make_message(i) for i in range(4)])
    clock = Clock()
    monkeypatch.setattr(service, "time", clock)
    await bench.client.call("automation.set", {"enabled": True})
    await bench.client.subscribe(["fetch.done"])
    scheduler, faulty_id = bench.daemon.daemon.scheduler, bench.ids["Faulty"]

    async def automatic_fetch() -> dict[str, Any] | None:
        """One run of the account's fetch job: its result, or None when it was deferred."""
        await scheduler.fetch_job(faulty_id)
        if not bench.sync.running(faulty_id):
            return None
        return await wait_event(bench.client, "fetch.done", "Faulty")

    bench.proxy.cut(after_line=BODY_LINE)
    first = await automatic_fetch()
    assert first is not None and first["state"] == "error", first
    await bench.assert_error_reported("Faulty", "connection")
    assert await automatic_fetch() is None, "backing off"
    clock.offset += 61
    bench.proxy.cut(after_line=BODY_LINE)
    second = await automatic_fetch()
    assert second is not None and second["state"] == "error", "one minute later: tried again, failed again"
    clock.offset += 61
    assert await automatic_fetch() is None, "after a second failure the wait is two minutes"
    await bench.assert_steady_works(new=5)
    clock.offset += 60
    third = await automatic_fetch()
    assert third is not None and third["state"] == "ok", third
    assert bench.sync.backoff_over(faulty_id), "a success ends the back-off"
    assert_stored_once(bench.daemon.data_dir, faulty_id, bench.faulty, ["INBOX"])
