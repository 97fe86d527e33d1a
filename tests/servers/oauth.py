"""A real OAuth2 authorization server for the tests, on 127.0.0.1 over plain HTTP.

bimmaild signs accounts in with OAuth2 and then logs in to IMAP and SMTP with the access
token.  Proving that needs a provider that speaks the real protocol over real sockets and
yet stays offline, fast and steerable; this module is that provider:

- ``GET /authorize`` (RFC 6749 §4.1 + RFC 7636 PKCE, S256 only): plays a user who consents at
  once and answers ``302`` to the client's loopback ``redirect_uri`` (RFC 8252) with a code;
- ``POST /token``: ``authorization_code`` (PKCE and ``redirect_uri`` checked, single-use
  codes), ``refresh_token`` (optional rotation) and the device-code grant (RFC 8628); client
  authentication by ``client_secret`` in the form or HTTP Basic (RFC 6749 §2.3.1);
- ``POST /device``: device authorization (RFC 8628 §3.1); the test plays the user with
  ``approve_device`` / ``deny_device``;
- ``/introspect`` (RFC 7662 style): what Dovecot's ``oauth2`` passdb asks (``introspection_mode
  = post``: a form ``token=…&client_id=…&client_secret=…``; ``get`` and ``auth`` modes are
  answered too), so IMAP logins are judged by the real Dovecot against this server's tokens.

Why a thread (``ThreadingHTTPServer``) and not the test's event loop, unlike the SMTP server:
Dovecot's auth process calls the introspection endpoint while the test awaits an IMAP answer,
the daemon under test may call the token endpoint from anywhere, and synchronous test code
(stdlib ``imaplib``) must get answers too.  So every piece of state is guarded by one lock,
and tests read it through the same attributes the handlers write.

Responses close the connection (HTTP/1.0): no keep-alive connection of Dovecot's HTTP client
(it keeps idle ones for a minute) holds a handler thread, so ``stop()`` joins them all at once.

One server may serve a whole session (Dovecot's config names its port): ``reset()`` forgets
clients, users, tokens, records and settings between tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import secrets
import socketserver
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

HOST = "127.0.0.1"
AUTHORIZE_PATH = "/authorize"
TOKEN_PATH = "/token"
DEVICE_PATH = "/device"
DEVICE_VERIFY_PATH = "/device/verify"
INTROSPECT_PATH = "/introspect"

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# The introspection answer carries the login under both names; Dovecot is configured with this one.
USERNAME_ATTRIBUTE = "username"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

log = logging.getLogger(__name__)


class _Failure(Exception):
    """An RFC 6749 §5.2 error answer, raised anywhere in a handler and sent by its caller."""

    def __init__(self, error: str, description: str | None = None, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class TokenRequest:
    """One call of the token endpoint, kept so tests can count grants and refusals."""

    grant_type: str
    client_id: str | None  # as the client named itself (None when it did not)
    error: str | None  # the RFC 6749 error answered, None when tokens were issued
    login: str | None  # whose tokens were issued


@dataclass
class DeviceGrant:
    """One device authorization (RFC 8628) and where the user stands with it."""

    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float  # time.time()
    interval: int
    status: Literal["pending", "approved", "denied", "consumed"] = "pending"
    login: str | None = None
    last_poll: float | None = None  # time.monotonic() of the previous token request


@dataclass
class _Code:
    client_id: str
    login: str
    redirect_uri: str
    challenge: str
    scope: str
    expires_at: float


@dataclass
class _Access:
    login: str
    client_id: str
    scope: str
    expires_at: float  # time.time(): the ``exp`` of the introspection answer
    revoked: bool = False

    def active(self, now: float) -> bool:
        return not self.revoked and now < self.expires_at


@dataclass
class _Refresh:
    login: str
    client_id: str
    scope: str
    valid: bool = True


@dataclass
class _State:
    """Everything ``reset()`` puts back: settings, registrations, tokens and records."""

    clients: dict[str, str | None] = field(default_factory=dict)
    users: list[str] = field(default_factory=list)
    codes: dict[str, _Code] = field(default_factory=dict)
    access: dict[str, _Access] = field(default_factory=dict)
    refresh: dict[str, _Refresh] = field(default_factory=dict)
    devices: dict[str, DeviceGrant] = field(default_factory=dict)
    denials: list[str] = field(default_factory=list)  # errors for the next authorizations
    token_failures: list[tuple[int, str | None]] = field(default_factory=list)


class OAuthServer:
    """The OAuth2 provider of the tests; see the module docstring.

    Start it with ``with OAuthServer.running() as oauth:`` (or ``start()`` / ``stop()``).
    Settings below may be changed by the test at any time; the next request sees them.
    """

    def __init__(self) -> None:
        self.host = HOST
        self.port = 0
        self._lock = threading.RLock()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []  # exceptions raised by a handler: bugs of this module
        self._reset_locked()

    def reset(self) -> None:
        """Back to a fresh provider (no client, no user, no token, default settings), same port."""
        with self._lock:
            self._reset_locked()

    def _reset_locked(self) -> None:
        self._state = _State()
        self.default_login: str | None = None  # who signs in without a (known) login_hint
        self.access_ttl: float = 3600.0  # seconds an access token lives (``expires_in``)
        self.code_ttl: float = 600.0
        self.rotate_refresh = False  # refresh answers carry a new refresh token, the old one dies
        self.device_interval = 1  # ``interval`` of device authorizations (RFC default 5: too slow for tests)
        self.device_ttl: float = 600.0
        self.enforce_interval = False  # answer ``slow_down`` to device polls closer than the interval
        self.authorizations: list[dict[str, str]] = []  # query parameters of every GET /authorize
        self.token_requests: list[TokenRequest] = []
        self.device_authorizations: list[DeviceGrant] = []
        self.introspections = 0  # calls of the introspection endpoint (Dovecot's token checks)

    # -- life cycle -----------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[OAuthServer]:
        server = cls()
        server.start()
        try:
            yield server
        finally:
            server.stop()

    def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a ``stop()``)."""
        if self._httpd is not None:
            return
        httpd = _HttpServer((self.host, self.port), _Handler, self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"oauth-server-{self.port}"
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop answering: the listening socket is closed, every handler thread joined."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> OAuthServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def authorize_url(self) -> str:
        return self.base_url + AUTHORIZE_PATH

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def device_url(self) -> str:
        return self.base_url + DEVICE_PATH

    @property
    def introspect_url(self) -> str:
        return self.base_url + INTROSPECT_PATH

    @property
    def verification_url(self) -> str:
        """Where a device-flow user would type the code (a page that only says so)."""
        return self.base_url + DEVICE_VERIFY_PATH

    # -- registrations and steering --------------------------------------------

    def add_client(self, client_id: str, secret: str | None = None) -> None:
        """Register a client; with a secret it is confidential and must authenticate at /token."""
        with self._lock:
            self._state.clients[client_id] = secret

    def add_user(self, login: str) -> None:
        """A user who can sign in; the first one added becomes ``default_login``."""
        with self._lock:
            if login not in self._state.users:
                self._state.users.append(login)
            if self.default_login is None:
                self.default_login = login

    def deny_next(self, error: str = "access_denied") -> None:
        """The next authorization redirects with ``?error=…`` (the user clicked "Cancel")."""
        with self._lock:
            self._state.denials.append(error)

    def fail_next_token(self, status: int = 503, error: str | None = "temporarily_unavailable") -> None:
        """The next token request, whatever it is, gets this answer (a provider having a bad minute).

        ``error=None`` answers an HTML page instead of JSON, as a broken proxy in front would.
        """
        with self._lock:
            self._state.token_failures.append((status, error))

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired from now on (refresh tokens live on)."""
        with self._lock:
            now = time.time()
            for token in self._state.access.values():
                token.expires_at = min(token.expires_at, now - 1)

    def revoke(self, login: str) -> None:
        """The user revoked the app: refresh tokens → ``invalid_grant``, access tokens inactive."""
        with self._lock:
            for refresh in self._state.refresh.values():
                if refresh.login == login:
                    refresh.valid = False
            for access in self._state.access.values():
                if access.login == login:
                    access.revoked = True

    def approve_device(self, user_code: str, login: str | None = None) -> None:
        """The user typed ``user_code`` and consented, as ``login`` (default: ``default_login``)."""
        with self._lock:
            grant = self._device_by_user_code(user_code)
            who = login or self.default_login
            if who is None or who not in self._state.users:
                raise ValueError(f"unknown user {who!r}: add_user() first")
            grant.status, grant.login = "approved", who

    def deny_device(self, user_code: str) -> None:
        with self._lock:
            self._device_by_user_code(user_code).status = "denied"

    def expire_device(self, user_code: str) -> None:
        """The device code's lifetime is over: polls answer ``expired_token``."""
        with self._lock:
            self._device_by_user_code(user_code).expires_at = time.time() - 1

    def _device_by_user_code(self, user_code: str) -> DeviceGrant:
        for grant in self._state.devices.values():
            if grant.user_code == user_code:
                return grant
        raise KeyError(user_code)

    def issue_tokens(self, login: str, client_id: str = "bimmail-test", scope: str = "mail") -> dict[str, Any]:
        """Tokens for ``login`` without any flow: the token answer a sign-in would have given."""
        with self._lock:
            return self._issue(login, client_id, scope, with_refresh=True)

    # -- reading the state ------------------------------------------------------

    def check(self, token: str) -> str | None:
        """The login an access token belongs to while it is active; None otherwise."""
        with self._lock:
            access = self._state.access.get(token)
            return access.login if access is not None and access.active(time.time()) else None

    def refresh_token_valid(self, token: str) -> bool:
        with self._lock:
            refresh = self._state.refresh.get(token)
            return refresh is not None and refresh.valid

    def grants(self, grant_type: str, *, ok: bool = True) -> list[TokenRequest]:
        """Token requests of one grant type that issued tokens (``ok=False``: that were refused)."""
        with self._lock:
            return [r for r in self.token_requests if r.grant_type == grant_type and (r.error is None) == ok]

    def refresh_tokens(self, login: str) -> list[str]:
        """The refresh tokens issued to ``login`` (valid or not), oldest first: to look for them
        where they must not be (a client's logs and files)."""
        with self._lock:
            return [token for token, grant in self._state.refresh.items() if grant.login == login]

    def access_tokens(self, login: str) -> list[str]:
        """The access tokens issued to ``login`` (active or not), oldest first."""
        with self._lock:
            return [token for token, grant in self._state.access.items() if grant.login == login]

    @property
    def refreshes(self) -> int:
        """Successful refresh grants: how many times a client renewed an access token."""
        return len(self.grants("refresh_token"))

    # -- protocol (called by the handler threads, under the lock) ---------------

    def _issue(self, login: str, client_id: str, scope: str, *, with_refresh: bool) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        self._state.access[access] = _Access(login, client_id, scope, time.time() + self.access_ttl)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": max(int(self.access_ttl), 0),
            "scope": scope,
        }
        if with_refresh:
            refresh = "rt-" + secrets.token_urlsafe(24)
            self._state.refresh[refresh] = _Refresh(login, client_id, scope)
            answer["refresh_token"] = refresh
        return answer

    def _authorize(self, query: Mapping[str, str]) -> tuple[int, str, str | None]:
        """(status, page, redirect location) for GET /authorize."""
        with self._lock:
            self.authorizations.append(dict(query))
            client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
            # RFC 6749 §4.1.2.1: never redirect to an unverified client's URI — show an error page.
            if client_id not in self._state.clients:
                return 400, "invalid_client: unknown client_id", None
            if not _is_loopback(redirect_uri):
                return 400, "invalid_request: redirect_uri must be an http loopback URI (RFC 8252)", None
            params: dict[str, str] = {}
            if self._state.denials:
                params["error"] = self._state.denials.pop(0)
            elif query.get("response_type") != "code":
                params["error"] = "unsupported_response_type"
            elif not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
                params.update(error="invalid_request", error_description="PKCE with S256 is required")
            else:
                hint = query.get("login_hint")
                login = hint if hint in self._state.users else self.default_login
                if login is None:
                    params.update(error="access_denied", error_description="no user to sign in")
                else:
                    code = "ac-" + secrets.token_urlsafe(24)
                    self._state.codes[code] = _Code(
                        client_id,
                        login,
                        redirect_uri,
                        query["code_challenge"],
                        query.get("scope", ""),
                        time.time() + self.code_ttl,
                    )
                    params["code"] = code
            if "state" in query:
                params["state"] = query["state"]
            separator = "&" if urlsplit(redirect_uri).query else "?"
            return 302, "", redirect_uri + separator + urlencode(params)

    def _client(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> str:
        """The authenticated client_id (RFC 6749 §2.3.1: Basic or form, not both different)."""
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        if basic is not None:
            if client_id is not None and client_id != basic[0]:
                raise _Failure("invalid_request", "client_id differs from the Basic credentials")
            client_id, secret = basic
        if client_id is None or client_id not in self._state.clients:
            raise _Failure("invalid_client", "unknown client", 401)
        expected = self._state.clients[client_id]
        if expected is not None and secret != expected:
            raise _Failure("invalid_client", "client authentication failed", 401)
        return client_id

    def _token(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        """The answer of POST /token; raises _Failure for an error answer."""
        grant_type = form.get("grant_type", "")
        named = basic[0] if basic is not None else form.get("client_id")
        with self._lock:
            try:
                if self._state.token_failures:
                    status, error = self._state.token_failures.pop(0)
                    raise _Failure(error or "", None, status)
                client_id = self._client(form, basic)
                if grant_type == "authorization_code":
                    login, answer = self._code_grant(form, client_id)
                elif grant_type == "refresh_token":
                    login, answer = self._refresh_grant(form, client_id)
                elif grant_type == DEVICE_GRANT:
                    login, answer = self._device_grant(form, client_id)
                else:
                    raise _Failure("unsupported_grant_type")
            except _Failure as failure:
                recorded = failure.error or f"http_{failure.status}"
                self.token_requests.append(TokenRequest(grant_type, named, recorded, None))
                raise
            self.token_requests.append(TokenRequest(grant_type, named, None, login))
            return answer

    def _code_grant(self, form: Mapping[str, str], client_id: str) -> tuple[str, dict[str, Any]]:
        # Consumed when presented, whatever follows: a code is good for one attempt only.
        code = self._state.codes.pop(form.get("code", ""), None)
        if code is None or code.expires_at < time.time() or code.client_id != client_id:
            raise _Failure("invalid_grant", "unknown, used or expired authorization code")
        if form.get("redirect_uri") != code.redirect_uri:
            raise _Failure("invalid_grant", "redirect_uri differs from the authorization request's")
        verifier = form.get("code_verifier", "")
        if not verifier or _s256(verifier) != code.challenge:
            raise _Failure("invalid_grant", "PKCE verification failed")
        return code.login, self._issue(code.login, client_id, code.scope, with_refresh=True)

    def _refresh_grant(self, form: Mapping[str, str], client_id: str) -> tuple[str, dict[str, Any]]:
        token = form.get("refresh_token", "")
        refresh = self._state.refresh.get(token)
        if refresh is None or not refresh.valid or refresh.client_id != client_id:
            raise _Failure("invalid_grant", "refresh token revoked, unknown or of another client")
        scope = refresh.scope
        if "scope" in form:
            if not set(form["scope"].split()) <= set(refresh.scope.split()):
                raise _Failure("invalid_scope", "more scope than was granted")
            scope = form["scope"]
        answer = self._issue(refresh.login, client_id, scope, with_refresh=self.rotate_refresh)
        if self.rotate_refresh:
            refresh.valid = False
        return refresh.login, answer

    def _device_grant(self, form: Mapping[str, str], client_id: str) -> tuple[str, dict[str, Any]]:
        grant = self._state.devices.get(form.get("device_code", ""))
        if grant is None or grant.client_id != client_id or grant.status == "consumed":
            raise _Failure("invalid_grant", "unknown or used device code")
        if grant.expires_at <= time.time():
            raise _Failure("expired_token")
        if grant.status == "denied":
            raise _Failure("access_denied")
        now = time.monotonic()
        previous, grant.last_poll = grant.last_poll, now
        if grant.status == "pending":
            if self.enforce_interval and previous is not None and now - previous < grant.interval:
                raise _Failure("slow_down")
            raise _Failure("authorization_pending")
        assert grant.login is not None
        grant.status = "consumed"
        return grant.login, self._issue(grant.login, client_id, grant.scope, with_refresh=True)

    def _device(self, form: Mapping[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        with self._lock:
            client_id = self._client(form, basic)
            user_code = "-".join("".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(4)) for _ in range(2))
            grant = DeviceGrant(
                "dc-" + secrets.token_urlsafe(24),
                user_code,
                client_id,
                form.get("scope", ""),
                time.time() + self.device_ttl,
                self.device_interval,
            )
            self._state.devices[grant.device_code] = grant
            self.device_authorizations.append(grant)
            return {
                "device_code": grant.device_code,
                "user_code": user_code,
                "verification_uri": self.verification_url,
                "verification_uri_complete": f"{self.verification_url}?{urlencode({'user_code': user_code})}",
                "expires_in": int(self.device_ttl),
                "interval": grant.interval,
            }

    def _introspect(self, token: str | None) -> dict[str, Any]:
        with self._lock:
            self.introspections += 1
            access = self._state.access.get(token or "")
            if access is None or not access.active(time.time()):
                # active=false is what makes Dovecot refuse the login (a missing username would
                # be an internal failure, answered NO [UNAVAILABLE] instead of a failed login).
                return {"active": False}
            return {
                "active": True,
                USERNAME_ATTRIBUTE: access.login,
                "email": access.login,
                "sub": access.login,
                "client_id": access.client_id,
                "scope": access.scope,
                "token_type": "Bearer",
                "exp": int(access.expires_at),
            }


class _HttpServer(ThreadingHTTPServer):
    """The stdlib server, knowing its OAuthServer, without a reverse DNS lookup at bind time."""

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], oauth: OAuthServer
    ) -> None:  # fmt: skip
        self.oauth = oauth
        super().__init__(address, handler)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # the client went away: not a bug here
        if error is not None:
            log.error("OAuth test server handler failed", exc_info=error)
            self.oauth.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.0"  # one request per connection: see the module docstring
    timeout = 10  # a client that connects and says nothing does not hold stop() forever

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("oauth %s: " + format, self.client_address[0], *args)

    # -- plumbing ---------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _page(self, status: int, text: str) -> None:
        self._send(status, f"<!doctype html><title>OAuth test server</title><p>{text}\n".encode(), "text/html")

    def _failure(self, failure: _Failure) -> None:
        if not failure.error:
            self._page(failure.status, "the server is having a bad minute")
            return
        body = {"error": failure.error}
        if failure.description:
            body["error_description"] = failure.description
        headers = {"WWW-Authenticate": 'Basic realm="oauth"'} if failure.status == 401 else None
        self._json(failure.status, body, headers)

    def _form(self) -> dict[str, str]:
        """The form body (one value per name: RFC 6749 §3.2 forbids repeating a parameter)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
        parsed = parse_qs(raw, keep_blank_values=True)
        repeated = [name for name, values in parsed.items() if len(values) > 1]
        if repeated:
            raise _Failure("invalid_request", f"repeated parameter {repeated[0]}")
        return {name: values[0] for name, values in parsed.items()}

    def _basic(self) -> tuple[str, str] | None:
        """HTTP Basic client credentials (each part form-urlencoded, RFC 6749 §2.3.1)."""
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            user, _, password = decoded.partition(":")
        except ValueError:
            raise _Failure("invalid_client", "malformed Basic credentials", 401) from None
        return unquote_plus(user), unquote_plus(password)

    # -- routes -----------------------------------------------------------------

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {name: values[0] for name, values in parse_qs(url.query, keep_blank_values=True).items()}
        oauth = self.server.oauth
        if url.path == AUTHORIZE_PATH:
            status, text, location = oauth._authorize(query)
            if location is not None:
                self._send(status, b"", "text/html", {"Location": location})
            else:
                self._page(status, text)
        elif url.path == INTROSPECT_PATH:
            header = self.headers.get("Authorization", "")
            token = header[7:].strip() if header.lower().startswith("bearer ") else query.get("token")
            self._json(200, oauth._introspect(token))
        elif url.path == DEVICE_VERIFY_PATH:
            self._page(200, "Enter the code shown by your device (tests approve it with approve_device).")
        else:
            self._page(404, "not found")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        oauth = self.server.oauth
        try:
            form = self._form()
            if url.path == TOKEN_PATH:
                self._json(200, oauth._token(form, self._basic()))
            elif url.path == DEVICE_PATH:
                self._json(200, oauth._device(form, self._basic()))
            elif url.path == INTROSPECT_PATH:
                self._json(200, oauth._introspect(form.get("token")))
            else:
                self._page(404, "not found")
        except _Failure as failure:
            self._failure(failure)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _is_loopback(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge): what a client sends, for tests that drive the flow by hand."""
    verifier = secrets.token_urlsafe(32)
    return verifier, _s256(verifier)


# -- the browser ------------------------------------------------------------------


def _browse(url: str, timeout: float) -> tuple[int, str]:
    # No proxy from the environment: everything here is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode("utf-8", errors="replace")


async def browse(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """What the user's browser does with an authorization URL: GET it, follow the redirect.

    The provider consents at once and redirects to the client's loopback listener, so the
    answer is that listener's: (final HTTP status, body).  In a thread, so the daemon serving
    the redirect in the test's event loop keeps running meanwhile.
    """
    return await asyncio.to_thread(_browse, url, timeout)


__all__ = [
    "AUTHORIZE_PATH",
    "DEVICE_GRANT",
    "DEVICE_PATH",
    "INTROSPECT_PATH",
    "TOKEN_PATH",
    "USERNAME_ATTRIBUTE",
    "DeviceGrant",
    "OAuthServer",
    "TokenRequest",
    "browse",
    "pkce_pair",
]
