"""The SMTP half of a connection test (R-A3, R-B1), over one real connection with aiosmtplib.

dns → connect → tls (implicit, or STARTTLS offered and upgraded: always
``start_tls`` explicitly, aiosmtplib's default is opportunistic) →
certificate → capabilities (EHLO) → login (AUTH, when the account uses it)
→ sender (MAIL FROM the account's address, then RSET: nothing is sent).
The sender step is what reveals "the server requires authentication but the
account has it off": servers answer 530 there.

``probe`` (trying the usual alternatives) goes up to EHLO, and checks that
AUTH is offered when the account uses it: it never sends the password.
``probe_sender`` runs the whole check, for the runner's auth on/off probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any

import aiosmtplib

from bimmaild import tls
from bimmaild.conntest import stages
from bimmaild.conntest.report import ServerReport, StepFailed
from bimmaild.conntest.target import Target

# What we say after EHLO: an address literal, like Thunderbird; never this machine's name.
EHLO_NAME = "[127.0.0.1]"
_CUT = "the connection closed or the server went silent"  # aiosmtplib does not tell which


async def check(target: Target, timeout: float, resolver: stages.Resolver = stages.system_resolver) -> ServerReport:
    report = ServerReport("smtp", target.host, target.port, target.security)
    rec = stages.Recorder(report)
    client: _Client | None = None
    try:
        async with rec.step("dns") as step:
            addresses = await stages.resolve(target, timeout, resolver)
            step.message = f"{target.host} is {', '.join(addresses)}"
        async with rec.step("connect") as step:
            sock = await _connect(target, addresses, timeout)
            step.message = f"connected to port {target.port}"
        client = _client(target, sock, tls.client_context(target.ca_file), timeout)
        await _secure(rec, client, target, addresses)
        async with rec.step("capabilities") as step:
            if target.security == "none":
                await _open(client, target)
            await _ehlo(client, target)
            step.message = _describe(client)
            step.details = {
                "extensions": sorted(client.esmtp_extensions),
                "auth_mechanisms": client.server_auth_methods,
            }
        async with rec.step("login") as step:
            step.message = await _login(client, target)
        async with rec.step("sender") as step:
            await _sender(client, target)
            step.message = f"the server accepts mail from {target.email}"
    except StepFailed:
        pass
    finally:
        if client is not None:
            await _close(client)
    return report


async def probe(target: Target, timeout: float, resolver: stages.Resolver = stages.system_resolver) -> str:
    """Connect and secure as ``target`` says, up to EHLO; raises StepFailed."""
    addresses = await stages.resolve(target, timeout, resolver)
    client = _client(target, await _connect(target, addresses, timeout), tls.client_context(target.ca_file), timeout)
    try:
        await _open(client, target)
        await _ehlo(client, target)
        if target.security == "starttls":
            await _starttls(client, target)
            await _ehlo(client, target)
        if target.auth:
            _check_auth_offered(client, target)
        return _describe(client)
    finally:
        await _close(client)


async def probe_sender(target: Target, timeout: float, resolver: stages.Resolver = stages.system_resolver) -> str:
    """Like check, up to the sender step, with ``target``'s auth setting; raises StepFailed."""
    report = await check(target, timeout, resolver)
    failed = report.failed
    if failed is not None:
        raise StepFailed(failed.message, fields=failed.fields, server_reply=failed.server_reply)
    return "the server accepts mail from the account"


async def _connect(target: Target, addresses: list[str], timeout: float) -> socket.socket:
    loop = asyncio.get_running_loop()
    last: BaseException = ConnectionRefusedError()
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (address, target.port))
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            last = exc
    raise stages.connect_failure(target, last)


class _Client(aiosmtplib.SMTP):
    """aiosmtplib over a socket we connected ourselves (to try each address, keeping the TLS name).

    Once ``connect`` runs, asyncio's transport owns the socket and closes it — after
    the TLS shutdown, which can outlast ``quit()``.  Closing the socket ourselves then
    would free its descriptor under a live transport: the next socket gets the same
    number and asyncio refuses it ("File descriptor N is used by transport"), or the
    stale transport later closes someone else's connection.
    """

    handed_over = False

    async def connect(self, *args: Any, **kwargs: Any) -> aiosmtplib.SMTPResponse:
        self.handed_over = True
        return await super().connect(*args, **kwargs)


def _client(target: Target, sock: socket.socket, context: ssl.SSLContext, timeout: float) -> _Client:
    return _Client(
        hostname=target.host,
        sock=sock,
        use_tls=target.security == "ssl",
        start_tls=False,
        tls_context=context,
        timeout=timeout,
        local_hostname=EHLO_NAME,
    )


