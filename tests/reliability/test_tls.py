"""TLS on the daemon's own paths — fetch and send, not only the connection test (R-B3).

R-B3: certificates are verified by default; trusting another CA is an explicit
per-account choice (``tls_ca_file``); STARTTLS is never silently downgraded.
tests/daemon/test_connection_test.py proves it for ``account.test``; here the
same refusals are proven where mail moves: a fetch (``fetch``, state and
message on the account) and a send (``send``: the result, nothing delivered).

The servers are the real ones: Dovecot (whose certificate, from the run's own
CA, is valid for 127.0.0.1 and localhost only; its ``imaps_alt`` listener on
127.0.0.3 presents it under the wrong name) and the test SMTP server.  The
fault proxy plays the network: it presents a server under a name its
certificate does not cover, stands for a man in the middle that strips
STARTTLS from the IMAP CAPABILITY and the SMTP EHLO answer, and records every
byte the daemon sent, which proves that no password crossed in clear.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bimmailctl.client import Client
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy
from tests.sync.test_sync import make_message

STRIP_STARTTLS = (rb"STARTTLS", b"XXXXXXXX")  # what STARTTLS-stripping tools do: same length, unknown word


def password_forms(login: str, password: str) -> list[bytes]:
    """The password as it would cross the wire in clear: raw (IMAP LOGIN), inside SASL PLAIN
    (IMAP AUTHENTICATE, SMTP AUTH PLAIN) and alone in base64 (SMTP AUTH LOGIN)."""
    raw = password.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.b64encode(b"\0" + login.encode() + b"\0" + raw),
        base64.b64encode(login.encode() + b"\0" + login.encode() + b"\0" + raw),
    ]


def assert_no_password(proxy: FaultProxy, login: str, password: str) -> None:
    sent = bytes(proxy.from_clients)
    assert sent, "the daemon did connect through the proxy"
    for form in password_forms(login, password):
        assert form not in sent, "the password crossed the wire in clear"


async def add(client: Client, servers: MailServers, name: str, **overrides: Any) -> None:
    await client.call("account.add", servers.account_params(name=name, test=False, **overrides))


async def fetch(client: Client, name: str) -> dict[str, Any]:
    [account] = (await client.call("fetch", {"accounts": [name], "wait": True}))["accounts"]
    assert isinstance(account, dict)
    return account


async def status(client: Client, name: str) -> dict[str, Any]:
    result: dict[str, Any] = (await client.call("account.show", {"account": name}))["status"]
    return result


async def send(client: Client, name: str) -> dict[str, Any]:
    result: dict[str, Any] = await client.call("send", {"from": name, "to": "bob@example.net", "text": "x"})
    return result


@pytest.fixture
async def proxies() -> AsyncIterator[list[FaultProxy]]:
    """Proxies a test starts (``start_proxy``), all closed and checked at its end."""
    started: list[FaultProxy] = []
    yield started
    for proxy in started:
        await proxy.aclose()
        assert proxy.errors == [], "the fault proxy itself failed"


async def start_proxy(
    proxies: list[FaultProxy], port: int, *, upstream: str = "127.0.0.1", host: str = "127.0.0.1", smtp: bool = False
) -> FaultProxy:
    proxy = FaultProxy((upstream, port), host=host, literals=not smtp)
    await proxy.listen()
    proxies.append(proxy)
    return proxy


# -- certificates ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "security"), [("imaps", "ssl"), ("imap", "starttls")])
async def test_fetch_refuses_an_untrusted_certificate_unless_its_ca_is_trusted(
    client: Client, mail_servers: MailServers, kind: str, security: str
) -> None:
    """The run's own CA is in no system trust store: an account without ``tls_ca_file`` must not
    fetch (needs-attention, the reason given); the same settings trusting that CA do."""
    mail_servers.user.deliver_many([make_message(i) for i in range(3)])
    imap = mail_servers.imap(kind, security)
    await add(client, mail_servers, "Untrusted", imap=imap, tls_ca_file=None)
    await add(client, mail_servers, "Trusted", imap=imap)
    refused = await fetch(client, "Untrusted")
    assert refused["state"] == "needs-attention", refused
    assert "certificate refused (unable to get local issuer certificate)" in refused["error"], refused
    assert (await status(client, "Untrusted"))["state"] == "needs-attention"
    trusted = await fetch(client, "Trusted")
    assert trusted["state"] == "ok" and trusted["new"] == 3, trusted


async def test_fetch_refuses_a_certificate_for_another_host(client: Client, mail_servers: MailServers) -> None:
    """Dovecot's imaps_alt (127.0.0.3) presents a certificate of the trusted CA that is not valid for
    that address: trusting the CA does not make a certificate for another host acceptable."""
    await add(client, mail_servers, "Work", imap=mail_servers.imap("imaps_alt"))
    result = await fetch(client, "Work")
    assert result["state"] == "needs-attention", result
    assert "certificate refused" in result["error"] and "127.0.0.3" in result["error"], result


async def test_fetch_over_starttls_refuses_a_certificate_for_another_host(
    client: Client, mail_servers: MailServers, proxies: list[FaultProxy]
) -> None:
    """The same after STARTTLS: the STARTTLS listener reached as 127.0.0.3 (through the proxy)."""
    proxy = await start_proxy(proxies, mail_servers.dovecot.ports["imap"], host="127.0.0.3")
    await add(client, mail_servers, "Work", imap={"host": "127.0.0.3", "port": proxy.port, "security": "starttls"})
    result = await fetch(client, "Work")
    assert result["state"] == "needs-attention", result
    assert "certificate refused" in result["error"] and "127.0.0.3" in result["error"], result
    assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)


@pytest.mark.parametrize(("kind", "security"), [("ssl", "ssl"), ("starttls", "starttls")])
async def test_send_refuses_an_untrusted_certificate_unless_its_ca_is_trusted(
    client: Client, mail_servers: MailServers, kind: Any, security: str
) -> None:
    smtp = mail_servers.smtp_params(kind, security)
    await add(client, mail_servers, "Untrusted", smtp=smtp, tls_ca_file=None)
    await add(client, mail_servers, "Trusted", smtp=smtp)
    refused = await send(client, "Untrusted")
    assert refused["state"] == "failed", refused
    assert "certificate is refused" in refused["error"], refused
    assert mail_servers.smtp.deliveries == [] and mail_servers.smtp.auth_attempts == []
    assert (await send(client, "Trusted"))["state"] == "sent"
    assert len(await mail_servers.smtp.wait_for_deliveries(1)) == 1


@pytest.mark.parametrize(("kind", "security"), [("ssl", "ssl"), ("starttls", "starttls")])
async def test_send_refuses_a_certificate_for_another_host(
    client: Client, mail_servers: MailServers, proxies: list[FaultProxy], kind: Any, security: str
) -> None:
    """The SMTP server reached as 127.0.0.3, which its certificate (of the trusted CA) does not cover."""
    proxy = await start_proxy(proxies, mail_servers.smtp.ports[kind], host="127.0.0.3", smtp=True)
    await add(client, mail_servers, "Work", smtp={"host": "127.0.0.3", "port": proxy.port, "security": security})
    result = await send(client, "Work")
    assert result["state"] == "failed", result
    assert "certificate is refused" in result["error"] and "127.0.0.3" in result["error"], result
    assert mail_servers.smtp.deliveries == [] and mail_servers.smtp.auth_attempts == []
    assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)


# -- STARTTLS: never downgraded --------------------------------------------------------


async def test_fetch_with_starttls_refuses_a_server_without_it(
    client: Client, mail_servers: MailServers, proxies: list[FaultProxy]
) -> None:
    """Dovecot's clear-text listener offers no STARTTLS (and would accept a clear-text login): an
    account set to STARTTLS logs in nowhere, and its password never crosses the wire."""
    proxy = await start_proxy(proxies, mail_servers.dovecot.ports["imap_notls"], upstream="127.0.0.2")
    await add(client, mail_servers, "Work", imap={"host": "127.0.0.1", "port": proxy.port, "security": "starttls"})
    result = await fetch(client, "Work")
    assert result["state"] == "error", result
    assert "does not offer STARTTLS, which this account requires: not logging in without TLS" in result["error"]
    assert (await status(client, "Work"))["state"] == "error"
    assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)
    assert b"AUTHENTICATE" not in proxy.from_clients and b"LOGIN" not in proxy.from_clients


async def test_fetch_detects_a_man_in_the_middle_stripping_starttls(
    client: Client, mail_servers: MailServers, proxies: list[FaultProxy]
) -> None:
    """The server offers STARTTLS; a man in the middle removes it from the greeting's and the
    CAPABILITY answer's capabilities.  The daemon does not fall back to clear text."""
    proxy = await start_proxy(proxies, mail_servers.dovecot.ports["imap"])
    proxy.rewrite(*STRIP_STARTTLS)
    await add(client, mail_servers, "Work", imap={"host": "127.0.0.1", "port": proxy.port, "security": "starttls"})
    result = await fetch(client, "Work")
    assert result["state"] == "error", result
    assert "does not offer STARTTLS, which this account requires: not logging in without TLS" in result["error"]
    assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)
    assert b"AUTHENTICATE" not in proxy.from_clients and b"LOGIN" not in proxy.from_clients
    proxy.clear()  # the man in the middle leaves: the same account works, over TLS
    assert (await fetch(client, "Work"))["state"] == "ok"
    assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)


