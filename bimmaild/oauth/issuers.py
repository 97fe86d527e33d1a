"""OAuth2 issuers: where to sign in and which scopes mail needs.

The endpoints of the providers we preset are public facts (research notes, §5); the client id
is not ours to ship — each user or administrator registers an application with the provider
and gives its id (``bimmailctl oauth client set``).  Any other issuer (a company's own identity
provider, a test server) is described in full by its client registration.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from bimmaild.protocol.errors import InvalidParams


@dataclass(frozen=True)
class Issuer:
    id: str
    name: str
    auth_url: str  # authorization endpoint (the browser sign-in)
    token_url: str
    device_url: str | None  # device authorization endpoint (RFC 8628), when the provider has one for mail
    scopes: tuple[str, ...]

    def to_public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "auth_url": self.auth_url,
            "token_url": self.token_url,
            "device_url": self.device_url,
            "scopes": list(self.scopes),
        }


_MS = "https://login.microsoftonline.com/common/oauth2/v2.0"
PRESETS: dict[str, Issuer] = {
    issuer.id: issuer
    for issuer in (
        # Google's device flow allows only a short list of scopes, without https://mail.google.com/.
        Issuer(
            "google",
            "Google (Gmail, Google Workspace)",
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
            None,
            ("https://mail.google.com/",),
        ),
        Issuer(
            "microsoft",
            "Microsoft (Outlook.com, Microsoft 365)",
            f"{_MS}/authorize",
            f"{_MS}/token",
            f"{_MS}/devicecode",
            (
                "https://outlook.office.com/IMAP.AccessAsUser.All",
                "https://outlook.office.com/SMTP.Send",
                "offline_access",
            ),
        ),
    )
}

# Provider presets (providers.toml ids) whose OAuth2 sign-in goes through a preset issuer.
ISSUER_OF_PROVIDER = {"gmail": "google", "outlook": "microsoft", "microsoft365": "microsoft"}


def endpoint(value: str, field: str) -> str:
    """An endpoint URL: https, or http to a loopback address (a local identity provider)."""
    parts = urlsplit(value.strip())
    if parts.scheme == "https" and parts.hostname:
        return value.strip()
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return value.strip()
    raise InvalidParams(f"{field} must be an https:// URL (http:// only to this machine)", field=field)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
