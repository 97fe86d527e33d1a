"""bimmailctl account test / account add with its test / provider, against the real servers."""

from __future__ import annotations

import io
import json

from bimmailctl import render
from tests.helpers import RunningDaemon, run_ctl
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy

# What a hostile server could put in its reply: a colour, a window title (OSC … BEL), a C1 CSI.
ESCAPES = "\x1b[31mRED\x1b]0;pwned-title\x07 \x9b2J"


def _server_flags(servers: MailServers, *, password_file: str | None = None) -> list[str]:
    return [
        "--email", servers.user.login,
        "--imap-host", "127.0.0.1", "--imap-port", str(servers.dovecot.ports["imaps"]), "--imap-security", "ssl",
        "--smtp-host", "127.0.0.1", "--smtp-port", str(servers.smtp.ports["starttls"]), "--smtp-security", "starttls",
        "--tls-ca-file", servers.ca_file,
    ]  # fmt: skip


async def test_account_test_prints_a_checklist(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    ok = await run_ctl(daemon.socket_path, "account", "test", *_server_flags(mail_servers), "--password-stdin",
                       stdin=mail_servers.user.password + "\n")  # fmt: skip
    assert ok.code == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].startswith("IMAP  127.0.0.1:") and lines[0].endswith("works")
    assert "  ✓ login         logged in as " + mail_servers.user.login in lines
    assert lines[-1] == "Result: both servers work with these settings."

    bad = await run_ctl(daemon.socket_path, "account", "test", *_server_flags(mail_servers), "--password-stdin",
                        stdin="wrong\n")  # fmt: skip
    assert bad.code == 8
    assert "  ✗ login         IMAP login refused for " + mail_servers.user.login in bad.stdout
    assert "      fix:    login, password" in bad.stdout
    assert "      server: NO [AUTHENTICATIONFAILED] Authentication failed." in bad.stdout
    assert bad.stdout.splitlines()[-1] == "Result: FAILED — settings to fix: login, password"

    as_json = await run_ctl(daemon.socket_path, "--json", "account", "test", *_server_flags(mail_servers),
                            "--password-stdin", stdin="wrong\n")  # fmt: skip
    report = json.loads(as_json.stdout)
    assert as_json.code == 8
    assert report["fields"] == ["login", "password"]
    assert report["imap"]["failed_step"] == "login"


async def test_add_without_no_test_tests_and_refuses(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    refused = await run_ctl(daemon.socket_path, "account", "add", "--name", "Work", *_server_flags(mail_servers),
                            "--password-stdin", stdin="wrong\n")  # fmt: skip
    assert refused.code == 8
    assert "✗ login" in refused.stderr  # the checklist says what to fix
    assert "connection test failed" in refused.stderr and "(field login)" in refused.stderr
    assert json.loads((await run_ctl(daemon.socket_path, "--json", "account", "list")).stdout) == []

    added = await run_ctl(daemon.socket_path, "account", "add", "--name", "Work", *_server_flags(mail_servers),
                          "--password-stdin", stdin=mail_servers.user.password + "\n")  # fmt: skip
    assert added.code == 0, added.stderr
    assert "Result: both servers work" in added.stdout and "added account Work" in added.stdout
    saved = await run_ctl(daemon.socket_path, "account", "test", "Work")
    assert saved.code == 0, saved.stdout
    uncertain = await run_ctl(daemon.socket_path, "account", "test", "Work", "--no-tls-ca-file")
    assert uncertain.code == 8
    assert "fix:    tls_ca_file" in uncertain.stdout and "certificate:" in uncertain.stdout


async def test_wrong_security_suggests_what_works(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    flags = _server_flags(mail_servers)
    flags[flags.index("--imap-port") + 1] = str(mail_servers.dovecot.ports["imap"])  # the STARTTLS port, with ssl
    result = await run_ctl(daemon.socket_path, "account", "test", *flags, "--password-stdin",
                           stdin=mail_servers.user.password + "\n")  # fmt: skip
    assert result.code == 8
    port = mail_servers.dovecot.ports["imap"]
    assert f"→ port {port} answers in clear text, not TLS; port {port} with STARTTLS works" in result.stdout


async def test_provider_commands(daemon: RunningDaemon) -> None:
    listed = await run_ctl(daemon.socket_path, "provider", "list")
    assert listed.code == 0
    assert any(line.split()[:2] == ["gmail", "Gmail"] for line in listed.stdout.splitlines())
    shown = await run_ctl(daemon.socket_path, "provider", "show", "free")
    assert "imap.free.fr:993 ssl" in shown.stdout and "the part before '@'" in shown.stdout
    missing = await run_ctl(daemon.socket_path, "provider", "show", "nope")
    assert missing.code == 4
    bouygues = json.loads((await run_ctl(daemon.socket_path, "--json", "provider", "show", "bouygues")).stdout)
    assert bouygues["verified"] is False and bouygues["caveat"]


async def test_server_text_cannot_drive_the_terminal(daemon: RunningDaemon, mail_servers: MailServers) -> None:
    """R-A3: the server's reply is shown, its control characters neutralised (render.printable).

    The real SMTP server's 235 to a right password becomes, through the fault proxy (aiosmtpd
    cannot be made to send escapes), a 535 carrying terminal escape sequences.
    """
    async with FaultProxy.start("127.0.0.1", mail_servers.smtp.ports["plain"], literals=False) as proxy:
        proxy.rewrite(rb"^235 .*\r\n", ("535 5.7.8 " + ESCAPES + " bad\r\n").encode("utf-8"))
        flags = _server_flags(mail_servers)
        flags[flags.index("--smtp-port") + 1] = str(proxy.port)
        flags[flags.index("--smtp-security") + 1] = "none"
        result = await run_ctl(daemon.socket_path, "account", "test", *flags, "--password-stdin",
                               stdin=mail_servers.user.password + "\n")  # fmt: skip
    assert result.code == 8
    assert "      server: 535 5.7.8 \ufffd[31mRED\ufffd]0;pwned-title\ufffd \ufffd2J bad" in result.stdout
    assert not any(c in result.stdout + result.stderr for c in "\x1b\x07\x9b")


def test_every_server_text_of_a_report_is_made_printable() -> None:
    """R-A3: replies, messages, hints, certificate subjects, probe results and suggestions can all
    carry the server's words; none reaches the terminal raw.  A multi-line reply stays indented."""
    step = {"step": "certificate", "ok": False, "message": "not valid; it is for: " + ESCAPES, "fields": ["imap.host"],
            "hint": "use " + ESCAPES, "server_reply": "250 smtp.test\n" + ESCAPES, "duration_ms": 1,
            "details": {"certificate": {"subject": "CN=" + ESCAPES, "sha256": "AB:CD"}}}  # fmt: skip
    alternative = {"port": 993, "security": "ssl", "auth": None, "ok": False, "message": ESCAPES}
    server = {"ok": False, "host": "h", "port": 993, "security": "ssl", "steps": [step],
              "alternatives": [alternative], "suggestion": ESCAPES}  # fmt: skip
    out = io.StringIO()
    render.connection_report({"ok": False, "fields": ["imap.host"], "imap": server, "smtp": server}, out)
    text = out.getvalue()
    assert not any(c in text for c in "\x1b\x07\x9b")
    assert text.count("\ufffd[31mRED") == 12  # 6 places, 2 servers
    assert "      server: 250 smtp.test\n              \ufffd[31mRED" in text
