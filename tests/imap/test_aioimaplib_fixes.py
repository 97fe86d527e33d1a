"""Each defect of aioimaplib 2.0.3 that the adapter fixes, against Dovecot: first the library's own
behaviour (so that a future version without the defect is noticed and the override can go), then
ours.  DESIGN.md §6 and ``bimmaild/imap/protocol.py`` describe the defects.

One pair (or group) per defect listed in the issue:

* a response of more than ~1,000 lines: ``test_library_hangs_on_a_long_response`` /
  ``test_adapter_streams_thirty_thousand_items``;
* quadratic FETCH parsing: ``test_library_fetch_parsing_is_quadratic`` /
  ``test_adapter_fetch_time_grows_linearly``;
* ``"* "`` deleted inside data: ``test_library_corrupts_star_space_in_data`` /
  ``test_adapter_keeps_star_space_in_data``;
* parentheses in quoted strings (#51): ``test_library_miscounts_parentheses_in_quoted_strings`` /
  ``test_adapter_counts_parentheses_outside_quoted_strings``;
* VANISHED / ESEARCH dropped: ``test_library_drops_esearch_and_vanished`` /
  ``test_adapter_keeps_esearch_and_vanished`` (and EXPUNGE:
  ``test_adapter_keeps_expunge_reports``; ``test_search_answered_without_its_line_is_an_error``);
* connection loss does not fail pending commands:
  ``test_library_leaves_a_command_waiting_after_connection_loss`` /
  ``test_adapter_fails_pending_commands_when_the_connection_is_cut``;
* no timeout on STORE/COPY/MOVE/EXPUNGE/IDLE: ``test_library_command_has_no_timeout`` /
  ``test_adapter_command_times_out`` (one case per command);
* 1,000+ EXPUNGEs pushed during IDLE: ``test_library_dies_on_an_expunge_flood_during_idle`` /
  ``test_adapter_survives_an_expunge_flood_during_idle``.

Faults (a cut, a stall) go through the fault proxy (``tests/servers/proxy.py``) in front of
Dovecot's clear-text listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aioimaplib import aioimaplib as lib

from bimmaild.imap.connection import ImapConnection, ImapConnectionLost, ImapProtocolError, ImapTimeout
from bimmaild.imap.parse import FetchItem, quote_mailbox
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.proxy import FaultProxy

BIG = 30_000
# Sent as a quoted string inside ENVELOPE: "* " and an unbalanced "(" within quotes.
TRICKY_SUBJECT = b"Hello * (world * star"
# A folder name Dovecot sends as a quoted string in LIST: what the adapter returns must be it.
TRICKY_FOLDER = "A * (B"


@pytest.fixture(scope="module")
def big_mailbox(dovecot: Dovecot) -> ImapUser:
    """30,000 small messages in INBOX, one with a subject that trips the library's parser in
    Archive, and a folder whose name does."""
    user = dovecot.add_user()
    template = b"From: a@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@big>\r\n\r\nbody\r\n"
    user.deliver_many([template % (i, i) for i in range(BIG)])
    user.deliver(
        b"From: b@example.org\r\nSubject: " + TRICKY_SUBJECT + b"\r\nMessage-ID: <tricky@x>\r\n\r\nx\r\n", "Archive"
    )
    with user.imap() as imap:
        assert imap.create(quote_mailbox(TRICKY_FOLDER))[0] == "OK"
    return user


@pytest.fixture
async def proxy(dovecot: Dovecot) -> AsyncIterator[FaultProxy]:
    """The fault proxy in front of Dovecot's clear-text listener (the only traffic it can steer)."""
    async with FaultProxy.start("127.0.0.2", dovecot.ports["imap_notls"]) as running:
        yield running
    assert running.errors == [], "the fault proxy itself failed"


def _message(i: int, subject: bytes | None = None) -> bytes:
    return b"From: a@example.org\r\nSubject: %s\r\nMessage-ID: <%d@fix>\r\n\r\nbody %d\r\n" % (
        subject or b"message %d" % i,
        i,
        i,
    )


def _user_with(dovecot: Dovecot, count: int) -> ImapUser:
    user = dovecot.add_user()
    user.deliver_many([_message(i) for i in range(count)])
    return user