async def _secure(rec: stages.Recorder, client: aiosmtplib.SMTP, target: Target, addresses: list[str]) -> None:
    """The tls and certificate steps, the greeting included (nothing when security is none)."""
    if target.security == "none":
        return
    rejected: ssl.SSLCertVerificationError | None = None
    async with rec.step("tls") as step:
        try:
            await _open(client, target)
            if target.security == "starttls":
                await _ehlo(client, target)
                await _starttls(client, target)
        except ssl.SSLCertVerificationError as exc:
            rejected = exc
        obj = _ssl_object(client)
        step.message = "TLS negotiated" + (f" ({obj.version()})" if obj else "")
        if target.security == "starttls":
            step.message = "STARTTLS offered; " + step.message
    async with rec.step("certificate") as step:
        if rejected is not None:
            raise stages.certificate_failure(target, rejected, await _fetch_certificate(target, addresses))
        obj = _ssl_object(client)
        der = obj.getpeercert(binary_form=True) if obj else None
        step.details = {"certificate": tls.describe_certificate(der)} if der else {}
        step.message = f"valid for {target.host}"


def _ssl_object(client: aiosmtplib.SMTP) -> ssl.SSLObject | None:
    if not client.is_connected:
        return None
    obj = client.get_transport_info("ssl_object")
    return obj if isinstance(obj, ssl.SSLObject) else None


def _cert_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate error behind an aiosmtplib error, if that is what it wraps."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        current = current.__cause__ or current.__context__
    return None


async def _open(client: aiosmtplib.SMTP, target: Target) -> None:
    """TCP is up: TLS (implicit) and the greeting."""
    try:
        await client.connect()
    except aiosmtplib.SMTPConnectTimeoutError:
        if target.security == "ssl":
            raise stages.tls_failure(target, TimeoutError()) from None
        raise stages.greeting_timeout(target) from None
    except aiosmtplib.SMTPConnectResponseError as exc:
        raise stages.session_refused(target, _reply(exc)) from None
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, ssl.SSLError, OSError) as exc:
        rejected = _cert_error(exc)
        if rejected is not None:
            raise rejected from None
        raise stages.tls_failure(target, exc.__cause__ or exc) from None


async def _starttls(client: aiosmtplib.SMTP, target: Target) -> None:
    if not client.supports_extension("starttls"):
        raise stages.starttls_missing(target, _ehlo_reply(client))
    try:
        await client.starttls()
    except ssl.SSLCertVerificationError:
        raise
    except aiosmtplib.SMTPResponseException as exc:  # an answer to STARTTLS other than 220
        raise stages.starttls_refused(target, _reply(exc)) from None
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
        rejected = _cert_error(exc)
        if rejected is not None:
            raise rejected from None
        raise stages.tls_failure(target, exc) from None


async def _ehlo(client: aiosmtplib.SMTP, target: Target) -> None:
    try:
        await client.ehlo()
    except aiosmtplib.SMTPResponseException as exc:
        raise StepFailed(
            f"the server refused EHLO ({exc.code})",
            fields=[target.field("port")],
            hint="this port may not be for sending mail from a mail program (port 25 often takes mail only "
            "for the server's own users); the submission ports are 587 (starttls) and 465 (ssl)",
            server_reply=_reply(exc),
        ) from None
    except (aiosmtplib.SMTPException, OSError):
        raise StepFailed(
            "the server closed the session after the greeting",
            fields=[target.field("port")],
            hint="the server may limit connections from one address (try again later), or this port is "
            f"not for mail submission; {stages._usual_ports(target)}",
        ) from None


def _check_auth_offered(client: aiosmtplib.SMTP, target: Target) -> None:
    """The login this account needs is offered on this connection, else say what to change."""
    mechanisms = client.server_auth_methods
    if not mechanisms:
        fields = [target.field("auth")]
        hint = "turn off SMTP authentication (--no-smtp-auth) if this server needs none"
        if target.security == "none":  # with TLS in place, the security setting is not the cause
            fields.append(target.field("security"))
            hint = "servers often offer authentication only after TLS: use starttls or ssl; or " + hint
        raise StepFailed(
            "the server offers no authentication on this connection",
            fields=fields,
            hint=hint,
            server_reply=_ehlo_reply(client),
        )
    if target.oauth and "xoauth2" not in mechanisms:
        raise StepFailed(
            "the server offers no OAuth2 login (AUTH XOAUTH2)",
            fields=["auth"],
            hint="sign in with a password on this server (--auth password)",
            server_reply=_ehlo_reply(client),
        )


