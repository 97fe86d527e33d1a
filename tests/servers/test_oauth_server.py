"""The OAuth2 test infrastructure behaves like the real thing, seen from real clients.

bimmaild's OAuth2 tests will judge its sign-in, its token refreshes and its XOAUTH2/OAUTHBEARER
logins by what the test provider, the test Dovecot and the test SMTP server say: these tests
earn that trust.  The provider is spoken to with plain HTTP (``http.client``), Dovecot with raw
IMAP lines over TLS (the exact bytes a client must handle), the SMTP server with aiosmtplib.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import ssl
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiosmtplib
import pytest

from tests.servers.dovecot import Dovecot
from tests.servers.fixtures import OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OAuthServers
from tests.servers.oauth import DEVICE_GRANT, browse, pkce_pair
from tests.servers.smtp import OAUTH_REFUSED_REPLY, AuthAttempt, SmtpServer

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never reached: these tests read the Location header
XOAUTH2_FAILURE = b"+ " + base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"mail"}') + b"\r\n"
OAUTHBEARER_FAILURE = b"+ " + base64.b64encode(b'{"status":"invalid_token"}') + b"\r\n"
IMAP_AUTH_FAILED = b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


# -- HTTP, as an OAuth2 client speaks it ----------------------------------------------------


def _request(
    method: str, url: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange, no redirect followed, no proxy: (status, headers, body)."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        body = urlencode(form).encode() if form is not None else None
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=sent)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


async def post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    status, _, body = await asyncio.to_thread(_request, "POST", url, form, headers)
    decoded = json.loads(body)
    assert isinstance(decoded, dict)
    return status, decoded


async def token(servers: OAuthServers, **form: str) -> tuple[int, dict[str, Any]]:
    """POST /token as the registered confidential client (secret in the form)."""
    return await post(
        servers.oauth.token_url, {"client_id": OAUTH_CLIENT_ID, "client_secret": OAUTH_CLIENT_SECRET, **form}
    )


async def authorize(servers: OAuthServers, **overrides: str) -> dict[str, str]:
    """GET /authorize like a browser would, without following: the redirect's query parameters."""
    params = {
        "response_type": "code",
        "client_id": OAUTH_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "mail offline_access",
        "state": "st-123",
        "code_challenge": "unused",
        "code_challenge_method": "S256",
        **overrides,
    }
    status, headers, _ = await asyncio.to_thread(_request, "GET", f"{servers.oauth.authorize_url}?{urlencode(params)}")
    assert status == 302
    location = urlsplit(headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == params["redirect_uri"]
    return {name: values[0] for name, values in parse_qs(location.query).items()}


async def sign_in(servers: OAuthServers) -> dict[str, Any]:
    """The whole authorization-code flow with PKCE: the token answer."""
    verifier, challenge = pkce_pair()
    code = (await authorize(servers, code_challenge=challenge))["code"]
    status, answer = await token(
        servers, grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier
    )
    assert status == 200, answer
    return answer


# -- raw IMAP, to see Dovecot's exact bytes ----------------------------------------------------


async def imap(dovecot: Dovecot, *lines: bytes) -> list[bytes]:
    """Send ``lines`` one by one over implicit TLS; after each, read up to a continuation or a
    tagged answer.  Returns every server line after the greeting; stops at the first tagged NO/BAD."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", dovecot.ports["imaps"], ssl=dovecot.client_context(), server_hostname="127.0.0.1"
    )
    received: list[bytes] = []
    try:
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"* OK")
        for line in lines:
            writer.write(line)
            while True:
                answer = await asyncio.wait_for(reader.readline(), 10)
                received.append(answer)
                if not answer or not answer.startswith(b"* "):
                    break
            if not answer or answer.split(b" ")[1:2] in ([b"NO"], [b"BAD"]):
                break
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    return received


def xoauth2(user: str, access_token: str) -> bytes:
    return base64.b64encode(f"user={user}\x01auth=Bearer {access_token}\x01\x01".encode())


def oauthbearer(user: str, access_token: str) -> bytes:
    return base64.b64encode(f"n,a={user},\x01host=127.0.0.1\x01port=993\x01auth=Bearer {access_token}\x01\x01".encode())


# -- the provider -----------------------------------------------------------------------------


async def test_authorization_code_with_pkce_and_single_use_code(oauth_servers: OAuthServers) -> None:
    verifier, challenge = pkce_pair()
    redirect = await authorize(oauth_servers, code_challenge=challenge, login_hint=oauth_servers.user.login)
    assert redirect["state"] == "st-123" and redirect["code"]
    assert oauth_servers.oauth.authorizations[-1]["code_challenge"] == challenge
    assert oauth_servers.oauth.authorizations[-1]["redirect_uri"] == REDIRECT_URI

    form = {"grant_type": "authorization_code", "code": redirect["code"], "redirect_uri": REDIRECT_URI}
    status, answer = await token(oauth_servers, **form, code_verifier=verifier)
    assert status == 200
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    assert answer["scope"] == "mail offline_access" and answer["refresh_token"]
    assert oauth_servers.oauth.check(answer["access_token"]) == oauth_servers.user.login

    status, again = await token(oauth_servers, **form, code_verifier=verifier)
    assert (status, again["error"]) == (400, "invalid_grant")


async def test_wrong_verifier_or_redirect_uri_is_invalid_grant(oauth_servers: OAuthServers) -> None:
    verifier, challenge = pkce_pair()
    code = (await authorize(oauth_servers, code_challenge=challenge))["code"]
    status, answer = await token(
        oauth_servers, grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI, code_verifier="x" * 43
    )
    assert (status, answer["error"]) == (400, "invalid_grant")

    code = (await authorize(oauth_servers, code_challenge=challenge))["code"]
    status, answer = await token(
        oauth_servers,
        grant_type="authorization_code",
        code=code,
        redirect_uri="http://127.0.0.1:10/other",
        code_verifier=verifier,
    )
    assert (status, answer["error"]) == (400, "invalid_grant")
    assert [r.error for r in oauth_servers.oauth.token_requests] == ["invalid_grant", "invalid_grant"]


async def test_authorization_errors_redirect_or_stop(oauth_servers: OAuthServers) -> None:
    oauth_servers.oauth.deny_next()
    assert await authorize(oauth_servers) == {"error": "access_denied", "state": "st-123"}
    refused = await authorize(oauth_servers, code_challenge_method="plain")
    assert refused["error"] == "invalid_request" and "code" not in refused
    # An unknown client is never redirected to (RFC 6749 §4.1.2.1): an error page instead.
    url = f"{oauth_servers.oauth.authorize_url}?{urlencode({'client_id': 'nobody', 'redirect_uri': REDIRECT_URI})}"
    status, headers, _ = await asyncio.to_thread(_request, "GET", url)
    assert status == 400 and "Location" not in headers


async def test_client_authentication(oauth_servers: OAuthServers) -> None:
    answer = await sign_in(oauth_servers)
    form = {"grant_type": "refresh_token", "refresh_token": answer["refresh_token"]}
    status, refused = await post(oauth_servers.oauth.token_url, {**form, "client_id": OAUTH_CLIENT_ID})
    assert (status, refused["error"]) == (401, "invalid_client")
    status, _ = await post(
        oauth_servers.oauth.token_url, {**form, "client_id": OAUTH_CLIENT_ID, "client_secret": "wrong"}
    )
    assert status == 401
    basic = base64.b64encode(f"{OAUTH_CLIENT_ID}:{OAUTH_CLIENT_SECRET}".encode()).decode()
    status, renewed = await post(oauth_servers.oauth.token_url, form, {"Authorization": f"Basic {basic}"})
    assert status == 200 and renewed["access_token"]


async def test_refresh_rotation_expiry_and_revocation(oauth_servers: OAuthServers) -> None:
    oauth = oauth_servers.oauth
    oauth.access_ttl = 2
    first = await sign_in(oauth_servers)
    assert first["expires_in"] == 2

    status, renewed = await token(oauth_servers, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert status == 200 and "refresh_token" not in renewed  # no rotation: the old one stays
    assert oauth.refreshes == 1

    oauth.expire_access_tokens()
    assert oauth.check(first["access_token"]) is None and oauth.check(renewed["access_token"]) is None

    oauth.rotate_refresh = True
    status, rotated = await token(oauth_servers, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert status == 200 and rotated["refresh_token"] != first["refresh_token"]
    assert oauth.check(rotated["access_token"]) == oauth_servers.user.login
    status, stale = await token(oauth_servers, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert (status, stale["error"]) == (400, "invalid_grant")

    oauth.revoke(oauth_servers.user.login)
    assert oauth.check(rotated["access_token"]) is None
    status, revoked = await token(oauth_servers, grant_type="refresh_token", refresh_token=rotated["refresh_token"])
    assert (status, revoked["error"]) == (400, "invalid_grant")
    assert oauth.refreshes == 2 and len(oauth.grants("refresh_token", ok=False)) == 2

    oauth.fail_next_token()
    status, failed = await token(oauth_servers, grant_type="refresh_token", refresh_token="anything")
    assert (status, failed["error"]) == (503, "temporarily_unavailable")


async def test_access_tokens_expire_with_access_ttl(oauth_servers: OAuthServers) -> None:
    oauth_servers.oauth.access_ttl = 1
    answer = await sign_in(oauth_servers)
    assert oauth_servers.oauth.check(answer["access_token"]) == oauth_servers.user.login
    await asyncio.sleep(1.1)
    assert oauth_servers.oauth.check(answer["access_token"]) is None


async def test_device_flow(oauth_servers: OAuthServers) -> None:
    oauth = oauth_servers.oauth
    client = {"client_id": OAUTH_CLIENT_ID, "client_secret": OAUTH_CLIENT_SECRET}
    status, device = await post(oauth.device_url, {**client, "scope": "mail"})
    assert status == 200
    assert device["verification_uri"] == oauth.verification_url and device["interval"] == 1
    assert oauth.device_authorizations[-1].user_code == device["user_code"]

    poll = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"]}
    assert await token(oauth_servers, **poll) == (400, {"error": "authorization_pending"})
    oauth.enforce_interval = True
    assert await token(oauth_servers, **poll) == (400, {"error": "slow_down"})
    oauth.approve_device(device["user_code"])
    status, answer = await token(oauth_servers, **poll)
    assert status == 200 and oauth.check(answer["access_token"]) == oauth_servers.user.login
    status, used = await token(oauth_servers, **poll)
    assert used["error"] == "invalid_grant"

    for end, error in ((oauth.deny_device, "access_denied"), (oauth.expire_device, "expired_token")):
        _, other = await post(oauth.device_url, {**client, "scope": "mail"})
        end(other["user_code"])
        assert await token(oauth_servers, grant_type=DEVICE_GRANT, device_code=other["device_code"]) == (
            400,
            {"error": error},
        )


async def test_browse_follows_the_redirect_to_the_loopback_listener(oauth_servers: OAuthServers) -> None:
    """``browse`` ends on the client's own listener, as a browser would."""
    seen: list[bytes] = []

    async def listener(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nsigned in")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(listener, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        _, challenge = pkce_pair()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": OAUTH_CLIENT_ID,
                "redirect_uri": f"http://127.0.0.1:{port}/",
                "state": "s1",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        assert await browse(f"{oauth_servers.oauth.authorize_url}?{query}") == (200, "signed in")
    finally:
        server.close()
        await server.wait_closed()
    assert seen[0].startswith(b"GET /?code=") and b"&state=s1 " in seen[0]


# -- Dovecot judging tokens through the provider -------------------------------------------------


async def test_dovecot_accepts_xoauth2_and_oauthbearer(oauth_servers: OAuthServers) -> None:
    user, dovecot = oauth_servers.user, oauth_servers.dovecot
    access = (await sign_in(oauth_servers))["access_token"]
    user.deliver(MESSAGE)

    received = await imap(
        dovecot, b"a AUTHENTICATE XOAUTH2 " + xoauth2(user.login, access) + b"\r\n", b"b STATUS INBOX (MESSAGES)\r\n"
    )
    assert (
        len(received) == 3 and received[0].startswith(b"a OK [CAPABILITY ") and received[0].endswith(b"Logged in\r\n")
    )
    assert received[1:2] == [b"* STATUS INBOX (MESSAGES 1)\r\n"] and received[2].startswith(b"b OK")  # user's mailbox

    # Without SASL-IR: an empty continuation first, then the initial response.
    received = await imap(dovecot, b"a AUTHENTICATE OAUTHBEARER\r\n", oauthbearer(user.login, access) + b"\r\n")
    assert received[0] == b"+ \r\n" and received[-1].startswith(b"a OK")
    assert oauth_servers.oauth.introspections == 2
    with user.imap() as client:  # the password still works (PLAIN/LOGIN, passwd-file)
        assert client.noop()[0] == "OK"


async def test_dovecot_refuses_expired_revoked_and_foreign_tokens(oauth_servers: OAuthServers) -> None:
    user, dovecot, oauth = oauth_servers.user, oauth_servers.dovecot, oauth_servers.oauth
    access = (await sign_in(oauth_servers))["access_token"]
    oauth.expire_access_tokens()
    # XOAUTH2: the error comes as a continuation; the client's empty line gets the tagged NO.
    received = await imap(dovecot, b"a AUTHENTICATE XOAUTH2 " + xoauth2(user.login, access) + b"\r\n", b"\r\n")
    assert received == [XOAUTH2_FAILURE, IMAP_AUTH_FAILED]

    fresh = (await sign_in(oauth_servers))["access_token"]
    oauth.revoke(user.login)
    received = await imap(
        dovecot, b"a AUTHENTICATE OAUTHBEARER " + oauthbearer(user.login, fresh) + b"\r\n", b"AQ==\r\n"
    )
    assert received == [OAUTHBEARER_FAILURE, IMAP_AUTH_FAILED]

    # Another user's valid token, and a token sent as a PLAIN password: refused too.
    other = dovecot.add_user()
    oauth.add_user(other.login)
    theirs = oauth.issue_tokens(other.login)["access_token"]
    received = await imap(dovecot, b"a AUTHENTICATE XOAUTH2 " + xoauth2(user.login, theirs) + b"\r\n", b"\r\n")
    assert received == [XOAUTH2_FAILURE, IMAP_AUTH_FAILED]
    plain = base64.b64encode(f"\0{other.login}\0{theirs}".encode())
    assert await imap(dovecot, b"a AUTHENTICATE PLAIN " + plain + b"\r\n") == [IMAP_AUTH_FAILED]


async def test_dovecot_cancel_and_unreachable_provider(oauth_servers: OAuthServers) -> None:
    user, dovecot, oauth = oauth_servers.user, oauth_servers.dovecot, oauth_servers.oauth
    received = await imap(dovecot, b"a AUTHENTICATE XOAUTH2 " + xoauth2(user.login, "bad") + b"\r\n", b"*\r\n")
    assert received == [XOAUTH2_FAILURE, b"a BAD Authentication aborted by client.\r\n"]

    access = oauth.issue_tokens(user.login)["access_token"]
    oauth.stop()
    try:
        received = await imap(dovecot, b"a AUTHENTICATE XOAUTH2 " + xoauth2(user.login, access) + b"\r\n")
    finally:
        oauth.start()  # same port: the session's Dovecot keeps its introspection URL
    assert len(received) == 1 and received[0].startswith(b"a NO [UNAVAILABLE] Temporary authentication failure.")
    received = await imap(dovecot, b"a AUTHENTICATE XOAUTH2 " + xoauth2(user.login, access) + b"\r\n")
    assert received[-1].startswith(b"a OK")


# -- the SMTP server ------------------------------------------------------------------------------


def smtp_client(smtp: SmtpServer) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=smtp.host,
        port=smtp.ports["ssl"],
        use_tls=True,
        tls_context=smtp.tls.client_context(),
        local_hostname="client.test",
        timeout=5,
    )


async def test_smtp_xoauth2_with_a_valid_token(oauth_servers: OAuthServers) -> None:
    user, smtp = oauth_servers.user, oauth_servers.smtp
    access = (await sign_in(oauth_servers))["access_token"]
    async with smtp_client(smtp) as client:
        await client.ehlo()
        assert {"xoauth2", "oauthbearer", "plain", "login"} <= set(client.server_auth_methods)
        reply = await client.auth_xoauth2(user.login, access)
        assert reply.code == 235
        await client.sendmail(user.login, ["bob@example.org"], MESSAGE)
    assert smtp.auth_attempts == [AuthAttempt(user.login, "XOAUTH2", True, "ssl")]
    assert smtp.deliveries[0].auth_login == user.login


async def test_smtp_refuses_a_bad_token_after_the_challenge(oauth_servers: OAuthServers) -> None:
    user, smtp, oauth = oauth_servers.user, oauth_servers.smtp, oauth_servers.oauth
    access = (await sign_in(oauth_servers))["access_token"]
    oauth.expire_access_tokens()
    challenge = base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}').decode()
    async with smtp_client(smtp) as client:
        await client.ehlo()
        reply = await client.execute_command(b"AUTH", b"XOAUTH2", xoauth2(user.login, access))
        assert (reply.code, reply.message) == (334, challenge)
        reply = await client.execute_command(b"")
        assert f"{reply.code} {reply.message}" == OAUTH_REFUSED_REPLY
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
            await client.auth_xoauth2(user.login, "at-unknown")
        assert failed.value.code == 535
        # OAUTHBEARER, without an initial response: "334 " first; the error answered with ^A.
        assert (await client.execute_command(b"AUTH", b"OAUTHBEARER")).code == 334
        reply = await client.execute_command(oauthbearer(user.login, access))
        assert reply.code == 334 and json.loads(base64.b64decode(reply.message))["status"] == "invalid_token"
        assert (await client.execute_command(b"AQ==")).code == 535
        fresh = oauth.issue_tokens(user.login)["access_token"]
        assert (await client.execute_command(b"AUTH", b"OAUTHBEARER", oauthbearer(user.login, fresh))).code == 235
    assert [(a.mechanism, a.success) for a in smtp.auth_attempts] == [
        ("XOAUTH2", False),
        ("XOAUTH2", False),
        ("OAUTHBEARER", False),
        ("OAUTHBEARER", True),
    ]


async def test_smtp_without_oauth_offers_no_bearer_mechanism(oauth_servers: OAuthServers) -> None:
    async with SmtpServer.start(oauth_servers.dovecot.tls) as plain_only, smtp_client(plain_only) as client:
        await client.ehlo()
        assert set(client.server_auth_methods) == {"plain", "login"}
        reply = await client.execute_command(b"AUTH", b"XOAUTH2", xoauth2("a@example.org", "t"))
        assert reply.code == 504


def test_pkce_pair_is_s256() -> None:
    verifier, challenge = pkce_pair()
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode() and 43 <= len(verifier) <= 128
