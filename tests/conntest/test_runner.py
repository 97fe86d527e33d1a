"""The connection test's engine: probing of alternatives and diagnosis of failures (R-A3).

Against the real test servers, except DNS: a failed lookup is produced by an
injected resolver (a fake for a fault the local servers cannot produce
without sending a DNS query off this machine).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from bimmaild.conntest import runner, smtp_check, stages
from bimmaild.conntest.report import Step
from bimmaild.conntest.target import Target
from tests.conntest.targets import closed_port, failed_step, imap_target, smtp_target
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy


def _targets(servers: MailServers, **smtp: object) -> tuple[Target, Target]:
    return imap_target(servers), smtp_target(servers, **smtp)


def _usual(servers: MailServers) -> dict[str, list[tuple[int, str]]]:
    """The usual ports, mapped to the test servers' (which listen on 127.0.0.1 only)."""
    dovecot, smtp = servers.dovecot.ports, servers.smtp.ports
    return {
        "imap": [(dovecot["imaps"], "ssl"), (dovecot["imap"], "starttls")],
        "smtp": [(smtp["ssl"], "ssl"), (smtp["starttls"], "starttls")],
    }


async def test_refused_port_finds_the_usual_port_that_works(mail_servers: MailServers) -> None:
    """The issue's example: "port 465 refused; 587 with STARTTLS works" (usual ports mapped to our servers)."""
    closed = closed_port()
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

    imap, smtp = imap_target(mail_servers, host="imap.nowhere.invalid"), smtp_target(mail_servers)
    report = await runner.run(imap, smtp, runner.Limits(step_timeout=2, resolver=resolver))
    failed = report.imap.failed
    assert failed is not None and failed.name == "dns"
    assert failed.fields == ["imap.host"]
    assert "cannot be resolved" in failed.message
    assert report.imap.alternatives == [], "no point probing ports of a host that does not exist"
    assert report.smtp.ok


async def test_closed_port_on_the_right_host_names_the_port(mail_servers: MailServers) -> None:
    """R-A3 "closed port": the usual ports answer, so the port, not the host, is wrong."""
    imap = imap_target(mail_servers, port=closed_port())
    report = await runner.run(imap, smtp_target(mail_servers), runner.Limits(2, 2, _usual(mail_servers)))
    step = failed_step(report.imap)
    assert (step.name, step.fields) == ("connect", ["imap.port"])
    assert report.imap.suggestion is not None
    assert report.imap.suggestion.endswith(f"port {mail_servers.dovecot.ports['imaps']} with SSL/TLS works")


async def test_nothing_listening_on_the_host_names_the_host(mail_servers: MailServers) -> None:
    """R-A3 "wrong host": a host that resolves but where every usual port refuses (127.0.0.9: the
    test servers listen on 127.0.0.1 only) is named with the port, with a hint to check it."""
    limits = runner.Limits(2, 2, _usual(mail_servers))
    imap = imap_target(mail_servers, host="127.0.0.9")
    smtp = smtp_target(mail_servers, host="127.0.0.9")
    report = await runner.run(imap, smtp, limits)
    for server, kind in ((report.imap, "imap"), (report.smtp, "smtp")):
        step = failed_step(server)
        assert (step.name, step.fields) == ("connect", [f"{kind}.host", f"{kind}.port"])
        ports = sorted({server.port, *(a.port for a in server.alternatives)})
        assert step.hint == (f"nothing listens on any usual {kind.upper()} port of 127.0.0.9 "
                             f"({', '.join(map(str, ports))}): check the host name")  # fmt: skip
        assert server.alternatives and not any(a.ok for a in server.alternatives)
    assert report.fields == ["imap.host", "imap.port", "smtp.host", "smtp.port"]


async def test_one_usual_port_answering_keeps_the_host(mail_servers: MailServers) -> None:
    """A refused port beside one that answers (even with an error) is the port's fault only."""
    limits = runner.Limits(2, 2, {"imap": [(mail_servers.smtp.ports["plain"], "starttls")], "smtp": []})
    report = await runner.run(imap_target(mail_servers, port=closed_port()), smtp_target(mail_servers), limits)
    step = failed_step(report.imap)
    assert step.fields == ["imap.port"]
    assert [(a.ok, a.refused) for a in report.imap.alternatives] == [(False, False), (False, True)]  # SMTP heard


def test_security_named_at_login_probes_the_ways_in() -> None:
    """R-A3: a security setting found wrong only at login (or at MAIL FROM) still gets the usual
    ports and securities tried; a wrong password does not."""
    limits = runner.Limits()
    smtp = Target("smtp", "h", 587, "none", "u", None, "u@h")
    no_auth = Step("login", False, "no AUTH", ["smtp.auth", "smtp.security"])
    ways = runner._ways(smtp, no_auth, limits)
    assert [(v.port, v.security, v.auth, flip) for v, flip in ways] == [
        (465, "ssl", True, None), (587, "starttls", True, None), (25, "starttls", True, None),
        (587, "ssl", True, None), (587, "none", False, False),
    ]  # fmt: skip
    imap = Target("imap", "h", 143, "none", "u", None, "u@h")
    assert [(v.port, v.security) for v, _ in runner._ways(imap, Step("login", False, "", ["imap.security"]), limits)]\
        == [(993, "ssl"), (143, "starttls"), (143, "ssl")]  # fmt: skip
    assert runner._ways(imap, Step("login", False, "refused", ["login", "password"]), limits) == []


async def test_auth_probe_over_clear_text_sends_no_password(mail_servers: MailServers) -> None:
    """Auth off on a clear-text server that wants it: the "auth on" probe stops at the AUTH offer
    (the proxy records every byte the client sent)."""
    async with FaultProxy.start("127.0.0.1", mail_servers.smtp.ports["plain"], literals=False) as proxy:
        smtp = smtp_target(mail_servers, port=proxy.port, security="none", auth=False)
        report = await runner.run(imap_target(mail_servers), smtp, runner.Limits(2, 2, {"imap": [], "smtp": []}))
    step = failed_step(report.smtp)
    assert (step.name, step.fields) == ("sender", ["smtp.auth"])
    flip = [a for a in report.smtp.alternatives if a.auth is not None]
    assert [(a.auth, a.ok, a.message) for a in flip] == [(True, True, "ESMTP; login methods: LOGIN, PLAIN")]
    assert b"AUTH" not in bytes(proxy.from_clients)


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
    assert stages.certificate_failure(target, expired, None).fields == ["smtp.host"]


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
