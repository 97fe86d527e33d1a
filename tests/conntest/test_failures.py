"""Every failure branch of the connection test's checks, provoked for real (R-A3).

Each failed step must name the fields to fix, carry the server's own reply in
``server_reply`` when the server said something, and give a hint
(``failed_step`` checks the hint on every one).  Failures that are the
server's own (a temporary refusal, a cut connection) name no field: no
setting is wrong, and naming one would send the user to change a right one.

Most faults come from the real Dovecot and SMTP servers.  Where a real server
cannot be made to give an answer on demand, the fault proxy
(``tests.servers.proxy``) sits in front of a real server's clear-text listener
and rewrites, replaces or cuts the server's lines; each such test says what
the proxy plays and why.
"""

from __future__ import annotations

import datetime
import errno
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import trustme

from bimmaild.conntest import imap_check, smtp_check, stages
from bimmaild.conntest.report import Step
from bimmaild.conntest.target import Target
from tests.conntest.targets import HOST, failed_step, imap_target, smtp_target
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy
from tests.servers.smtp import PortKind, SmtpServer
from tests.servers.tls import TlsMaterial

TIMEOUT = 2.0


async def _imap(target: Target) -> Step:
    return failed_step(await imap_check.check(target, TIMEOUT))


async def _smtp(target: Target) -> Step:
    return failed_step(await smtp_check.check(target, TIMEOUT))


# -- faults played by the proxy ------------------------------------------------------------


STARTTLS_454 = "454 4.7.0 TLS not available due to temporary reason"
PRIVACY = "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."


@dataclass(frozen=True)
class Played:
    """A fault a real server cannot be made to give on demand, played by the proxy in front of it."""

    why: str  # why the proxy plays it, rather than the server
    steer: Callable[[FaultProxy], object]
    step: str
    fields: list[str]
    reply: str | None  # the server_reply expected (None: the server said nothing to quote)
    security: str = "none"
    listener: PortKind = "plain"  # SMTP: the listener behind the proxy


IMAP_PLAYED = {
    "greeting-bye": Played(
        "Dovecot turns clients away with a BYE greeting only under real overload",
        lambda p: p.rewrite(rb"^\* OK .*\r\n", b"* BYE Too many connections from your address\r\n"),
        "tls", ["imap.host", "imap.port"], "* BYE Too many connections from your address", "starttls",
    ),
    "closed-before-greeting": Played(
        "a server dropping clients at once (connection limits) cannot be asked to",
        lambda p: p.cut(), "capabilities", ["imap.port", "imap.security"], None,
    ),
    "starttls-refused": Played(
        "Dovecot always accepts STARTTLS when it offers it",
        lambda p: p.answer(rb"^STARTTLS", b"BAD [UNAVAILABLE] TLS not available now"),
        "tls", ["imap.security"], "BAD [UNAVAILABLE] TLS not available now", "starttls",
    ),
    "closed-during-tls": Played(
        "cut right after Dovecot's OK to STARTTLS, before any TLS byte",
        lambda p: p.cut(after_line=rb"^\S+ OK Begin TLS"), "tls", ["imap.security"], None, "starttls",
    ),
    "privacyrequired": Played(
        "Dovecot's own refusal of a clear-text login, which it gives only off loopback",
        lambda p: p.answer(rb"^(AUTHENTICATE|LOGIN) ", PRIVACY.encode()), "login", ["imap.security"], PRIVACY,
    ),
    "unavailable": Played(
        "Dovecot's NO [UNAVAILABLE] needs its passdb down (tests/oauth does it with OAuth2)",
        lambda p: p.answer(rb"^(AUTHENTICATE|LOGIN) ", b"NO [UNAVAILABLE] Temporary authentication failure."),
        "login", [], "NO [UNAVAILABLE] Temporary authentication failure.",
    ),
    "cut-during-login": Played(
        "cut right after Dovecot's OK to the login (the capabilities are asked for next)",
        lambda p: p.cut(after_line=rb"^\S+ OK .*Logged in"), "login", [], None,
    ),
    "list-refused": Played(
        "Dovecot refuses LIST only with a broken mailbox store",
        lambda p: p.answer(rb"^LIST ", b"NO [SERVERBUG] Internal error occurred."),
        "folders", [], "NO [SERVERBUG] Internal error occurred.",
    ),
    "cut-during-list": Played(
        "cut after the capabilities that follow the login, when LIST is on its way",
        lambda p: p.cut(after_line=rb"^\S+ OK Capability completed"), "folders", [], None,
    ),
}  # fmt: skip

