"""A real SMTP server for the tests, running in the test's own event loop.

bimmaild's connection tests and its sending must be proven against a server that
speaks real SMTP over real sockets and real TLS — the bytes a provider would see —
yet stays deterministic and fast.  aiosmtpd supplies the protocol; this module
adds what tests need to steer it at run time, from the test itself:

- three listeners on 127.0.0.1, each on a free port: ``ssl`` (implicit TLS, like
  465), ``starttls`` (clear text that must be upgraded before AUTH or MAIL, like
  587) and ``plain`` (clear text, no STARTTLS offered: for ``security = none``
  accounts and for "STARTTLS expected but not offered");
- AUTH PLAIN and LOGIN against ``users``; ``auth_required``, ``refuse`` (per
  recipient) and ``refuse_data`` switch the server's answers between two sends;
  ``offer_auth = False`` makes it a server with no authentication at all (no
  AUTH in its EHLO answer, AUTH refused as Postfix without SASL refuses it);
- with ``oauth`` (a ``tests.servers.oauth.OAuthServer``), AUTH XOAUTH2 and
  OAUTHBEARER too, the bearer token judged by that server as Gmail would: 235,
  or a 334 challenge carrying a base64 JSON error that the client must answer
  (an empty line) before the 535;
- a record of every accepted message (``deliveries``) and of every AUTH attempt,
  plus ``wait_for_deliveries`` so that tests await instead of sleeping;
  ``hold_data`` delays the answer to a message already recorded;
- ways to misbehave: drop every client, stop a listener, start it again.

Why not aiosmtpd's ``Controller``: it runs the server in a thread with its own
loop, while the daemon under test and the test itself share pytest-asyncio's
loop; one loop keeps the test deterministic and lets it touch the server's state
without locks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.message
import email.policy
import json
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from tests.servers.oauth import OAuthServer
from tests.servers.tls import TlsMaterial

PortKind = Literal["ssl", "starttls", "plain"]
PORT_KINDS: tuple[PortKind, ...] = ("ssl", "starttls", "plain")

HOST = "127.0.0.1"
AUTH_REQUIRED_REPLY = "530 5.7.0 Authentication required"
NO_AUTH_REPLY = "503 5.5.1 Error: authentication not enabled"  # Postfix's, without SASL
OAUTH_MECHANISMS = ("XOAUTH2", "OAUTHBEARER")
# Gmail's answers to a bad token: the challenge's JSON, then (after the client's empty line) the refusal.
XOAUTH2_ERROR = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
OAUTHBEARER_ERROR = {"status": "invalid_token", "schemes": "bearer", "scope": "https://mail.google.com/"}
OAUTH_REFUSED_REPLY = "535 5.7.8 Username and Password not accepted (invalid or expired OAuth2 token)"

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    """One message the server accepted (answered 250 to the final dot)."""

    mail_from: str
    rcpt_tos: list[str]  # only the recipients the server accepted
    data: bytes  # the message exactly as transmitted, dot-stuffing undone, CRLF line ends
    auth_login: str | None  # the login that authenticated the session, None without AUTH
    port_kind: PortKind

    @property
    def message(self) -> email.message.EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        return parsed


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH command that reached the credential check (the password is not kept)."""

    login: str  # for XOAUTH2/OAUTHBEARER: the user the client named (the token is not kept)
    mechanism: str  # "PLAIN", "LOGIN", "XOAUTH2" or "OAUTHBEARER"
    success: bool
    port_kind: PortKind


@dataclass(eq=False)  # kept in a set: identity, not value
class _Connection:
    kind: PortKind
    transport: asyncio.BaseTransport  # the outermost transport: aborting it drops the client at once
    task: asyncio.Task[None] | None  # aiosmtpd's per-connection command loop