async def _login(client: aiosmtplib.SMTP, target: Target) -> str:
    if not target.auth:
        return "not used: SMTP authentication is off for this account"
    _check_auth_offered(client, target)
    if target.password is None:
        raise stages.no_password(target)
    mechanisms = client.server_auth_methods
    if target.oauth:
        method, name = client.auth_xoauth2, "XOAUTH2"
    else:
        # One mechanism only: aiosmtplib's login() would try each, counting several failures on the server.
        method, name = (client.auth_plain, "PLAIN") if "plain" in mechanisms else (client.auth_login, "LOGIN")
    try:
        await method(target.user, target.password.reveal())
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise _auth_refused(target, exc) from None
    except aiosmtplib.SMTPException:
        advice = "not a refusal: try again; if this repeats, check the login and the password"
        raise stages.interrupted("the login", _CUT, advice) from None
    return f"logged in as {target.user} ({name})"


def _auth_refused(target: Target, exc: aiosmtplib.SMTPAuthenticationError) -> StepFailed:
    """454 is temporary (RFC 4954); 538 (RFC 4954) and 530 "STARTTLS first" (RFC 3207) ask for TLS
    before a login; anything else refuses the credentials."""
    reply = _reply(exc)
    if 400 <= exc.code < 500:
        return stages.temporary_failure(target, "check logins", reply)
    if exc.code == 538 or _starttls_first(exc):
        return stages.clear_text_refused(target, reply)
    return stages.login_failure(target, reply)


def _starttls_first(exc: aiosmtplib.SMTPResponseException) -> bool:
    return exc.code == 530 and "starttls" in exc.message.lower()


async def _sender(client: aiosmtplib.SMTP, target: Target) -> None:
    try:
        await client.mail(target.email)
    except aiosmtplib.SMTPSenderRefused as exc:
        raise _sender_refused(target, exc) from None
    except aiosmtplib.SMTPException:
        advice = "not a refusal of the sender: try again; if this repeats, ask the server's administrator"
        raise stages.interrupted("MAIL FROM", _CUT, advice) from None
    with contextlib.suppress(aiosmtplib.SMTPException):
        await client.rset()


def _sender_refused(target: Target, exc: aiosmtplib.SMTPSenderRefused) -> StepFailed:
    """530 is "STARTTLS first" (RFC 3207) or "authenticate first" (RFC 4954): the text tells which."""
    reply = _reply(exc)
    if _starttls_first(exc):
        return StepFailed(
            "the server takes mail only after STARTTLS",
            fields=[target.field("security")],
            hint="use security starttls on this port",
            server_reply=reply,
        )
    if exc.code == 530 or "auth" in exc.message.lower():
        return StepFailed(
            "the server requires authentication, which is off for this account",
            fields=[target.field("auth")],
            hint="turn on SMTP authentication (--smtp-auth)",
            server_reply=reply,
        )
    if 400 <= exc.code < 500:
        return stages.temporary_failure(target, "take mail", reply)
    return StepFailed(
        f"the server refuses {target.email} as sender",
        fields=["email", target.login_field],
        hint="the server lets this login send only from its own addresses: use one of them as the "
        "address, or the login that owns this one",
        server_reply=reply,
    )


async def _fetch_certificate(target: Target, addresses: list[str]) -> bytes | None:
    """Read the rejected certificate over an unverified connection, for the report only."""
    try:
        sock = await _connect(target, addresses, 5.0)
    except StepFailed:
        return None
    client = _client(target, sock, tls.inspection_context(), 5.0)
    try:
        await client.connect()
        if target.security == "starttls":
            await client.starttls()
        obj = _ssl_object(client)
        return obj.getpeercert(binary_form=True) if obj else None
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError):
        return None
    finally:
        await _close(client)


async def _close(client: _Client) -> None:
    if client.is_connected:
        try:
            async with asyncio.timeout(2):
                await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()
    if client.sock is not None and not client.handed_over:
        client.sock.close()  # never given to a transport


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"


def _ehlo_reply(client: aiosmtplib.SMTP) -> str | None:
    """The server's answer to EHLO (its extensions), for a failure that the extensions explain."""
    response = client.last_ehlo_response
    return f"{response.code} {response.message}" if response is not None else None


def _describe(client: aiosmtplib.SMTP) -> str:
    mechanisms = ", ".join(m.upper() for m in client.server_auth_methods) or "none advertised"
    return f"ESMTP; login methods: {mechanisms}"
