"""The connection test's engine: probing of alternatives and diagnosis of failures (R-A3).

Against the real test servers, except DNS: a failed lookup is produced by an
injected resolver (a fake for a fault the local servers cannot produce
without sending a DNS query off this machine).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from bimmaild.accounts.secrets import Secret
from bimmaild.conntest import runner, smtp_check, stages
from bimmaild.conntest.target import Target
from tests.servers.fixtures import MailServers


def _targets(servers: MailServers, **smtp: object) -> tuple[Target, Target]:
    user = servers.user
    common = {"user": user.login, "password": Secret(user.password), "email": user.login, "ca_file": servers.ca_file}
    imap = Target("imap", "127.0.0.1", servers.dovecot.ports["imaps"], "ssl", **common)  # type: ignore[arg-type]
    base = {"host": "127.0.0.1", "port": servers.smtp.ports["starttls"], "security": "starttls"}
    return imap, Target("smtp", **{**base, **smtp}, **common)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_refused_port_finds_the_usual_port_that_works(mail_servers: MailServers) -> None:
    """The issue's example: "port 465 refused; 587 with STARTTLS works" (usual ports mapped to our servers)."""
    closed = _closed_port()
    starttls_port = mail_servers.smtp.ports["starttls"]
    usual = {"imap": [], "smtp": [(closed, "ssl"), (starttls_port, "starttls")]}
    imap, smtp = _targets(mail_servers, port=closed, security="ssl")
    report = await runner.run(imap, smtp, runner.Limits(step_timeout=2, probe_timeout=2, usual_ways=usual))
    assert report.imap.ok
    assert report.smtp.failed is not None and report.smtp.failed.name == "connect"
    assert report.smtp.suggestion == (
        f"connection refused on port {closed}: nothing listens there; port {starttls_port} with STARTTLS works"
    )


async def test_unresolvable_host_names_the_host(mail_servers: MailServers) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await stages.system_resolver(host, port)

    imap, smtp = _targets(mail_servers)
    imap = Target(**{**imap.__dict__, "host": "imap.nowhere.invalid"})
    report = await runner.run(imap, smtp, runner.Limits(step_timeout=2, resolver=resolver))
    failed = report.imap.failed
    assert failed is not None and failed.name == "dns"
    assert failed.fields == ["imap.host"]
    assert "cannot be resolved" in failed.message
    assert report.imap.alternatives == [], "no point probing ports of a host that does not exist"
    assert report.smtp.ok


def test_candidates_never_propose_clear_text_unless_chosen() -> None:
    target = Target("imap", "h", 993, "ssl", "u", None, "u@h")
    assert runner.candidates(target) == [(143, "starttls"), (993, "starttls")]
    plain = Target("smtp", "h", 25, "none", "u", None, "u@h")
    assert (25, "none") not in runner.candidates(plain), "the configured way is not a candidate"
    assert runner.candidates(plain) == [(465, "ssl"), (587, "starttls"), (25, "starttls"), (25, "ssl")]


def test_tls_failure_diagnosis() -> None:
    target = Target("imap", "h", 143, "ssl", "u", None, "u@h")
    plain = stages.tls_failure(target, ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"))
    assert plain.fields == ["imap.security", "imap.port"]
    assert "clear text" in plain.message
    slow = stages.tls_failure(target, TimeoutError())
    assert slow.fields == ["imap.security"]


def test_certificate_failure_diagnosis() -> None:
    target = Target("smtp", "mail.example.org", 465, "ssl", "u", None, "u@h")
    mismatch = ssl.SSLCertVerificationError(1, "x")
    mismatch.verify_code, mismatch.verify_message = 62, "Hostname mismatch"
    assert stages.certificate_failure(target, mismatch, None).fields == ["smtp.host"]
    untrusted = ssl.SSLCertVerificationError(1, "x")
    untrusted.verify_code, untrusted.verify_message = 18, "self-signed certificate"
    failure = stages.certificate_failure(target, untrusted, None)
    assert failure.fields == ["tls_ca_file"]
    assert "--tls-ca-file" in (failure.hint or "")
    expired = ssl.SSLCertVerificationError(1, "x")
    expired.verify_code, expired.verify_message = 10, "certificate has expired"
    assert stages.certificate_failure(target, expired, None).fields == []


async def test_a_finished_smtp_test_leaves_no_descriptor_under_a_live_transport(mail_servers: MailServers) -> None:
    """After QUIT the TLS shutdown can outlast the test; the socket is then the transport's to close.

    Closing it ourselves freed the descriptor under a transport still reading: the
    next socket got the same number and asyncio refused it (a flaky "internal error:
    RuntimeError" of ``account.test`` right after ``account.add``).  The real SMTP
    server answers the TLS close at once, so a slow one is played here (a fake,
    for that fault only): a minimal implicit-TLS SMTP peer that stops reading after
    its 221, so our close_notify stays unanswered while we go on.
    """
    peers: list[asyncio.StreamWriter] = []

    async def slow_closer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        replies = {b"EHLO": b"250-slow.test\r\n250 AUTH PLAIN\r\n", b"QUIT": b"221 bye\r\n"}
        writer.write(b"220 slow.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            writer.write(replies.get(verb, b"235 ok\r\n" if verb == b"AUTH" else b"250 ok\r\n"))
            if verb == b"QUIT":
                assert isinstance(writer.transport, asyncio.ReadTransport)
                writer.transport.pause_reading()

    server = await asyncio.start_server(slow_closer, "127.0.0.1", 0, ssl=mail_servers.dovecot.tls.server_context())
    port = server.sockets[0].getsockname()[1]
    _, smtp = _targets(mail_servers, port=port, security="ssl")
    loop = asyncio.get_running_loop()
    try:
        assert (await smtp_check.check(smtp, 2)).ok
        with socket.socket() as sock:
            loop.add_reader(sock.fileno(), lambda: None)  # refused when the number is a live transport's
            loop.remove_reader(sock.fileno())
    finally:
        for writer in peers:
            writer.close()
        server.close()
        await server.wait_closed()
