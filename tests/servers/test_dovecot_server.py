"""The test Dovecot behaves like the real server the other tests rely on."""

from __future__ import annotations

import imaplib
import socket
import ssl

import pytest

from tests.servers.dovecot import Dovecot, ImapUser

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hello * (world\r\n\r\nbody\r\n"


def test_listeners_and_tls(dovecot: Dovecot, imap_user: ImapUser) -> None:
    plain = imaplib.IMAP4("127.0.0.1", dovecot.ports["imap"])
    assert "STARTTLS" in plain.capabilities
    plain.starttls(dovecot.client_context())
    plain.login(imap_user.login, imap_user.password)
    plain.logout()
    with (
        socket.create_connection(("127.0.0.1", dovecot.ports["imaps"])) as raw,
        dovecot.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.recv(100).startswith(b"* OK")
    notls = imaplib.IMAP4("127.0.0.2", dovecot.ports["imap_notls"])
    assert "STARTTLS" not in notls.capabilities
    notls.logout()
    with (
        socket.create_connection(("127.0.0.3", dovecot.ports["imaps_alt"])) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        dovecot.client_context().wrap_socket(raw, server_hostname="127.0.0.3")
    with (
        socket.create_connection(("127.0.0.1", dovecot.ports["imaps"])) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")  # untrusted CA


def test_users_are_isolated_and_special_use_folders_exist(dovecot: Dovecot, imap_user: ImapUser) -> None:
    other = dovecot.add_user()
    imap_user.deliver(MESSAGE)
    imap_user.append(MESSAGE, "Archive", r"(\Seen)")
    with imap_user.imap() as client:
        _, data = client.list('""', "*")
        listing = b"\n".join(d for d in data if isinstance(d, bytes))
        for flag in (rb"\Sent", rb"\Drafts", rb"\Junk", rb"\Trash", rb"\Archive"):
            assert flag in listing
        assert client.select("INBOX")[1] == [b"1"]
        _, fetched = client.fetch("1", "(BODY.PEEK[])")
        first = fetched[0]
        assert isinstance(first, tuple)
        assert first[1] == MESSAGE
        assert client.select("Archive")[1] == [b"1"]
    with other.imap() as client:
        assert client.select("INBOX")[1] == [b"0"]


def test_wrong_password_refused(dovecot: Dovecot, imap_user: ImapUser) -> None:
    client = imaplib.IMAP4("127.0.0.1", dovecot.ports["imap"])
    client.starttls(dovecot.client_context())
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(imap_user.login, "not-the-password")
    client.shutdown()


def test_restart_and_kick() -> None:
    with Dovecot.running() as server:
        user = server.add_user()
        client = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
        client.starttls(server.client_context())
        client.login(user.login, user.password)
        server.kick(user)
        with pytest.raises((imaplib.IMAP4.abort, OSError)):  # noqa: PT012 (the drop may show on either)
            client.noop()
            client.noop()
        client.shutdown()
        server.restart()
        with user.imap() as again:
            assert again.noop()[0] == "OK"