class _Session(Session):
    """aiosmtpd's Session, minus a log warning that aiosmtpd itself provokes.

    smtp_AUTH sets the deprecated ``login_data`` on every successful AUTH, and
    the setter logs "Session.login_data is deprecated" each time: noise in the
    captured log of every failing test.
    """

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _Protocol(SMTP):
    """aiosmtpd's SMTP protocol, reporting its connections to the server that owns it.

    aiosmtpd calls ``connection_made`` a second time after STARTTLS (with the TLS
    transport); only the first call is a new client.
    """

    def __init__(self, owner: SmtpServer, kind: PortKind, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._owner = owner
        self._kind = kind
        self._record: _Connection | None = None

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._record is None:
            self._record = _Connection(self._kind, transport, self._handler_coroutine)
            self._owner._connections.add(self._record)

    def connection_lost(self, error: Exception | None) -> None:
        if self._record is not None:
            self._owner._connections.discard(self._record)
        super().connection_lost(error)


class _Handler:
    """aiosmtpd hooks for one listener; every decision reads the server's current settings.

    When a ``handle_MAIL`` / ``handle_RCPT`` hook exists aiosmtpd no longer fills
    the envelope itself: the hook must record the sender and the recipients.
    """

    def __init__(self, owner: SmtpServer, kind: PortKind) -> None:
        self._owner = owner
        self._kind = kind

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", errors="replace")
        password = auth_data.password.decode("utf-8", errors="replace")
        if self._owner.auth_unavailable:  # the server's credential store is down (RFC 4954 454)
            self._owner.auth_attempts.append(AuthAttempt(login, mechanism, False, self._kind))
            return AuthResult(success=False, handled=False, message="454 4.7.0 Temporary authentication failure")
        expected = self._owner.users.get(login)
        success = expected is not None and password == expected
        self._owner.auth_attempts.append(AuthAttempt(login, mechanism, success, self._kind))
        # handled=False: aiosmtpd answers 535 itself on failure, 235 on success.
        # auth_data becomes session.auth_data, where handle_DATA finds the login.
        return AuthResult(success=success, handled=False, auth_data=login if success else None)

    # aiosmtpd offers every ``auth_<MECH>`` method of the handler as a mechanism; without an
    # OAuthServer these two are excluded when the listener starts (``auth_exclude_mechanism``).

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """Google's XOAUTH2: ``user=<login>^Aauth=Bearer <token>^A^A``, base64."""
        return await self._bearer(server, args, "XOAUTH2", XOAUTH2_ERROR)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 7628: ``n,a=<login>,^Ahost=…^Aport=…^Aauth=Bearer <token>^A^A``, base64."""
        return await self._bearer(server, args, "OAUTHBEARER", OAUTHBEARER_ERROR)

    async def _bearer(self, server: SMTP, args: list[str], mechanism: str, error: dict[str, str]) -> AuthResult:
        oauth = self._owner.oauth
        assert oauth is not None  # else the mechanism is not offered
        if len(args) == 1:
            response = await server.challenge_auth("")  # "334 " then the client's initial response
            if response is MISSING:
                return AuthResult(success=False, handled=True)  # aiosmtpd answered the "*" or bad base64
        else:
            try:
                response = base64.b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parsed = _parse_bearer(response, mechanism)
        if parsed is None:
            await server.push("501 5.5.2 Malformed " + mechanism + " initial response")
            return AuthResult(success=False, handled=True)
        user, token = parsed
        owner = oauth.check(token)
        success = owner is not None and owner.lower() == user.lower()
        self._owner.auth_attempts.append(AuthAttempt(user, mechanism, success, self._kind))
        if success:
            return AuthResult(success=True, handled=False, auth_data=user)
        # RFC 7628 §3.2.2 / Gmail: the error travels in a challenge; the client answers it (an
        # empty line, or a single ^A for OAUTHBEARER), and only then comes the refusal.
        answer = await server.challenge_auth(json.dumps(error, separators=(",", ":")))
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=OAUTH_REFUSED_REPLY)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """aiosmtpd's own EHLO answer, without its AUTH line when the server offers no authentication.

        With this (five-argument) hook aiosmtpd leaves recording the client's name to the hook.
        """
        session.host_name = hostname
        if self._owner.offer_auth:
            return responses
        return [line for line in responses if not line.startswith("250-AUTH")]

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Envelope, args: list[str]) -> Any:
        """MISSING: aiosmtpd goes on with the mechanism; else the refusal of a server without SASL."""
        return MISSING if self._owner.offer_auth else NO_AUTH_REPLY

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if self._owner.auth_required and not session.authenticated:
            return AUTH_REQUIRED_REPLY
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self._owner.refuse.get(address)
        if refusal is not None:
            code, text = refusal
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._owner.refuse_data is not None:
            code, text = self._owner.refuse_data
            return f"{code} {text}"
        assert envelope.mail_from is not None and envelope.original_content is not None
        login = session.auth_data if session.authenticated else None
        delivery = Delivery(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content,
            auth_login=login if isinstance(login, str) else None,
            port_kind=self._kind,
        )
        async with self._owner._delivered:
            self._owner.deliveries.append(delivery)
            self._owner._delivered.notify_all()
        if self._owner.hold_data is not None:
            await self._owner.hold_data.wait()
        return "250 2.0.0 OK: queued"

    async def handle_exception(self, error: Exception) -> str:
        """Keep expected TLS failures quiet; record anything else, which is a bug here.

        Without this hook aiosmtpd logs every failed STARTTLS handshake (an
        untrusted client, on purpose in tests) as an ERROR with a traceback.
        """
        if isinstance(error, TLSSetupException):
            log.info("STARTTLS handshake failed on %s: %r", self._kind, error.__cause__)
        else:
            log.error("SMTP handler error on %s", self._kind, exc_info=error)
            self._owner.errors.append(error)
        # aiosmtpd closes the connection itself after a TLSSetupException; this reply is then not sent.
        return f"500 Error: ({type(error).__name__}) {error}"


class SmtpServer:
    """Three SMTP listeners on 127.0.0.1 sharing one set of users, switches and records.

    Start it with ``async with SmtpServer.start(tls) as smtp:``; connect to
    ``smtp.host`` on ``smtp.ports[kind]``.  Every attribute below may be changed by
    the test at any time; the next command sees the new value.
    """

    def __init__(
        self,
        tls: TlsMaterial,
        *,
        users: Mapping[str, str] | None = None,
        auth_required: bool = True,
        oauth: OAuthServer | None = None,
    ) -> None:
        self.tls = tls
        self.oauth = oauth  # when given (before the listeners start): XOAUTH2 and OAUTHBEARER offered
        self.host = HOST
        self.hostname = "smtp.test"  # greeting and EHLO name; given, so aiosmtpd skips socket.getfqdn()
        self.ports: dict[PortKind, int] = {}
        self.users: dict[str, str] = dict(users or {})
        self.auth_required = auth_required
        # recipient address (as the client wrote it inside <>) -> (code, text) answered to its RCPT TO
        self.refuse: dict[str, tuple[int, str]] = {}
        self.refuse_data: tuple[int, str] | None = None  # answer to the final dot instead of accepting
        self.auth_unavailable = False  # PLAIN/LOGIN answered 454 (credentials cannot be checked now)
        self.offer_auth = True  # False: no AUTH in the EHLO answer, AUTH itself refused (NO_AUTH_REPLY)
        # When set: a message is recorded on arrival but answered only once this event is set
        # (a client killed meanwhile never learns whether it was taken).
        self.hold_data: asyncio.Event | None = None
        self.deliveries: list[Delivery] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.errors: list[Exception] = []  # exceptions raised while handling a command: bugs of this module
        self._server_context = tls.server_context()
        self._listeners: dict[PortKind, asyncio.Server] = {}
        self._connections: set[_Connection] = set()
        self._delivered = asyncio.Condition()

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        tls: TlsMaterial,
        *,
        users: Mapping[str, str] | None = None,
        auth_required: bool = True,
        oauth: OAuthServer | None = None,
    ) -> AsyncIterator[SmtpServer]:
        server = cls(tls, users=users, auth_required=auth_required, oauth=oauth)
        try:
            for kind in PORT_KINDS:
                await server.start_listener(kind)
            yield server
        finally:
            await server.aclose()

    @property
    def connection_count(self) -> int:
        """Clients connected right now (past the TLS handshake on the ``ssl`` listener)."""
        return len(self._connections)

    async def wait_for_deliveries(self, count: int, timeout: float = 5) -> list[Delivery]:
        """Wait until at least ``count`` messages were accepted; return all of them."""
        async with self._delivered:
            try:
                await asyncio.wait_for(self._delivered.wait_for(lambda: len(self.deliveries) >= count), timeout)
            except TimeoutError:
                raise AssertionError(
                    f"expected {count} deliveries within {timeout} s, got {len(self.deliveries)}"
                ) from None
        return list(self.deliveries)

    def close_all_connections(self) -> int:
        """Drop every connected client at once (no reply, no TLS close_notify); return how many."""
        dropped = list(self._connections)
        for conn in dropped:
            _abort(conn.transport)
        return len(dropped)

    async def stop_listener(self, kind: PortKind) -> None:
        """Take one listener down: new connections are refused, its clients are dropped.

        ``ports[kind]`` is kept, so ``start_listener(kind)`` brings it back on the same port.
        """
        listener = self._listeners.pop(kind, None)
        if listener is None:
            return
        listener.close()
        dropped = [conn for conn in self._connections if conn.kind == kind]
        for conn in dropped:
            _abort(conn.transport)
        await _settle(dropped)
        await listener.wait_closed()

    async def start_listener(self, kind: PortKind) -> None:
        """Open a listener: on a free port the first time, on its previous port afterwards."""
        if kind in self._listeners:
            return
        loop = asyncio.get_running_loop()
        handler = _Handler(self, kind)
        options: dict[str, Any] = {
            "hostname": self.hostname,
            "authenticator": handler.authenticate,
            # Always off: aiosmtpd's flag is fixed per connection and refuses even
            # HELP/VRFY; handle_MAIL applies our run-time switch instead.  (It being
            # on with auth_require_tls off would also raise a UserWarning.)
            "auth_required": False,
            "loop": loop,  # else aiosmtpd looks the loop up through asyncio.get_event_loop()
            "auth_exclude_mechanism": () if self.oauth is not None else OAUTH_MECHANISMS,
        }
        server_ssl: ssl.SSLContext | None = None
        if kind == "ssl":
            # The loop does the TLS: aiosmtpd cannot tell, so it must not insist on
            # STARTTLS before AUTH (with auth_require_tls it would answer 538).
            server_ssl = self._server_context
            options.update(auth_require_tls=False)
        elif kind == "starttls":
            options.update(tls_context=self._server_context, require_starttls=True, auth_require_tls=True)
        else:
            options.update(auth_require_tls=False)
        listener = await loop.create_server(
            lambda: _Protocol(self, kind, handler, **options), HOST, self.ports.get(kind, 0), ssl=server_ssl
        )
        self._listeners[kind] = listener
        self.ports[kind] = listener.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        for kind in list(self._listeners):
            await self.stop_listener(kind)
        leftovers = list(self._connections)
        for conn in leftovers:
            _abort(conn.transport)
        await _settle(leftovers)


def _parse_bearer(response: bytes, mechanism: str) -> tuple[str, str] | None:
    """(user, token) of an XOAUTH2 or OAUTHBEARER initial response; None when malformed."""
    try:
        text = response.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = text.split("\x01")
    user: str | None = None
    if mechanism == "OAUTHBEARER":
        # GS2 header "n,a=<authzid>," (RFC 5801: "=2C" is a comma, "=3D" an equals sign).
        for part in fields[0].split(","):
            if part.startswith("a="):
                user = part[2:].replace("=2C", ",").replace("=3D", "=")
    token: str | None = None
    for item in fields[1:] if mechanism == "OAUTHBEARER" else fields:
        if item.startswith("user=") and mechanism == "XOAUTH2":
            user = item[5:]
        elif item[:12].lower() == "auth=bearer ":
            token = item[12:]
    if not user or not token:
        return None
    return user, token


def _abort(transport: asyncio.BaseTransport) -> None:
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()


async def _settle(connections: list[_Connection]) -> None:
    """Let aborted connections run their connection_lost and aiosmtpd's command loops end."""
    tasks = [conn.task for conn in connections if conn.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=2)
    await asyncio.sleep(0)


__all__ = [
    "HOST",
    "NO_AUTH_REPLY",
    "OAUTH_MECHANISMS",
    "OAUTH_REFUSED_REPLY",
    "PORT_KINDS",
    "AuthAttempt",
    "Delivery",
    "PortKind",
    "SmtpServer",
]