class _Lost:
    """The library's ``conn_lost_cb``: when, and with what, its connection ended."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: Exception | None = None

    def __call__(self, exc: Exception | None) -> None:
        self.reason = exc
        self.event.set()


async def _library_client(dovecot: Dovecot, user: ImapUser) -> lib.IMAP4_SSL:
    client = lib.IMAP4_SSL("127.0.0.1", dovecot.ports["imaps"], ssl_context=dovecot.client_context(), timeout=10)
    client.protocol.conn_lost_cb = client.lost = _Lost()
    await client.wait_hello_from_server()
    await client.login(user.login, user.password)
    return client


async def _library_via(proxy: FaultProxy, user: ImapUser, timeout: float) -> lib.IMAP4:
    client = lib.IMAP4(proxy.host, proxy.port, timeout=timeout)
    client.protocol.conn_lost_cb = client.lost = _Lost()
    await client.wait_hello_from_server()
    response = await client.login(user.login, user.password)
    assert response.result == "OK", response
    return client


async def _close_library(client: lib.IMAP4) -> None:
    """Abort the library's connection and wait until its socket is closed: left to the loop's
    end it would be closed by the garbage collector (a ResourceWarning)."""
    for task in [*client.tasks, *client.protocol.tasks]:
        task.cancel()
    client.protocol.transport.abort()
    await asyncio.wait_for(client.lost.event.wait(), 5)


async def _ours(dovecot: Dovecot, user: ImapUser, timeout: float = 30) -> ImapConnection:
    conn = await ImapConnection.open("127.0.0.1", dovecot.ports["imaps"], "ssl", dovecot.client_context(), timeout)
    await conn.login(user.login, user.password)
    return conn


async def _ours_via(proxy: FaultProxy, user: ImapUser, timeout: float) -> ImapConnection:
    conn = await ImapConnection.open(proxy.host, proxy.port, "none", None, timeout)
    await conn.login(user.login, user.password)
    return conn


async def _still_waiting(call: Awaitable[Any], seconds: float) -> bool:
    """Whether ``call`` is still unfinished after ``seconds`` (it is then cancelled)."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return not done


def _expunge(user: ImapUser, uids: str, folder: str = "INBOX") -> None:
    """Another client (the stdlib's imaplib) removes these messages."""
    with user.imap() as imap:
        imap.select(folder)
        assert imap.uid("STORE", uids, "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        assert imap.expunge()[0] == "OK"


# -- more than ~1,000 lines in one read (upstream #118) --------------------------------


async def test_library_hangs_on_a_long_response(dovecot: Dovecot, big_mailbox: ImapUser) -> None:
    """Upstream #118: >1,000 lines in one read → RecursionError in data_received, call never returns."""
    client = await _library_client(dovecot, big_mailbox)
    try:
        await client.select("INBOX")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.uid("fetch", "1:5000", "(UID FLAGS)"), 3)
    finally:
        await _close_library(client)


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


# -- quadratic FETCH parsing -----------------------------------------------------------


def _raw_fetch_answer(user: ImapUser, count: int) -> list[bytes]:
    """Dovecot's own untagged lines (CRLF included) for ``UID FETCH 1:count (UID FLAGS)``."""
    with user.imap() as imap:
        imap.select("INBOX", readonly=True)
        imap.send(b"raw1 UID FETCH 1:%d (UID FLAGS)\r\n" % count)
        lines = []
        while not (line := imap.readline()).startswith(b"raw1 "):
            lines.append(line)
    assert len(lines) == count
    return lines


class _NoTransport:
    def write(self, data: bytes) -> None:
        pass


def _library_parse_time(lines: list[bytes]) -> float:
    """The library's own response handling (data_received → FetchCommand) over these lines, fed
    in reads of 200 lines (fewer than the ~1,000 that would raise RecursionError)."""
    loop = asyncio.get_running_loop()
    protocol = lib.IMAP4ClientProtocol(loop)
    protocol.transport = _NoTransport()
    protocol.state = lib.SELECTED
    command = lib.FetchCommand("T1", "1:*", "(UID FLAGS)", prefix="UID", loop=loop)
    protocol.pending_async_commands["FETCH"] = command
    start = time.perf_counter()
    for i in range(0, len(lines), 200):
        protocol.data_received(b"".join(lines[i : i + 200]))
    protocol.data_received(b"T1 OK Fetch completed.\r\n")
    elapsed = time.perf_counter() - start
    assert command.response.result == "OK" and len(command.response.lines) == len(lines) + 1
    return elapsed


