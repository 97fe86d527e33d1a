"""The OAuth2 protocol, without I/O: PKCE, the authorization URL, token answers, SASL strings.

RFC 6749 (authorization code, refresh), RFC 7636 (PKCE, S256 only), RFC 8252 (native apps:
loopback redirect), RFC 8628 (device authorization), RFC 7628 (OAUTHBEARER) and Google's
XOAUTH2.  Kept apart from the HTTP calls so every rule here is tested on plain values.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from bimmaild.accounts.secrets import Secret

# An access token is renewed when it has less than this left: a connection must not start
# with a token that expires during its login or its first commands.
REFRESH_MARGIN = 300.0
# When a provider gives no lifetime, assume the common one (1 hour) rather than "forever".
DEFAULT_LIFETIME = 3600.0

# Token endpoint errors that mean the grant itself is gone: signing in again is the only way.
REAUTH_ERRORS = frozenset({"invalid_grant", "unauthorized_client", "access_denied", "consent_required"})


class OAuthError(Exception):
    """An error answer of an OAuth2 endpoint (``error`` is the RFC 6749 code)."""

    def __init__(self, error: str, description: str | None = None) -> None:
        self.error = error
        self.description = description
        super().__init__(f"{error}: {description}" if description else error)

    @property
    def reauth(self) -> bool:
        return self.error in REAUTH_ERRORS


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


def pkce() -> Pkce:
    """A fresh verifier (43 characters of 32 random bytes) and its S256 challenge."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return Pkce(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


def authorization_url(
    auth_url: str, client_id: str, redirect_uri: str, scopes: tuple[str, ...], state: str, challenge: str,
    login_hint: str | None = None,
) -> str:  # fmt: skip
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        # Google returns a refresh token only for offline access, and only on consent.
        "access_type": "offline",
        "prompt": "consent",
    }
    if login_hint:
        params["login_hint"] = login_hint
    separator = "&" if "?" in auth_url else "?"
    return auth_url + separator + urlencode(params)


def redirect_code(query: Mapping[str, list[str]], state: str) -> str:
    """The authorization code of the redirect to our loopback listener; OAuthError otherwise."""

    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    if one("state") != state:
        raise OAuthError("invalid_state", "the answer does not belong to this sign-in")
    error = one("error")
    if error:
        raise OAuthError(error, one("error_description"))
    code = one("code")
    if not code:
        raise OAuthError("invalid_request", "the provider's answer has no authorization code")
    return code


@dataclass(frozen=True)
class Tokens:
    access_token: Secret
    expires_at: float  # wall-clock time (time.time()): it keeps counting through a suspend
    refresh_token: Secret | None  # None when the answer did not rotate it
    scope: str | None

    def fresh(self, now: float, margin: float = REFRESH_MARGIN) -> bool:
        return self.expires_at - now > margin


def parse_tokens(status: int, body: Any, now: float) -> Tokens:
    """A token endpoint's answer (RFC 6749 §5): tokens, or OAuthError."""
    if not isinstance(body, dict):
        raise OAuthError("invalid_response", f"the token endpoint answered HTTP {status} without a JSON object")
    if status != 200 or "error" in body:
        error = body.get("error")
        description = body.get("error_description")
        raise OAuthError(
            error if isinstance(error, str) and error else f"http_{status}",
            description if isinstance(description, str) else None,
        )
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthError("invalid_response", "the token endpoint's answer has no access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise OAuthError("invalid_response", f"token type {token_type!r} is not Bearer")
    lifetime = body.get("expires_in", DEFAULT_LIFETIME)
    try:
        seconds = float(lifetime)  # some providers send a string
    except (TypeError, ValueError):
        seconds = DEFAULT_LIFETIME
    refresh = body.get("refresh_token")
    scope = body.get("scope")
    return Tokens(
        Secret(access),
        now + max(seconds, 0.0),
        Secret(refresh) if isinstance(refresh, str) and refresh else None,
        scope if isinstance(scope, str) else None,
    )


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: Secret
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    interval: float


def parse_device(status: int, body: Any, now: float) -> DeviceAuthorization:
    """A device authorization answer (RFC 8628 §3.2; Microsoft spells it the same)."""
    if not isinstance(body, dict) or status != 200 or "error" in body:
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        raise OAuthError(
            error if isinstance(error, str) else f"http_{status}", description if isinstance(description, str) else None
        )
    device_code, user_code = body.get("device_code"), body.get("user_code")
    uri = body.get("verification_uri") or body.get("verification_url")  # Google's older spelling
    if not (isinstance(device_code, str) and isinstance(user_code, str) and isinstance(uri, str)):
        raise OAuthError("invalid_response", "the device authorization answer is incomplete")
    complete = body.get("verification_uri_complete")
    try:
        expires_in = float(body.get("expires_in", 900))
        interval = float(body.get("interval", 5))
    except (TypeError, ValueError):
        expires_in, interval = 900.0, 5.0
    return DeviceAuthorization(
        Secret(device_code), user_code, uri, complete if isinstance(complete, str) else None,
        now + expires_in, max(interval, 1.0),
    )  # fmt: skip
