"""account.test against the real Dovecot and SMTP servers (R-A3, R-A2, R-B1, R-B3).

Each case sets up one realistic mistake and checks that the report names the
step that failed and the fields to fix, and, where another way in works, says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import sqlite3
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from bimmailctl.client import Client
from bimmaild.protocol.errors import AuthFailed, TlsFailure
from tests.helpers import RunningDaemon
from tests.servers.fixtures import MailServers
from tests.servers.proxy import FaultProxy

IMAP_STEPS = ["dns", "connect", "tls", "certificate", "capabilities", "login", "folders"]
SMTP_STEPS = ["dns", "connect", "tls", "certificate", "capabilities", "login", "sender"]


def steps(server: dict[str, Any]) -> list[str]:
    return [s["step"] for s in server["steps"]]


def failed(server: dict[str, Any]) -> dict[str, Any]:
    [step] = [s for s in server["steps"] if not s["ok"]]
    assert isinstance(step, dict)
    return step


async def test_all_correct(client: Client, mail_servers: MailServers) -> None:
    params = mail_servers.account_params()
    del params["name"]
    report = await client.call("account.test", params)
    assert report["ok"] is True, report
    assert steps(report["imap"]) == IMAP_STEPS
    assert steps(report["smtp"]) == SMTP_STEPS
    assert all(s["ok"] for s in report["imap"]["steps"] + report["smtp"]["steps"])
    assert report["fields"] == []
    folders = report["imap"]["steps"][-1]["message"]
    assert folders == "6 folders"  # INBOX + Sent, Drafts, Junk, Trash, Archive
    cert = report["imap"]["steps"][3]["details"]["certificate"]
    assert "127.0.0.1" in cert["names"]


async def test_closed_port(client: Client, mail_servers: MailServers) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    report = await client.call("account.test", mail_servers.account_params(name=None, imap={"port": closed}))
    step = failed(report["imap"])
    assert step["step"] == "connect"
    # imap.host too when nothing listens on 993/143 of 127.0.0.1 either (as here; see test_wrong_host…
    # and tests/conntest/test_runner.py::test_closed_port_on_the_right_host_names_the_port).
    assert step["fields"][-1] == "imap.port"
    assert "refused" in step["message"]
    assert report["smtp"]["ok"], "SMTP is checked independently"


async def test_wrong_host_that_resolves_names_the_host(client: Client, mail_servers: MailServers) -> None:
    """R-A3 "wrong host": an address that resolves but where nothing listens on any usual port
    (127.0.0.9: the test servers listen on 127.0.0.1) is the host's fault, not the port's."""
    if _answers("127.0.0.9", 993) or _answers("127.0.0.9", 143):
        pytest.skip("something on this machine listens on a usual IMAP port of every loopback address")
    report = await client.call("account.test", mail_servers.account_params(name=None, imap={"host": "127.0.0.9"}))
    step = failed(report["imap"])
    assert (step["step"], step["fields"]) == ("connect", ["imap.host", "imap.port"])
    port = mail_servers.dovecot.ports["imaps"]
    assert (
        step["hint"] == f"nothing listens on any usual IMAP port of 127.0.0.9 (143, 993, {port}): check the host name"
    )
    assert report["fields"] == ["imap.host", "imap.port"]


def _answers(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


async def test_tls_on_a_plain_port_suggests_starttls(client: Client, mail_servers: MailServers) -> None:
    imap = {"port": mail_servers.dovecot.ports["imap"], "security": "ssl"}
    smtp = {"port": mail_servers.smtp.ports["starttls"], "security": "ssl"}
    report = await client.call("account.test", mail_servers.account_params(name=None, imap=imap, smtp=smtp))
    for kind in ("imap", "smtp"):
        step = failed(report[kind])
        assert step["step"] == "tls"
        assert step["fields"] == [f"{kind}.security", f"{kind}.port"]
        assert "clear text" in step["message"]
        working = [a for a in report[kind]["alternatives"] if a["ok"]]
        assert {"port": imap["port"] if kind == "imap" else smtp["port"], "security": "starttls"}.items() <= working[
            0
        ].items()
        assert "STARTTLS works" in report[kind]["suggestion"]


async def test_plain_on_a_tls_port_suggests_ssl(client: Client, mail_servers: MailServers) -> None:
    imap = {"port": mail_servers.dovecot.ports["imaps"], "security": "starttls"}
    smtp = {"port": mail_servers.smtp.ports["ssl"], "security": "none", "auth": True}
    report = await client.call("account.test", mail_servers.account_params(name=None, imap=imap, smtp=smtp))
    for kind in ("imap", "smtp"):
        step = failed(report[kind])
        assert step["fields"] == [f"{kind}.security", f"{kind}.port"], step
        assert "no greeting" in step["message"]
        assert "SSL/TLS works" in report[kind]["suggestion"]


async def test_starttls_expected_but_not_offered(client: Client, mail_servers: MailServers) -> None:
    imap = mail_servers.imap("imap_notls", "starttls")
    smtp = mail_servers.smtp_params("plain", "starttls")
    report = await client.call("account.test", mail_servers.account_params(name=None, imap=imap, smtp=smtp))
    for kind in ("imap", "smtp"):
        step = failed(report[kind])
        assert step["step"] == "tls"
        assert step["fields"] == [f"{kind}.security"]
        assert "does not offer STARTTLS" in step["message"]
        assert not any(a["security"] == "none" for a in report[kind]["alternatives"]), "never proposes clear text"


async def test_untrusted_certificate_is_refused_with_its_fingerprint(client: Client, mail_servers: MailServers) -> None:
    report = await client.call("account.test", mail_servers.account_params(name=None, tls_ca_file=None))
    der = ssl.PEM_cert_to_DER_cert(mail_servers.dovecot.tls.cert_file.read_text().split("-----END CERTIFICATE-----")[0]
                                   + "-----END CERTIFICATE-----\n")  # fmt: skip
    fingerprint = hashlib.sha256(der).hexdigest().upper()
    for kind in ("imap", "smtp"):
        step = failed(report[kind])
        assert step["step"] == "certificate"
        assert step["fields"] == ["tls_ca_file"]
        assert "not trusted" in step["message"]
        assert step["details"]["certificate"]["sha256"].replace(":", "") == fingerprint
        assert "--tls-ca-file" in step["hint"]
        assert [s["step"] for s in report[kind]["steps"] if s["ok"]][-1] == "tls", "TLS itself worked"


async def test_certificate_for_another_host(client: Client, mail_servers: MailServers) -> None:
    report = await client.call(
        "account.test", mail_servers.account_params(name=None, imap=mail_servers.imap("imaps_alt"))
    )
    step = failed(report["imap"])
    assert step["step"] == "certificate"
    assert step["fields"] == ["imap.host"]
    assert "not valid for 127.0.0.3" in step["message"]
    assert "127.0.0.1" in step["message"] and "localhost" in step["message"]


async def test_wrong_imap_password(client: Client, mail_servers: MailServers) -> None:
    report = await client.call("account.test", mail_servers.account_params(name=None, password="wrong-one"))
    step = failed(report["imap"])
    assert step["step"] == "login"
    assert step["fields"] == ["login", "password"]
    assert "AUTHENTICATIONFAILED" in step["server_reply"]
    smtp_step = failed(report["smtp"])
    assert smtp_step["step"] == "login" and smtp_step["server_reply"].startswith("535")


async def test_wrong_smtp_password_with_separate_auth(client: Client, mail_servers: MailServers) -> None:
    """R-A2: the IMAP pair is right, the SMTP pair is not; only SMTP fails, naming smtp.*."""
    user = mail_servers.user
    params = mail_servers.account_params(
        name=None,
        separate_auth=True,
        imap={**mail_servers.imap(), "login": user.login, "password": user.password},
        smtp={**mail_servers.smtp_params(), "login": user.login, "password": "not-the-smtp-one"},
    )
    del params["password"]
    report = await client.call("account.test", params)
    assert report["imap"]["ok"]
    step = failed(report["smtp"])
    assert step["step"] == "login"
    assert step["fields"] == ["smtp.login", "smtp.password"]
    assert report["fields"] == ["smtp.login", "smtp.password"]


async def test_smtp_auth_required_but_off(client: Client, mail_servers: MailServers) -> None:
    report = await client.call(
        "account.test", mail_servers.account_params(name=None, smtp=mail_servers.smtp_params(auth=False))
    )
    step = failed(report["smtp"])
    assert step["step"] == "sender"
    assert step["fields"] == ["smtp.auth"]
    assert step["server_reply"].startswith("530")
    assert report["smtp"]["alternatives"] == [
        {"port": mail_servers.smtp.ports["starttls"], "security": "starttls", "auth": True, "ok": True,
         "message": "the server accepts mail from the account"},
    ]  # fmt: skip
    assert "with SMTP authentication on it works" in report["smtp"]["suggestion"]


async def test_smtp_auth_on_but_server_offers_none(client: Client, mail_servers: MailServers) -> None:
    """R-A3: a server with no authentication at all (no AUTH after STARTTLS either), taking mail
    without it: the login step names smtp.auth only (TLS is in place), and "auth off" works."""
    mail_servers.smtp.offer_auth = False
    mail_servers.smtp.auth_required = False
    report = await client.call("account.test", mail_servers.account_params(name=None))
    step = failed(report["smtp"])
    assert (step["step"], step["fields"]) == ("login", ["smtp.auth"])
    assert step["message"] == "the server offers no authentication on this connection"
    assert step["hint"] == "turn off SMTP authentication (--no-smtp-auth) if this server needs none"
    assert step["server_reply"].startswith("250 smtp.test") and "AUTH" not in step["server_reply"]
    port = mail_servers.smtp.ports["starttls"]
    assert report["smtp"]["alternatives"] == [
        {"port": port, "security": "starttls", "auth": False, "ok": True,
         "message": "the server accepts mail from the account"},
    ]  # fmt: skip
    assert report["smtp"]["suggestion"].endswith("; with SMTP authentication off it works")
    off = mail_servers.account_params(name=None, smtp=mail_servers.smtp_params(auth=False))
    assert (await client.call("account.test", off))["smtp"]["ok"]


async def test_smtp_security_none_on_a_starttls_port(client: Client, mail_servers: MailServers) -> None:
    """R-A3: no AUTH before TLS shows only at login; STARTTLS on the same port is tried and works."""
    port = mail_servers.smtp.ports["starttls"]
    report = await client.call("account.test", mail_servers.account_params(name=None, smtp={"security": "none"}))
    step = failed(report["smtp"])
    assert (step["step"], step["fields"]) == ("login", ["smtp.auth", "smtp.security"])
    assert "STARTTLS" in step["server_reply"] and "AUTH" not in step["server_reply"]
    assert step["hint"].startswith("servers often offer authentication only after TLS")
    tried = {(a["port"], a["security"], a["auth"]): a["ok"] for a in report["smtp"]["alternatives"]}
    assert tried[(port, "starttls", None)] is True
    assert tried[(port, "none", False)] is False, "auth off: the server wants it"
    assert not any(sec == "none" and auth is None for _, sec, auth in tried), "never clear text as a way in"
    assert report["smtp"]["suggestion"] == (
        f"the server offers no authentication on this connection; port {port} with STARTTLS works"
    )


async def test_smtp_starttls_first_at_mail_from(client: Client, mail_servers: MailServers) -> None:
    """R-A3: security none and auth off on a STARTTLS port: the 530 at MAIL FROM is about TLS."""
    mail_servers.smtp.auth_required = False  # a relay for its network: no login, but TLS first
    port = mail_servers.smtp.ports["starttls"]
    params = mail_servers.account_params(name=None, smtp={"security": "none", "auth": False})
    report = await client.call("account.test", params)
    step = failed(report["smtp"])
    assert (step["step"], step["fields"]) == ("sender", ["smtp.security"])
    assert step["server_reply"] == "530 Must issue a STARTTLS command first"
    assert report["smtp"]["suggestion"] == f"the server takes mail only after STARTTLS; port {port} with STARTTLS works"


async def test_imap_logindisabled_finds_starttls(client: Client, mail_servers: MailServers) -> None:
    """R-A3: IMAP with security none where the server says LOGINDISABLED: STARTTLS on the same port.

    Dovecot counts loopback clients as secure and never says LOGINDISABLED to them, so the fault
    proxy puts it in place of the AUTH= capabilities before TLS, as Dovecot shows them to a remote
    client; after STARTTLS the bytes are Dovecot's own, untouched.
    """
    async with FaultProxy.start("127.0.0.1", mail_servers.dovecot.ports["imap"]) as proxy:
        proxy.rewrite(rb"(?: AUTH=[^\s\]]+)+", b" LOGINDISABLED")
        imap = {"port": proxy.port, "security": "none"}
        report = await client.call("account.test", mail_servers.account_params(name=None, imap=imap))
    step = failed(report["imap"])
    assert (step["step"], step["fields"]) == ("login", ["imap.security"])
    assert "LOGINDISABLED" in step["server_reply"]
    assert mail_servers.user.password.encode() not in proxy.from_clients, "never sent in clear"
    assert report["imap"]["suggestion"] == (
        f"the server refuses to log in over clear text; port {proxy.port} with STARTTLS works"
    )


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port whose SYNs are never answered: a listener with a full backlog that never accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):  # fill the accept queue; later connects hang in SYN_SENT
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(listener.getsockname())
        fillers.append(s)
    yield listener.getsockname()[1]
    for s in fillers:
        s.close()
    listener.close()


async def test_black_holed_port_returns_within_the_timeouts(
    client: Client, mail_servers: MailServers, black_hole: int
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    report = await client.call("account.test", mail_servers.account_params(name=None, imap={"port": black_hole}))
    elapsed = loop.time() - start
    step = failed(report["imap"])
    assert step["step"] in ("connect", "tls", "capabilities")
    assert "imap.port" in step["fields"]
    # Test daemon: 2 s per step, probes in parallel at most 2 s: bounded, whatever the server does.
    assert elapsed < 10, elapsed


async def test_saved_account_and_overrides(client: Client, mail_servers: MailServers) -> None:
    await client.call("account.add", {**mail_servers.account_params(), "test": False})
    report = await client.call("account.test", {"account": "Work"})
    assert report["ok"], report
    wrong = await client.call("account.test", {"account": "Work", "password": "a-new-wrong-one"})
    assert failed(wrong["imap"])["fields"] == ["login", "password"]
    assert (await client.call("account.test", {"account": "Work"}))["ok"], "an override changes nothing stored"


async def test_add_tests_first_and_saves_nothing_on_failure(
    client: Client, daemon: RunningDaemon, mail_servers: MailServers
) -> None:
    with pytest.raises(AuthFailed) as err:
        await client.call("account.add", mail_servers.account_params(password="wrong"))
    assert err.value.field == "login"
    assert err.value.data["report"]["imap"]["failed_step"] == "login"
    assert "password" in err.value.message
    with pytest.raises(TlsFailure) as tls_err:
        await client.call("account.add", mail_servers.account_params(tls_ca_file=None))
    assert tls_err.value.field == "tls_ca_file"
    db = sqlite3.connect(daemon.data_dir / "bimmail.sqlite3")
    assert db.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0
    db.close()
    result = await client.call("account.add", mail_servers.account_params())
    assert result["test"]["ok"] is True
    assert result["account"]["name"] == "Work"