async def test_library_fetch_parsing_is_quadratic(big_mailbox: ImapUser) -> None:
    """FetchCommand.wait_data rescans every line received so far for each new line: 3× the lines
    take ~9× the time (measured here: 0.10 s for 1,000, 0.9 s for 3,000)."""
    small, large = await asyncio.to_thread(
        lambda: (_raw_fetch_answer(big_mailbox, 1_000), _raw_fetch_answer(big_mailbox, 3_000))
    )
    ratio = min(_library_parse_time(large) for _ in range(2)) / min(_library_parse_time(small) for _ in range(2))
    assert ratio > 5, f"3× the lines took only {ratio:.1f}× the time: is the library's FETCH parsing linear now?"


async def test_adapter_fetch_time_grows_linearly(dovecot: Dovecot, big_mailbox: ImapUser) -> None:
    """The same FLAGS fetch, 10,000 then 30,000 items, best of three each: linear means ~3×,
    quadratic 9×; no absolute bound (the machine is shared)."""
    conn = await _ours(dovecot, big_mailbox)
    try:
        await conn.select('"INBOX"', readonly=True)

        async def best(count: int) -> float:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                assert await conn.uid_fetch(f"1:{count}", "(UID FLAGS)", lambda item: None) == count
                times.append(time.perf_counter() - start)
            return min(times)

        small, large = await best(10_000), await best(BIG)
        assert large / small < 5, f"10,000 items: {small:.3f} s, 30,000: {large:.3f} s ({large / small:.1f}×)"
    finally:
        await conn.logout()


# -- "* " inside data --------------------------------------------------------------------


async def test_library_corrupts_star_space_in_data(dovecot: Dovecot, big_mailbox: ImapUser) -> None:
    """The library deletes every "* " of an untagged line, in quoted strings too."""
    client = await _library_client(dovecot, big_mailbox)
    try:
        listed = await asyncio.wait_for(client.list('""', '"*"'), 5)
        assert b'(\\HasNoChildren) "/" "A (B"' in listed.lines, (
            "if this fails, aioimaplib no longer strips '* ' inside data"
        )
        await client.select("Archive")
        response = await asyncio.wait_for(client.uid("fetch", "1", "(ENVELOPE)"), 5)
        text = b" ".join(line for line in response.lines if isinstance(line, bytes))
        assert b'"Hello (world star"' in text
    finally:
        await _close_library(client)


async def test_adapter_keeps_star_space_in_data(dovecot: Dovecot, big_mailbox: ImapUser) -> None:
    """The folder name is a quoted string in the LIST line: the adapter's answer carries it whole
    (with the library's ``replace(b"* ", b"")`` it would be "A (B")."""
    conn = await _ours(dovecot, big_mailbox)
    try:
        names = {entry.name for entry in await conn.list_entries()}
        assert TRICKY_FOLDER in names and "A (B" not in names
        state = await conn.status(quote_mailbox(TRICKY_FOLDER))
        assert state["MESSAGES"] == 0
    finally:
        await conn.logout()


# -- parentheses inside quoted strings (upstream #51) -----------------------------------


@pytest.fixture
def paren_user(dovecot: Dovecot) -> ImapUser:
    """Archive: a subject with an unbalanced "(" (no "* ", so the defect shows on its own), then another."""
    user = dovecot.add_user()
    user.deliver(_message(1, b"Hello (world"), "Archive")
    user.deliver(_message(2, b"second"), "Archive")
    return user


async def test_library_miscounts_parentheses_in_quoted_strings(dovecot: Dovecot, paren_user: ImapUser) -> None:
    """The "(" inside the quoted subject leaves the first item "open": the second item's line is
    taken as its continuation and comes back raw, "* " included."""
    client = await _library_client(dovecot, paren_user)
    try:
        await client.select("Archive")
        response = await asyncio.wait_for(client.uid("fetch", "1:2", "(UID ENVELOPE)"), 5)
        assert any(bytes(line).startswith(b"* 2 FETCH (UID 2 ") for line in response.lines), response.lines
    finally:
        await _close_library(client)


