"""The IMAP adapter's additions to aioimaplib, against Dovecot (and one fault it cannot produce)."""

from __future__ import annotations

import asyncio
import time

import pytest

from bimmaild.imap.connection import (
    AuthenticationFailed,
    ImapConnection,
    ImapConnectionLost,
    StartTlsUnavailable,
    quote,
)
from tests.servers.dovecot import Dovecot


async def test_utf8_password_logs_in_with_authenticate_plain(dovecot: Dovecot) -> None:
    """LOGIN cannot carry non-ASCII in a quoted string (RFC 3501); AUTHENTICATE PLAIN can."""
    user = dovecot.add_user(f"utf8-{time.time_ns()}@example.org", "pässwörd-ü-€")
    conn = await ImapConnection.open("127.0.0.1", dovecot.ports["imaps"], "ssl", dovecot.client_context(), 5)
    try:
        assert {"AUTH=PLAIN", "SASL-IR"} <= conn.capabilities
        await conn.login(user.login, user.password)
        assert "MOVE" in conn.capabilities, "capabilities are refreshed after login"
    finally:
        await conn.logout()


async def test_wrong_password_is_a_typed_failure(dovecot: Dovecot) -> None:
    user = dovecot.add_user()
    conn = await ImapConnection.open("127.0.0.1", dovecot.ports["imap"], "starttls", dovecot.client_context(), 5)
    try:
        with pytest.raises(AuthenticationFailed) as err:
            await conn.login(user.login, "nope")
        assert "AUTHENTICATIONFAILED" in err.value.text
    finally:
        await conn.aclose()


async def test_starttls_is_never_skipped(dovecot: Dovecot) -> None:
    with pytest.raises(StartTlsUnavailable):
        await ImapConnection.open("127.0.0.2", dovecot.ports["imap_notls"], "starttls", dovecot.client_context(), 5)


def test_quote_escapes_and_refuses_line_breaks() -> None:
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    with pytest.raises(ValueError, match="CR, LF"):
        quote("two\r\nlines")


async def test_connection_loss_fails_the_pending_command_at_once() -> None:
    """A server that dies after reading a command: aioimaplib alone leaves the caller waiting
    forever; the adapter fails it.  A fake server, because Dovecot cannot be made to vanish
    between reading a command and answering it."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK fake ready\r\n")
        tag = (await reader.readline()).split(b" ")[0]  # CAPABILITY after the greeting
        writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n" + tag + b" OK done\r\n")
        await reader.readline()  # the LOGIN / AUTHENTICATE command, never answered
        writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await ImapConnection.open("127.0.0.1", port, "none", None, timeout=30)
        start = time.monotonic()
        with pytest.raises(ImapConnectionLost):
            await conn.login("u", "p")
        assert time.monotonic() - start < 5, "failed by the loss, not by the 30 s timeout"
        await conn.aclose()
    finally:
        server.close()
        await server.wait_closed()


def test_unavailable_is_told_apart_from_a_refused_login() -> None:
    """Dovecot's NO [UNAVAILABLE] (its passdb or OAuth2 introspection unreachable) is temporary."""
    from bimmaild.imap.errors import AuthenticationFailed

    assert AuthenticationFailed("LOGIN", "NO", "[UNAVAILABLE] Temporary authentication failure.").unavailable
    assert not AuthenticationFailed("LOGIN", "NO", "[AUTHENTICATIONFAILED] Authentication failed.").unavailable
