"""The test SMTP server behaves like a real one, as seen by a real client (aiosmtplib).

Other tests trust its answers and its record of deliveries to judge bimmaild's
sending; these tests are what earns that trust.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from tests.servers.fixtures import SMTP_LOGIN, SMTP_PASSWORD
from tests.servers.smtp import AuthAttempt, Delivery, PortKind, SmtpServer
from tests.servers.tls import make_tls

SENDER = SMTP_LOGIN
BOB = "bob@example.org"
CAROL = "carol@example.org"
MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n"
    b"Message-ID: <test-1@example.org>\r\n"
    b"\r\n"
    b"Hello Bob.\r\n"
    b".A line starting with a dot survives dot-stuffing.\r\n"
    b"\r\n"
    b"-- \r\n"
    b"Alice\r\n"
)


def client(smtp: SmtpServer, kind: PortKind, **options: Any) -> aiosmtplib.SMTP:
    """A client for one listener, trusting the test CA, TLS as the listener expects it."""
    settings: dict[str, Any] = {
        "hostname": smtp.host,
        "port": smtp.ports[kind],
        "local_hostname": "client.test",
        "timeout": 5,
    }
    if kind == "ssl":
        settings.update(use_tls=True, tls_context=smtp.tls.client_context())
    elif kind == "starttls":
        settings.update(start_tls=True, cert_bundle=str(smtp.tls.ca_file))
    else:
        settings.update(start_tls=False)
    settings.update(options)
    return aiosmtplib.SMTP(**settings)


async def test_three_listeners_on_distinct_free_ports(smtp_server: SmtpServer) -> None:
    ports = smtp_server.ports
    assert set(ports) == {"ssl", "starttls", "plain"}
    assert len(set(ports.values())) == 3 and all(port > 0 for port in ports.values())


async def test_delivery_over_implicit_tls_with_auth(smtp_server: SmtpServer) -> None:
    async with client(smtp_server, "ssl", username=SMTP_LOGIN, password=SMTP_PASSWORD) as smtp:
        errors, reply = await smtp.sendmail(SENDER, [BOB], MESSAGE)

    assert errors == {}
    assert "queued" in reply
    assert smtp_server.deliveries == [Delivery(SENDER, [BOB], MESSAGE, SMTP_LOGIN, "ssl")]


@pytest.mark.parametrize("mechanism", ["plain", "login"])
async def test_delivery_over_starttls_with_each_auth_mechanism(smtp_server: SmtpServer, mechanism: str) -> None:
    async with client(smtp_server, "starttls") as smtp:
        assert smtp.get_transport_info("sslcontext") is not None  # the upgrade happened
        await smtp.ehlo()  # aiosmtplib's auth_* methods do not send the EHLO that STARTTLS made necessary
        if mechanism == "plain":
            await smtp.auth_plain(SMTP_LOGIN, SMTP_PASSWORD)
        else:
            await smtp.auth_login(SMTP_LOGIN, SMTP_PASSWORD)
        await smtp.sendmail(SENDER, [BOB], MESSAGE)

    assert smtp_server.auth_attempts == [AuthAttempt(SMTP_LOGIN, mechanism.upper(), True, "starttls")]
    [delivery] = await smtp_server.wait_for_deliveries(1)
    assert (delivery.auth_login, delivery.port_kind) == (SMTP_LOGIN, "starttls")


async def test_the_delivery_record_holds_envelope_and_exact_bytes(smtp_server: SmtpServer) -> None:
    async with client(smtp_server, "ssl", username=SMTP_LOGIN, password=SMTP_PASSWORD) as smtp:
        await smtp.sendmail("bounces@example.org", [BOB, CAROL], MESSAGE)

    [delivery] = smtp_server.deliveries
    assert delivery.mail_from == "bounces@example.org"  # the envelope, not the From header
    assert delivery.rcpt_tos == [BOB, CAROL]
    assert delivery.data == MESSAGE
    assert delivery.message["Subject"] == "Café"
    assert ".A line starting with a dot" in delivery.message.get_content()


async def test_ehlo_advertises_auth_only_over_tls_on_tls_listeners(smtp_server: SmtpServer) -> None:
    async with client(smtp_server, "starttls", start_tls=False) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("starttls")
        assert not smtp.supports_extension("auth")
        await smtp.starttls()
        await smtp.ehlo()
        assert not smtp.supports_extension("starttls")
        assert sorted(smtp.server_auth_methods) == ["login", "plain"]

    async with client(smtp_server, "ssl") as smtp:
        await smtp.ehlo()
        assert not smtp.supports_extension("starttls")
        assert sorted(smtp.server_auth_methods) == ["login", "plain"]

    async with client(smtp_server, "plain") as smtp:
        await smtp.ehlo()
        assert not smtp.supports_extension("starttls")
        assert sorted(smtp.server_auth_methods) == ["login", "plain"]


async def test_starttls_listener_refuses_auth_and_mail_before_the_upgrade(smtp_server: SmtpServer) -> None:
    smtp_server.auth_required = False
    credentials = base64.b64encode(f"\0{SMTP_LOGIN}\0{SMTP_PASSWORD}".encode()).decode()
    async with client(smtp_server, "starttls", start_tls=False) as smtp:
        await smtp.ehlo()
        reply = await smtp.execute_command(b"AUTH", b"PLAIN", credentials.encode())
        assert (reply.code, reply.message) == (530, "Must issue a STARTTLS command first")
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await smtp.mail(SENDER)
        assert refused.value.code == 530

    assert smtp_server.auth_attempts == []
    assert smtp_server.deliveries == []


async def test_wrong_password_is_refused_with_535(smtp_server: SmtpServer) -> None:
    with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
        async with client(smtp_server, "starttls", username=SMTP_LOGIN, password="wrong"):
            pass

    assert failed.value.code == 535
    # aiosmtplib's login() tries every mechanism the server offers before giving up
    assert smtp_server.auth_attempts == [
        AuthAttempt(SMTP_LOGIN, "PLAIN", False, "starttls"),
        AuthAttempt(SMTP_LOGIN, "LOGIN", False, "starttls"),
    ]
    assert smtp_server.deliveries == []


async def test_unknown_user_is_refused_with_535(smtp_server: SmtpServer) -> None:
    async with client(smtp_server, "ssl") as smtp:
        await smtp.ehlo()
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
            await smtp.auth_login("mallory@example.org", SMTP_PASSWORD)
    assert failed.value.code == 535


async def test_mail_without_auth_is_refused_with_530_when_auth_is_required(smtp_server: SmtpServer) -> None:
    async with client(smtp_server, "starttls") as smtp:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
            await smtp.sendmail(SENDER, [BOB], MESSAGE)

    assert (refused.value.code, refused.value.message) == (530, "5.7.0 Authentication required")
    assert smtp_server.deliveries == []


async def test_mail_without_auth_is_accepted_when_auth_is_not_required(smtp_server: SmtpServer) -> None:
    smtp_server.auth_required = False
    async with client(smtp_server, "plain") as smtp:
        await smtp.sendmail(SENDER, [BOB], MESSAGE)

    assert smtp_server.deliveries == [Delivery(SENDER, [BOB], MESSAGE, None, "plain")]


async def test_auth_works_in_clear_text_on_the_plain_listener(smtp_server: SmtpServer) -> None:
    async with client(smtp_server, "plain", username=SMTP_LOGIN, password=SMTP_PASSWORD) as smtp:
        assert smtp.get_transport_info("sslcontext") is None
        await smtp.sendmail(SENDER, [BOB], MESSAGE)

    assert smtp_server.deliveries[0].auth_login == SMTP_LOGIN
    assert smtp_server.deliveries[0].port_kind == "plain"


async def test_the_auth_switch_applies_to_the_next_command(smtp_server: SmtpServer) -> None:
    async with client(smtp_server, "ssl") as smtp:
        with pytest.raises(aiosmtplib.SMTPSenderRefused):
            await smtp.sendmail(SENDER, [BOB], MESSAGE)
        smtp_server.auth_required = False
        await smtp.sendmail(SENDER, [BOB], MESSAGE)

    assert len(smtp_server.deliveries) == 1


@pytest.mark.parametrize(("code", "text"), [(550, "5.1.1 No such user"), (450, "4.2.0 Mailbox busy, try later")])
async def test_one_refused_recipient_is_reported_and_the_others_delivered(
    smtp_server: SmtpServer, code: int, text: str
) -> None:
    smtp_server.refuse[CAROL] = (code, text)
    async with client(smtp_server, "ssl", username=SMTP_LOGIN, password=SMTP_PASSWORD) as smtp:
        errors, _ = await smtp.sendmail(SENDER, [BOB, CAROL], MESSAGE)

    assert {address: (reply.code, reply.message) for address, reply in errors.items()} == {CAROL: (code, text)}
    [delivery] = smtp_server.deliveries
    assert delivery.rcpt_tos == [BOB]


async def test_all_recipients_refused_raises_and_records_nothing(smtp_server: SmtpServer) -> None:
    smtp_server.refuse[BOB] = (550, "5.1.1 No such user")
    smtp_server.refuse[CAROL] = (451, "4.3.0 Temporary failure")
    async with client(smtp_server, "ssl", username=SMTP_LOGIN, password=SMTP_PASSWORD) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await smtp.sendmail(SENDER, [BOB, CAROL], MESSAGE)

    assert [(err.recipient, err.code) for err in refused.value.recipients] == [(BOB, 550), (CAROL, 451)]
    assert smtp_server.deliveries == []


async def test_refused_data_is_reported_and_not_recorded(smtp_server: SmtpServer) -> None:
    smtp_server.refuse_data = (552, "5.3.4 Message too big")
    async with client(smtp_server, "ssl", username=SMTP_LOGIN, password=SMTP_PASSWORD) as smtp:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.sendmail(SENDER, [BOB], MESSAGE)

    assert (refused.value.code, refused.value.message) == (552, "5.3.4 Message too big")
    assert smtp_server.deliveries == []


async def test_plain_listener_does_not_offer_starttls(smtp_server: SmtpServer) -> None:
    with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS extension not supported"):
        async with client(smtp_server, "plain", start_tls=True, cert_bundle=str(smtp_server.tls.ca_file)):
            pass


@pytest.mark.parametrize("kind", ["ssl", "starttls"])
async def test_a_client_without_the_test_ca_fails_certificate_verification(
    smtp_server: SmtpServer, kind: PortKind
) -> None:
    untrusted = ssl.create_default_context()  # the system trust store only
    options: dict[str, Any] = {"use_tls": True} if kind == "ssl" else {"start_tls": True}
    smtp = client(smtp_server, kind, tls_context=untrusted, cert_bundle=None, **options)
    # aiosmtplib wraps a failed implicit-TLS handshake in SMTPConnectError, but lets
    # a failed STARTTLS handshake out as the bare ssl error
    with pytest.raises((aiosmtplib.SMTPConnectError, ssl.SSLError)) as failed:
        await smtp.connect()
    smtp.close()

    cause = failed.value.__cause__ if kind == "ssl" else failed.value
    assert isinstance(cause, ssl.SSLCertVerificationError), failed.value
    assert "certificate verify failed" in str(cause)
    assert smtp_server.deliveries == [] and smtp_server.auth_attempts == []


async def test_wait_for_deliveries_wakes_up_on_delivery(smtp_server: SmtpServer) -> None:
    smtp_server.auth_required = False

    async def send_later() -> None:
        await asyncio.sleep(0.05)
        async with client(smtp_server, "plain") as smtp:
            await smtp.sendmail(SENDER, [BOB], MESSAGE)

    sender = asyncio.create_task(send_later())
    deliveries = await smtp_server.wait_for_deliveries(1, timeout=5)
    await sender
    assert [d.rcpt_tos for d in deliveries] == [[BOB]]


async def test_wait_for_deliveries_fails_after_the_timeout(smtp_server: SmtpServer) -> None:
    with pytest.raises(AssertionError, match=r"expected 1 deliveries within 0\.05 s, got 0"):
        await smtp_server.wait_for_deliveries(1, timeout=0.05)


@pytest.mark.parametrize("kind", ["ssl", "starttls", "plain"])
async def test_close_all_connections_drops_connected_clients(smtp_server: SmtpServer, kind: PortKind) -> None:
    smtp = client(smtp_server, kind)
    await smtp.connect()
    await smtp.ehlo()
    assert smtp_server.connection_count == 1

    assert smtp_server.close_all_connections() == 1
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await smtp.noop()
    smtp.close()
    await asyncio.sleep(0)
    assert smtp_server.connection_count == 0


async def test_a_stopped_listener_refuses_connections_until_started_again(smtp_server: SmtpServer) -> None:
    port = smtp_server.ports["ssl"]
    connected = client(smtp_server, "ssl")
    await connected.connect()

    await smtp_server.stop_listener("ssl")

    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await connected.noop()  # its client was dropped
    connected.close()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await client(smtp_server, "ssl").connect()
    async with client(smtp_server, "plain") as other:  # the other listeners still serve
        await other.noop()

    await smtp_server.start_listener("ssl")

    assert smtp_server.ports["ssl"] == port
    async with client(smtp_server, "ssl", username=SMTP_LOGIN, password=SMTP_PASSWORD) as smtp:
        await smtp.sendmail(SENDER, [BOB], MESSAGE)
    assert len(smtp_server.deliveries) == 1


async def test_leaving_the_context_drops_clients_and_closes_the_ports(tmp_path: Path) -> None:
    async with SmtpServer.start(make_tls(tmp_path / "tls"), auth_required=False) as server:
        connected = client(server, "starttls")
        await connected.connect()
        ports = dict(server.ports)

    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await connected.noop()
    connected.close()
    for kind, port in ports.items():
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(server.host, port)
        assert kind in server.ports  # the numbers stay readable after the end