async def test_adapter_counts_parentheses_outside_quoted_strings(dovecot: Dovecot, paren_user: ImapUser) -> None:
    conn = await _ours(dovecot, paren_user)
    try:
        await conn.select('"Archive"')
        found: list[FetchItem] = []
        assert await conn.uid_fetch("1:2", "(UID ENVELOPE)", found.append) == 2
        assert [item.uid for item in found] == [1, 2]
    finally:
        await conn.logout()


# -- ESEARCH, VANISHED and EXPUNGE reports ------------------------------------------------


async def test_library_drops_esearch_and_vanished(dovecot: Dovecot) -> None:
    """Untagged lines go only to a command registered under their name: nothing is registered as
    ESEARCH or VANISHED, so the answers are lost (a silent empty search, unseen expunges)."""
    user = _user_with(dovecot, 5)
    client = await _library_client(dovecot, user)
    try:
        assert (await client.enable("QRESYNC")).result == "OK"
        await client.select("INBOX")
        search = await client.uid_search("RETURN (ALL) ALL", charset=None)
        assert search.result == "OK" and len(search.lines) == 1, search  # just "Search completed"
        await asyncio.to_thread(_expunge, user, "2:3")
        fetched = await asyncio.wait_for(client.uid("fetch", "1:*", "(UID FLAGS)"), 5)
        assert not any(b"VANISHED" in line for line in fetched.lines), fetched
        await asyncio.wait_for(client.uid("store", "4", "+FLAGS.SILENT", "(\\Deleted)"), 5)
        expunged = await asyncio.wait_for(client.uid("expunge", "4"), 5)
        assert expunged.result == "OK" and not any(b"VANISHED" in line for line in expunged.lines), expunged
    finally:
        await _close_library(client)


async def test_adapter_keeps_esearch_and_vanished(dovecot: Dovecot) -> None:
    """ESEARCH answers the search; every VANISHED (QRESYNC's expunge report) reaches the caller."""
    user = _user_with(dovecot, 7)
    conn = await _ours(dovecot, user)
    try:
        assert await conn.enable("QRESYNC") == {"QRESYNC"}
        await conn.select('"INBOX"')
        assert await conn.uid_search("RETURN (ALL) ALL") == [1, 2, 3, 4, 5, 6, 7]
        assert await conn.uid_search("RETURN (ALL) UID 2,4") == [2, 4]
        assert await conn.uid_search("RETURN (ALL) UID 99") == []
        # Another client's expunge, announced during our UID FETCH (after Dovecot's last
        # word on 2 and 3: their FETCH lines with \Deleted come first).
        await asyncio.to_thread(_expunge, user, "2:3")
        found: list[FetchItem] = []
        await conn.uid_fetch("1:*", "(UID FLAGS)", found.append)
        assert conn.vanished == [(2, 3)]
        assert conn.take_vanished() == [(2, 3)] and conn.vanished == []
        # The answer to our own UID EXPUNGE.
        await conn.uid_store("4", "+FLAGS.SILENT", "(\\Deleted)")
        await conn.uid_expunge("4")
        assert conn.take_vanished() == [(4, 4)]
        # Unsolicited: collected by a NOOP, which also returns it.
        await asyncio.to_thread(_expunge, user, "5")
        assert b"VANISHED 5" in await conn.noop()
        assert conn.take_vanished() == [(5, 5)]
        # The answer to a MOVE (a sync command in the library).
        await conn.uid_move("6", '"Archive"')
        assert conn.take_vanished() == [(6, 6)]
        # FETCH's VANISHED modifier: "VANISHED (EARLIER)" lines, no longer dropped either.
        await conn.select('"Archive"')
        await asyncio.to_thread(_expunge, user, "1", "INBOX")  # while we are elsewhere
        await conn.select('"INBOX"')
        found.clear()
        await conn.uid_fetch("1:*", "(UID FLAGS) (CHANGEDSINCE 1 VANISHED)", found.append)
        assert [item.uid for item in found] == [7]
        assert conn.take_vanished() == [(1, 6)]
        assert conn.take_vanished('"Archive"') == []
    finally:
        await conn.logout()


