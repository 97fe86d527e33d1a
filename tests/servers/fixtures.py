"""Fixtures that start the test mail servers; the root conftest imports them.

The SMTP server uses the session Dovecot's TLS material, so one CA file
(``tls_ca_file`` of a test account) is trusted for both servers, as with a
real provider.  ``mail_servers`` gives a mailbox that exists on both servers
with one login and password, and the account params that reach it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.smtp import PortKind, SmtpServer

SMTP_LOGIN = "alice@example.org"
SMTP_PASSWORD = "alice-smtp-pw"


@pytest.fixture
async def smtp_server(dovecot: Dovecot) -> AsyncIterator[SmtpServer]:
    """A started SMTP server: one user (alice), AUTH required, the Dovecot's CA."""
    async with SmtpServer.start(dovecot.tls, users={SMTP_LOGIN: SMTP_PASSWORD}, auth_required=True) as server:
        yield server
    assert server.errors == [], "the test SMTP server failed while handling a command"


@dataclass
class MailServers:
    dovecot: Dovecot
    smtp: SmtpServer
    user: ImapUser

    @property
    def ca_file(self) -> str:
        return str(self.dovecot.tls.ca_file)

    def imap(self, kind: str = "imaps", security: str = "ssl") -> dict[str, Any]:
        host = {"imap_notls": "127.0.0.2", "imaps_alt": "127.0.0.3"}.get(kind, "127.0.0.1")
        return {"host": host, "port": self.dovecot.ports[kind], "security": security}

    def smtp_params(self, kind: PortKind = "starttls", security: str = "starttls", auth: bool = True) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.smtp.ports[kind], "security": security, "auth": auth}

    def account_params(self, name: str | None = "Work", **overrides: Any) -> dict[str, Any]:
        """account.add params that reach both servers (TLS trusted through tls_ca_file).

        ``imap``/``smtp`` overrides are merged into the working settings; ``name=None``
        leaves the name out (account.test of unsaved settings needs none).
        """
        params: dict[str, Any] = {
            "email": self.user.login,
            "password": self.user.password,
            "imap": self.imap(),
            "smtp": self.smtp_params(),
            "tls_ca_file": self.ca_file,
        }
        if name is not None:
            params["name"] = name
        for key, value in overrides.items():
            params[key] = {**params[key], **value} if key in ("imap", "smtp") else value
        return params


@pytest.fixture
async def mail_servers(dovecot: Dovecot, smtp_server: SmtpServer) -> MailServers:
    user = dovecot.add_user()
    smtp_server.users[user.login] = user.password
    return MailServers(dovecot, smtp_server, user)