SMTP_PLAYED = {
    "greeting-554": Played(
        "aiosmtpd always greets with 220",
        lambda p: p.rewrite(rb"^220 .*\r\n", b"554 5.7.1 No SMTP service here\r\n"),
        "capabilities", ["smtp.host", "smtp.port"], "554 5.7.1 No SMTP service here",
    ),
    "ehlo-refused": Played(
        "aiosmtpd never refuses EHLO: each line of its answer becomes a 554",
        lambda p: p.rewrite(rb"^250([ -])", rb"554\1"), "capabilities", ["smtp.port"],
        "554 smtp.test\nSIZE 33554432\n8BITMIME\nAUTH LOGIN PLAIN\nHELP",
    ),
    "closed-after-greeting": Played(
        "cut right after the greeting", lambda p: p.cut(after_line=rb"^220 "), "capabilities", ["smtp.port"], None,
    ),
    "starttls-refused": Played(
        "aiosmtpd always accepts STARTTLS when it offers it",
        lambda p: p.rewrite(rb"^220 Ready to start TLS\r\n", STARTTLS_454.encode() + b"\r\n"),
        "tls", ["smtp.security"], STARTTLS_454, "starttls", "starttls",
    ),
    "closed-during-tls": Played(
        "cut right after the 220 to STARTTLS, before any TLS byte",
        lambda p: p.cut(after_line=rb"^220 Ready to start TLS"), "tls", ["smtp.security"], None, "starttls", "starttls",
    ),
    "auth-before-starttls": Played(
        "aiosmtpd hides AUTH before TLS; the proxy adds it to the EHLO answer, as servers that announce "
        "it before TLS do, and the 530 to the AUTH is aiosmtpd's own (RFC 3207)",
        lambda p: p.rewrite(rb"^250 HELP\r\n", b"250-AUTH PLAIN LOGIN\r\n250 HELP\r\n"),
        "login", ["smtp.security"], "530 Must issue a STARTTLS command first", listener="starttls",
    ),
    "cut-during-login": Played(
        "cut right after the EHLO answer, when AUTH is on its way",
        lambda p: p.cut(after_line=rb"^250 HELP"), "login", [], None,
    ),
    "sender-refused": Played(
        "the test server takes any sender; a provider's refusal is played",
        lambda p: p.rewrite(rb"^250 OK\r\n", b"553 5.7.1 Sender address rejected: not owned by user\r\n"),
        "sender", ["email", "login"], "553 5.7.1 Sender address rejected: not owned by user",
    ),
    "cut-at-mail-from": Played(
        "cut right after the 235 to AUTH, when MAIL FROM is on its way",
        lambda p: p.cut(after_line=rb"^235 "), "sender", [], None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", IMAP_PLAYED.values(), ids=IMAP_PLAYED.keys())
async def test_imap_fault_played_by_the_proxy(mail_servers: MailServers, case: Played) -> None:
    """The proxy sits in front of Dovecot's STARTTLS listener (clear text until STARTTLS)."""
    async with FaultProxy.start(HOST, mail_servers.dovecot.ports["imap"]) as proxy:
        case.steer(proxy)
        step = await _imap(imap_target(mail_servers, port=proxy.port, security=case.security))
    _check(step, case)


@pytest.mark.parametrize("case", SMTP_PLAYED.values(), ids=SMTP_PLAYED.keys())
async def test_smtp_fault_played_by_the_proxy(mail_servers: MailServers, case: Played) -> None:
    async with FaultProxy.start(HOST, mail_servers.smtp.ports[case.listener], literals=False) as proxy:
        case.steer(proxy)
        step = await _smtp(smtp_target(mail_servers, port=proxy.port, security=case.security))
    _check(step, case)


def _check(step: Step, case: Played) -> None:
    """The step and fields expected, the server's words in server_reply and never in our message."""
    assert (step.name, step.fields, step.server_reply) == (case.step, case.fields, case.reply), case.why
    assert case.reply is None or case.reply not in step.message


async def test_imap_logindisabled_blames_the_security(mail_servers: MailServers) -> None:
    """Proxy: Dovecot counts loopback as secure and never says LOGINDISABLED there; the proxy
    puts it in place of the AUTH= capabilities, as Dovecot shows them to a remote client."""
    async with FaultProxy.start(HOST, mail_servers.dovecot.ports["imap"]) as proxy:
        proxy.rewrite(rb"(?: AUTH=[^\s\]]+)+", b" LOGINDISABLED")
        step = await _imap(imap_target(mail_servers, port=proxy.port, security="none"))
    assert (step.name, step.fields) == ("login", ["imap.security"])
    assert step.server_reply is not None and "LOGINDISABLED" in step.server_reply
    assert mail_servers.user.password.encode() not in proxy.from_clients, "no login was tried"


# -- IMAP, real servers --------------------------------------------------------------------


async def test_imap_on_an_smtp_port_quotes_what_answered(mail_servers: MailServers) -> None:
    step = await _imap(imap_target(mail_servers, port=mail_servers.smtp.ports["plain"], security="none"))
    assert (step.name, step.fields) == ("capabilities", ["imap.port"])
    assert (step.server_reply or "").startswith("220 smtp.test")


async def test_imap_starttls_missing_quotes_the_capabilities(mail_servers: MailServers) -> None:
    step = await _imap(imap_target(mail_servers, host="127.0.0.2", port=mail_servers.dovecot.ports["imap_notls"],
                                   security="starttls"))  # fmt: skip
    assert (step.name, step.fields) == ("tls", ["imap.security"])
    assert step.server_reply is not None and "IMAP4REV1" in step.server_reply
    assert "STARTTLS" not in step.server_reply


# -- SMTP, real servers --------------------------------------------------------------------


async def test_smtp_starttls_missing_quotes_the_ehlo_answer(mail_servers: MailServers) -> None:
    step = await _smtp(smtp_target(mail_servers, port=mail_servers.smtp.ports["plain"]))
    assert (step.name, step.fields) == ("tls", ["smtp.security"])
    assert (step.server_reply or "").startswith("250 smtp.test") and "STARTTLS" not in (step.server_reply or "")


async def test_smtp_expired_certificate(mail_servers: MailServers, tmp_path: Path) -> None:
    """A real SMTP server whose certificate expired yesterday (its own CA, trusted)."""
    tls = _expired_tls(tmp_path)
    async with SmtpServer.start(tls, users={mail_servers.user.login: mail_servers.user.password}) as server:
        step = await _smtp(
            smtp_target(mail_servers, port=server.ports["ssl"], security="ssl", ca_file=str(tls.ca_file))
        )
    assert (step.name, step.fields) == ("certificate", ["smtp.host"])
    assert "expired" in step.message and "renew" in (step.hint or "")


def _expired_tls(directory: Path) -> TlsMaterial:
    ca = trustme.CA(organization_name="bimmail expired test CA")
    now = datetime.datetime.now(datetime.UTC)
    cert = ca.issue_cert(HOST, not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1))
    tls = TlsMaterial(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(tls.ca_file))
    cert.private_key_pem.write_to_path(str(tls.key_file))
    cert.cert_chain_pems[0].write_to_path(str(tls.cert_file))
    return tls


async def test_smtp_unavailable_login_names_no_field(mail_servers: MailServers) -> None:
    """The server's own 454 (its credential check is down: the fixture's switch)."""
    mail_servers.smtp.auth_unavailable = True
    step = await _smtp(smtp_target(mail_servers))
    assert (step.name, step.fields) == ("login", [])
    assert step.server_reply == "454 4.7.0 Temporary authentication failure"


async def test_smtp_starttls_first_blames_the_security(mail_servers: MailServers) -> None:
    """aiosmtpd's own RFC 3207 answer to MAIL before STARTTLS: a 530 that is not about AUTH."""
    step = await _smtp(smtp_target(mail_servers, security="none", auth=False))
    assert (step.name, step.fields) == ("sender", ["smtp.security"])
    assert step.server_reply == "530 Must issue a STARTTLS command first"


# -- both servers ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["imap", "smtp"])
async def test_without_password(mail_servers: MailServers, kind: str) -> None:
    step = await _check_of(kind, mail_servers, password=None)
    assert (step.name, step.fields, step.server_reply) == ("login", ["password"], None)


@pytest.mark.parametrize(("kind", "offer"), [("imap", "CAPABILITY "), ("smtp", "250 smtp.test")])
async def test_oauth_where_the_server_offers_none(mail_servers: MailServers, kind: str, offer: str) -> None:
    """The server's offer (its capabilities, its EHLO answer) is the reply that shows it."""
    step = await _check_of(kind, mail_servers, oauth=True)
    assert (step.name, step.fields) == ("login", ["auth"])
    assert (step.server_reply or "").startswith(offer)


async def _check_of(kind: str, servers: MailServers, **changes: Any) -> Step:
    if kind == "imap":
        return await _imap(imap_target(servers, **changes))
    return await _smtp(smtp_target(servers, **changes))


# -- branches no local server produces: their diagnosis, from the exception alone ------------


def test_diagnoses_without_a_server_at_hand() -> None:
    """An unreachable network, a TLS version mismatch, RFC 4954's 538, a 4xx to MAIL FROM: the
    translation alone, since the fixtures (TLS 1.2+, loopback, aiosmtpd's replies) cannot give them."""
    imap = Target("imap", "mail.example.org", 993, "ssl", "u", None, "u@example.org")
    smtp = Target("smtp", "mail.example.org", 587, "none", "u", None, "u@example.org")
    unreachable = OSError(errno.ENETUNREACH, "Network is unreachable")
    cases = {
        "unreachable": (stages.connect_failure(imap, unreachable), ["imap.host"], None),
        "other-connect": (stages.connect_failure(imap, OSError(errno.EACCES, "denied")),
                          ["imap.host", "imap.port"], None),
        "tls-version": (stages.tls_failure(imap, ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION]")),
                        ["imap.security"], None),
        "538": (smtp_check._auth_refused(smtp, aiosmtplib.SMTPAuthenticationError(538, "5.7.11 Encryption required")),
                ["smtp.security"], "538 5.7.11 Encryption required"),
        "451-sender": (smtp_check._sender_refused(smtp, aiosmtplib.SMTPSenderRefused(451, "4.3.0 Try later", "u")),
                       [], "451 4.3.0 Try later"),
    }  # fmt: skip
    for name, (failure, fields, reply) in cases.items():
        assert (failure.fields, failure.server_reply) == (fields, reply), name
        assert failure.hint, name