async def test_adapter_keeps_expunge_reports(dovecot: Dovecot) -> None:
    """Without QRESYNC the server reports ``n EXPUNGE``: during a FETCH (no EXPUNGE or NOOP command
    running, so the library drops it) it is kept too, under the mailbox it concerns."""
    user = _user_with(dovecot, 4)
    conn = await _ours(dovecot, user)
    try:
        await conn.select('"INBOX"')
        await asyncio.to_thread(_expunge, user, "2")
        await conn.uid_fetch("1:*", "(UID FLAGS)", lambda item: None)
        assert conn.expunged == [2]
        await asyncio.to_thread(_expunge, user, "4")
        await conn.uid_store("1", "+FLAGS.SILENT", "(\\Seen)")  # STORE's answer carries it
        await conn.select('"Archive"')  # reports stay under the mailbox they concern
        assert conn.take_expunged() == []
        assert conn.take_expunged('"INBOX"') == [2, 3]
    finally:
        await conn.logout()


async def test_search_answered_without_its_line_is_an_error(dovecot: Dovecot, proxy: FaultProxy) -> None:
    """An OK with neither SEARCH nor ESEARCH is not "no match": the proxy removes Dovecot's line."""
    user = _user_with(dovecot, 3)
    conn = await _ours_via(proxy, user, 5)
    try:
        await conn.select('"INBOX"')
        assert await conn.uid_search("ALL") == [1, 2, 3]
        proxy.rewrite(rb"^\* E?SEARCH\b.*\r\n$", b"")
        with pytest.raises(ImapProtocolError, match="without a SEARCH or ESEARCH line"):
            await conn.uid_search("ALL")
        with pytest.raises(ImapProtocolError):
            await conn.uid_search("RETURN (ALL) ALL")
    finally:
        await conn.logout()


# -- connection loss -----------------------------------------------------------------------


async def test_library_leaves_a_command_waiting_after_connection_loss(dovecot: Dovecot, proxy: FaultProxy) -> None:
    """The connection is cut as Dovecot answers a UID STORE: the library sees the loss
    (``conn_lost_cb``) but the STORE is never failed, its caller waits forever."""
    user = _user_with(dovecot, 3)
    client = await _library_via(proxy, user, timeout=1)
    try:
        await client.select("INBOX")
        proxy.cut()
        store = asyncio.ensure_future(client.uid("store", "1", "+FLAGS", "(\\Seen)"))
        await asyncio.wait_for(client.lost.event.wait(), 5)
        assert await _still_waiting(store, 2), "if this fails, aioimaplib now fails pending commands"
    finally:
        await _close_library(client)


@pytest.mark.parametrize("when", ["before the answer", "mid-FETCH"])
async def test_adapter_fails_pending_commands_when_the_connection_is_cut(
    dovecot: Dovecot, proxy: FaultProxy, when: str
) -> None:
    """The adapter fails the command at once (well before its 30 s timeout)."""
    user = _user_with(dovecot, 50)
    conn = await _ours_via(proxy, user, 30)
    try:
        await conn.select('"INBOX"')
        call: Awaitable[Any]
        if when == "before the answer":
            proxy.cut()
            call = conn.uid_store("1", "+FLAGS", "(\\Seen)")
        else:
            proxy.cut(after_line=rb"^\* 10 FETCH")
            call = conn.uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])", lambda item: None)
        start = time.monotonic()
        with pytest.raises(ImapConnectionLost):
            await call
        assert time.monotonic() - start < 5
    finally:
        await conn.aclose()


# -- timeouts on STORE, COPY, MOVE, EXPUNGE, IDLE -------------------------------------------

COMMANDS = ["STORE", "COPY", "MOVE", "EXPUNGE", "IDLE"]


def _library_call(client: lib.IMAP4, command: str) -> Any:
    if command == "STORE":
        return client.uid("store", "1", "+FLAGS", "(\\Seen)")
    if command == "COPY":
        return client.uid("copy", "1", "Archive")
    if command == "MOVE":
        return client.uid("move", "1", "Archive")
    if command == "EXPUNGE":
        return client.uid("expunge", "1")
    return client.idle_start(timeout=1)


