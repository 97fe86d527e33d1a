"""The OAuth2 protocol rules, on plain values (no network): PKCE, URLs, token answers, SASL."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from bimmaild.oauth import flow, sasl
from bimmaild.oauth.flow import OAuthError
from bimmaild.oauth.issuers import endpoint
from bimmaild.protocol.errors import InvalidParams


def test_pkce_is_s256_of_a_fresh_verifier() -> None:
    """RFC 7636: 43-128 characters of the unreserved set; challenge = BASE64URL(SHA256(verifier)), no padding."""
    first, second = flow.pkce(), flow.pkce()
    assert first.verifier != second.verifier and 43 <= len(first.verifier) <= 128
    digest = hashlib.sha256(first.verifier.encode()).digest()
    assert first.challenge == base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_authorization_url_carries_pkce_state_scopes_and_hint() -> None:
    url = flow.authorization_url(
        "https://id.example/auth?tenant=x", "cid", "http://127.0.0.1:5000/", ("a", "b c"), "st", "ch", "me@x.org"
    )
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.netloc == "id.example" and query["tenant"] == ["x"]  # an existing query is kept
    assert query["response_type"] == ["code"] and query["client_id"] == ["cid"]
    assert query["redirect_uri"] == ["http://127.0.0.1:5000/"] and query["scope"] == ["a b c"]
    assert query["state"] == ["st"] and query["code_challenge"] == ["ch"] and query["code_challenge_method"] == ["S256"]
    assert query["login_hint"] == ["me@x.org"] and query["access_type"] == ["offline"]


def test_redirect_code_checks_the_state_first() -> None:
    assert flow.redirect_code({"code": ["c1"], "state": ["s"]}, "s") == "c1"
    with pytest.raises(OAuthError) as err:
        flow.redirect_code({"code": ["c1"], "state": ["other"]}, "s")
    assert err.value.error == "invalid_state"
    with pytest.raises(OAuthError) as err:
        flow.redirect_code({"error": ["access_denied"], "error_description": ["no"], "state": ["s"]}, "s")
    assert err.value.error == "access_denied" and err.value.reauth
    with pytest.raises(OAuthError):
        flow.redirect_code({"state": ["s"]}, "s")


def test_token_answers() -> None:
    tokens = flow.parse_tokens(200, {"access_token": "AT-123", "token_type": "bearer", "expires_in": "3599",
                                     "refresh_token": "RT-456", "scope": "s"}, now=1000.0)  # fmt: skip
    assert tokens.access_token.reveal() == "AT-123" and tokens.refresh_token is not None
    assert tokens.refresh_token.reveal() == "RT-456" and tokens.expires_at == 4599.0
    assert tokens.fresh(4599.0 - 301) and not tokens.fresh(4599.0 - 299)  # renewed 5 minutes before expiry
    assert "AT-123" not in repr(tokens) and "RT-456" not in repr(tokens)  # Secret hides them
    no_lifetime = flow.parse_tokens(200, {"access_token": "at", "token_type": "Bearer"}, now=0.0)
    assert no_lifetime.expires_at == flow.DEFAULT_LIFETIME and no_lifetime.refresh_token is None
    for status, body, error in (
        (400, {"error": "invalid_grant", "error_description": "revoked"}, "invalid_grant"),
        (401, {"error": "invalid_client"}, "invalid_client"),
        (502, None, "invalid_response"),
        (200, {"token_type": "Bearer"}, "invalid_response"),
        (200, {"access_token": "x", "token_type": "mac"}, "invalid_response"),
        (500, {}, "http_500"),
    ):
        with pytest.raises(OAuthError) as err:
            flow.parse_tokens(status, body, now=0.0)
        assert err.value.error == error
    assert OAuthError("invalid_grant").reauth and not OAuthError("temporarily_unavailable").reauth


def test_device_answer() -> None:
    device = flow.parse_device(
        200, {"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": "https://x/device",
              "expires_in": 900, "interval": 0}, now=10.0,
    )  # fmt: skip
    assert device.user_code == "ABCD-EFGH" and device.expires_at == 910.0 and device.interval == 1.0
    google_spelling = flow.parse_device(200, {"device_code": "d", "user_code": "u", "verification_url": "https://g"}, 0)
    assert google_spelling.verification_uri == "https://g"
    with pytest.raises(OAuthError) as err:
        flow.parse_device(400, {"error": "invalid_scope"}, 0)
    assert err.value.error == "invalid_scope"


def test_sasl_initial_responses_match_the_specifications() -> None:
    """Google's XOAUTH2 page and RFC 7628 §4.1 give these exact strings."""
    assert sasl.xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg") == (
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
        "YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )
    raw = base64.b64decode(sasl.oauthbearer("user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
                                            "server.example.com", 143))  # fmt: skip
    assert raw == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    assert base64.b64decode(sasl.oauthbearer("a,b=c", "t", "h", 1)).startswith(b"n,a=a=2Cb=3Dc,")


def test_endpoints_are_https_or_loopback() -> None:
    assert endpoint("https://login.example/token", "token_url") == "https://login.example/token"
    assert endpoint("http://127.0.0.1:8080/token", "token_url").startswith("http://127.0.0.1")
    for bad in ("http://login.example/token", "ftp://x/", "token", "https:///nohost"):
        with pytest.raises(InvalidParams) as err:
            endpoint(bad, "token_url")
        assert err.value.field == "token_url"