async def test_send_with_starttls_refuses_a_server_without_it(
    client: Client, mail_servers: MailServers, proxies: list[FaultProxy]
) -> None:
    """The SMTP server's plain listener offers no STARTTLS: nothing is sent, no AUTH is tried."""
    proxy = await start_proxy(proxies, mail_servers.smtp.ports["plain"], smtp=True)
    await add(client, mail_servers, "Work", smtp={"host": "127.0.0.1", "port": proxy.port, "security": "starttls"})
    result = await send(client, "Work")
    assert result["state"] == "failed", result
    assert "does not offer STARTTLS, which this account requires: nothing was sent without TLS" in result["error"]
    assert mail_servers.smtp.deliveries == [] and mail_servers.smtp.auth_attempts == []
    assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)
    assert b"AUTH" not in proxy.from_clients and b"MAIL FROM" not in proxy.from_clients


async def test_send_detects_a_man_in_the_middle_stripping_starttls(
    client: Client, mail_servers: MailServers, proxies: list[FaultProxy]
) -> None:
    """The SMTP server offers STARTTLS; a man in the middle removes it from the EHLO answer."""
    proxy = await start_proxy(proxies, mail_servers.smtp.ports["starttls"], smtp=True)
    proxy.rewrite(*STRIP_STARTTLS)
    await add(client, mail_servers, "Work", smtp={"host": "127.0.0.1", "port": proxy.port, "security": "starttls"})
    result = await send(client, "Work")
    assert result["state"] == "failed", result
    assert "does not offer STARTTLS, which this account requires: nothing was sent without TLS" in result["error"]
    assert mail_servers.smtp.deliveries == [] and mail_servers.smtp.auth_attempts == []
    assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)
    assert b"AUTH" not in proxy.from_clients and b"MAIL FROM" not in proxy.from_clients
    proxy.clear()
    retried = await client.call("outbox.retry", {"id": result["outbox_id"]})
    assert retried["state"] == "sent", "kept in the outbox, sent over TLS once the path is clean"
    assert len(await mail_servers.smtp.wait_for_deliveries(1)) == 1
    assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)


async def test_the_wire_record_sees_a_password_sent_in_clear(
    client: Client, mail_servers: MailServers, proxies: list[FaultProxy]
) -> None:
    """The check the tests above rely on, checked: with ``security = none`` (clear text, the user's
    explicit choice) the password is on the wire, and the record shows it."""
    proxy = await start_proxy(proxies, mail_servers.dovecot.ports["imap_notls"], upstream="127.0.0.2")
    await add(client, mail_servers, "Work", imap={"host": "127.0.0.1", "port": proxy.port, "security": "none"})
    assert (await fetch(client, "Work"))["state"] == "ok"
    with pytest.raises(AssertionError, match="in clear"):
        assert_no_password(proxy, mail_servers.user.login, mail_servers.user.password)
