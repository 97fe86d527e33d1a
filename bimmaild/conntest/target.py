"""What a connection test checks: one server, with the settings that reach it.

``login_field``/``password_field`` are the protocol paths a failed login must
name: ``login``/``password`` for a shared pair, ``imap.login``/``imap.password``
(or smtp.…) with separate authentication (R-A2).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bimmaild.accounts.secrets import Secret


@dataclass(frozen=True)
class Target:
    kind: str  # "imap" | "smtp"
    host: str
    port: int
    security: str  # "ssl" | "starttls" | "none"
    user: str
    password: Secret | None
    email: str
    auth: bool = True  # SMTP only: authentication required
    ca_file: str | None = None
    login_field: str = "login"
    password_field: str = "password"  # noqa: S105 (a field name)
    preset_hints: tuple[str, ...] = ()
    oauth: bool = False  # ``password`` is an OAuth2 access token (SASL XOAUTH2 / OAUTHBEARER)

    def field(self, name: str) -> str:
        """Protocol path of one of this server's settings: ``imap.port``."""
        return f"{self.kind}.{name}"

    def variant(self, port: int, security: str, auth: bool | None = None) -> Target:
        return replace(self, port=port, security=security, auth=self.auth if auth is None else auth)

    @property
    def label(self) -> str:
        return self.kind.upper()
