"""Fixtures that start the test mail servers; the root conftest imports them.

The SMTP server uses the session Dovecot's TLS material, so one CA file
(``tls_ca_file`` of a test account) is trusted for both servers, as with a
real provider.  ``mail_servers`` gives a mailbox that exists on both servers
with one login and password, and the account params that reach it.

OAuth2: ``oauth_servers`` gives an OAuth2 provider (``tests.servers.oauth``), a
Dovecot whose XOAUTH2/OAUTHBEARER logins are checked against that provider's
introspection endpoint, and an SMTP server checking the same tokens.  The
provider and that Dovecot live for the session (Dovecot's config names the
provider's port); the provider is ``reset()`` for each test, so registrations,
tokens, records and settings never leak from one test to the next.  A module
using these fixtures must see ``oauth_server``, ``oauth_dovecot`` and
``oauth_servers`` (the root conftest imports them, like the others).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.oauth import OAuthServer
from tests.servers.smtp import PortKind, SmtpServer

SMTP_LOGIN = "alice@example.org"
SMTP_PASSWORD = "alice-smtp-pw"
OAUTH_CLIENT_ID = "bimmail-test"
OAUTH_CLIENT_SECRET = "bimmail-test-secret"
OAUTH_SCOPES = ("mail", "offline_access")


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


# -- OAuth2 ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[OAuthServer]:
    """The session's OAuth2 provider; use ``oauth_servers``, which resets it for each test."""
    with OAuthServer.running() as server:
        yield server
    assert server.errors == [], "the test OAuth2 server failed while handling a request"


@pytest.fixture(scope="session")
def oauth_dovecot(oauth_server: OAuthServer) -> Iterator[Dovecot]:
    """A Dovecot offering XOAUTH2/OAUTHBEARER (checked by ``oauth_server``) besides PLAIN/LOGIN."""
    with Dovecot.running(oauth2_introspection_url=oauth_server.introspect_url) as server:
        yield server


@dataclass
class OAuthServers(MailServers):
    """One mailbox reachable with OAuth2: its provider, its IMAP and SMTP servers.  ``user`` is the
    login the provider signs in by default; its password works for PLAIN too."""

    oauth: OAuthServer
    client_id: str = OAUTH_CLIENT_ID
    client_secret: str = OAUTH_CLIENT_SECRET
    scopes: tuple[str, ...] = OAUTH_SCOPES

    def provider_params(self) -> dict[str, Any]:
        """The endpoints and scopes of a custom OAuth2 issuer, as the daemon's config takes them."""
        return {
            "auth_url": self.oauth.authorize_url,
            "token_url": self.oauth.token_url,
            "device_url": self.oauth.device_url,
            "scopes": list(self.scopes),
        }

    def account_params(self, name: str | None = "Work", **overrides: Any) -> dict[str, Any]:
        """Like ``MailServers.account_params``, without a password: the sign-in brings the token."""
        params = super().account_params(name, **overrides)
        params.pop("password")
        return params


@pytest.fixture
async def oauth_servers(oauth_server: OAuthServer, oauth_dovecot: Dovecot) -> AsyncIterator[OAuthServers]:
    """A fresh provider state (client ``bimmail-test`` with its secret, one user), the OAuth2
    Dovecot and an SMTP server taking XOAUTH2/OAUTHBEARER (PLAIN/LOGIN too, with the password)."""
    oauth_server.reset()
    oauth_server.add_client(OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET)
    user = oauth_dovecot.add_user()
    oauth_server.add_user(user.login)
    async with SmtpServer.start(
        oauth_dovecot.tls, users={user.login: user.password}, auth_required=True, oauth=oauth_server
    ) as smtp:
        yield OAuthServers(oauth_dovecot, smtp, user, oauth_server)
    assert smtp.errors == [], "the test SMTP server failed while handling a command"
    assert oauth_server.errors == [], "the test OAuth2 server failed while handling a request"