@pytest.mark.parametrize("command", COMMANDS)
async def test_library_command_has_no_timeout(dovecot: Dovecot, proxy: FaultProxy, command: str) -> None:
    """Dovecot's answer held back (sockets open): the library's call outlives its own 1 s timeout."""
    user = _user_with(dovecot, 3)
    client = await _library_via(proxy, user, timeout=1)
    try:
        await client.select("INBOX")
        proxy.stall()
        assert await _still_waiting(_library_call(client, command), 2.5), f"{command} has a timeout now"
    finally:
        await _close_library(client)


def _adapter_call(conn: ImapConnection, command: str) -> Callable[[], Awaitable[Any]]:
    return {
        "STORE": lambda: conn.uid_store("1", "+FLAGS", "(\\Seen)"),
        "COPY": lambda: conn.uid_copy("1", '"Archive"'),
        "MOVE": lambda: conn.uid_move("1", '"Archive"'),
        "EXPUNGE": lambda: conn.uid_expunge("1"),
        "IDLE": lambda: conn.idle(60),
        "IDLE end": lambda: conn.idle(0.2),
    }[command]


@pytest.mark.parametrize("command", [*COMMANDS, "IDLE end"])
async def test_adapter_command_times_out(dovecot: Dovecot, proxy: FaultProxy, command: str) -> None:
    """The same stall: ImapTimeout within the connection's timeout (1 s).  "IDLE end": the server
    accepted IDLE but its answer to DONE never comes."""
    user = _user_with(dovecot, 3)
    conn = await _ours_via(proxy, user, 1)
    try:
        await conn.select('"INBOX"')
        if command == "IDLE end":
            proxy.stall(after_line=rb"^\+ ")
        else:
            proxy.stall()
        start = time.monotonic()
        with pytest.raises(ImapTimeout) as raised:
            await asyncio.wait_for(_adapter_call(conn, command)(), 10)
        took = time.monotonic() - start
        assert 0.9 < took < 3, took
        if command.startswith("IDLE"):
            assert raised.value.stage == ("IDLE end" if command == "IDLE end" else "IDLE start")
    finally:
        conn.close()
        await conn.aclose()


# -- 1,000+ EXPUNGEs pushed during IDLE --------------------------------------------------------

FLOOD = 2_500


async def test_library_dies_on_an_expunge_flood_during_idle(dovecot: Dovecot) -> None:
    """2,500 ``* n EXPUNGE`` in one read: RecursionError, the connection is gone."""
    user = _user_with(dovecot, FLOOD + 100)
    client = await _library_client(dovecot, user)
    idle = None
    try:
        await client.select("INBOX")
        idle = await client.idle_start(timeout=30)
        await asyncio.to_thread(_expunge, user, f"1:{FLOOD}")
        await asyncio.wait_for(client.lost.event.wait(), 10)
        assert isinstance(client.lost.reason, RecursionError), client.lost.reason
    finally:
        if idle is not None:
            idle.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await idle
        await _close_library(client)


async def test_adapter_survives_an_expunge_flood_during_idle(dovecot: Dovecot) -> None:
    """Another client expunges 2,500 messages while we IDLE (EXAMINE, as the push connection does):
    IDLE returns with the changes, none is lost, and the connection goes on working."""
    user = _user_with(dovecot, FLOOD + 100)
    conn = await _ours(dovecot, user, 10)
    try:
        await conn.select('"INBOX"', readonly=True)
        idle = asyncio.ensure_future(conn.idle(30))
        await asyncio.sleep(0.3)  # IDLE under way
        await asyncio.to_thread(_expunge, user, f"1:{FLOOD}")
        pushed = await asyncio.wait_for(idle, 20)
        reported = sum(1 for line in pushed if line.endswith(b" EXPUNGE"))
        assert reported > 0
        await conn.noop()  # anything the server had not sent before DONE comes now, and is kept
        assert reported + len(conn.take_expunged()) == FLOOD
        assert await conn.uid_search("ALL") == list(range(FLOOD + 1, FLOOD + 101))
        status = await conn.status('"INBOX"')
        assert status["MESSAGES"] == 100
    finally:
        await conn.logout()
