"""The SMTP half of a connection test (R-A3, R-B1), over one real connection with aiosmtplib.

dns → connect → tls (implicit, or STARTTLS offered and upgraded: always
``start_tls`` explicitly, aiosmtplib's default is opportunistic) →
certificate → capabilities (EHLO) → login (AUTH, when the account uses it)
→ sender (MAIL FROM the account's address, then RSET: nothing is sent).
The sender step is what reveals "the server requires authentication but the
account has it off": servers answer 530 there.
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
        return _describe(client)
    finally:
        await _close(client)


async def probe_sender(target: Target, timeout: float, resolver: stages.Resolver = stages.system_resolver) -> str:
    """Like check, up to the sender step, with ``target``'s auth setting; raises StepFailed."""
    report = await check(target, timeout, resolver)
    failed = report.failed
    if failed is not None:
        raise StepFailed(failed.message, fields=failed.fields)
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
        raise StepFailed(
            f"the server refused the session: {exc.code} {exc.message}", server_reply=exc.message
        ) from None
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, ssl.SSLError, OSError) as exc:
        rejected = _cert_error(exc)
        if rejected is not None:
            raise rejected from None
        raise stages.tls_failure(target, exc.__cause__ or exc) from None


async def _starttls(client: aiosmtplib.SMTP, target: Target) -> None:
    if not client.supports_extension("starttls"):
        raise stages.starttls_missing(target)
    try:
        await client.starttls()
    except ssl.SSLCertVerificationError:
        raise
    except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
        rejected = _cert_error(exc)
        if rejected is not None:
            raise rejected from None
        raise stages.tls_failure(target, exc) from None


async def _ehlo(client: aiosmtplib.SMTP, target: Target) -> None:
    try:
        await client.ehlo()
    except aiosmtplib.SMTPResponseException as exc:
        raise StepFailed(f"the server refused EHLO: {exc.code} {exc.message}", server_reply=exc.message) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise StepFailed(f"the server closed the session after the greeting: {exc}") from None


async def _login(client: aiosmtplib.SMTP, target: Target) -> str:
    if not target.auth:
        return "not used: SMTP authentication is off for this account"
    mechanisms = client.server_auth_methods
    if not mechanisms:
        hint = "turn off SMTP authentication if this server needs none"
        if target.security == "none":
            hint = "servers often offer authentication only after TLS: use starttls or ssl; or " + hint
        raise StepFailed(
            "the server offers no authentication on this connection",
            fields=[target.field("auth"), target.field("security")],
            hint=hint,
        )
    if target.password is None:
        raise StepFailed("no password is set", fields=[target.password_field])
    if target.oauth:
        if "xoauth2" not in mechanisms:
            raise StepFailed("the server offers no OAuth2 login (AUTH XOAUTH2)", fields=[target.field("auth")])
        try:
            await client.auth_xoauth2(target.user, target.password.reveal())
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise stages.login_failure(target, f"{exc.code} {exc.message}") from None
        except aiosmtplib.SMTPException as exc:
            raise StepFailed(f"authentication failed: {exc}", fields=[target.password_field]) from None
        return f"logged in as {target.user} (XOAUTH2)"
    # One mechanism only: aiosmtplib's login() would try each, counting several failures on the server.
    method = client.auth_plain if "plain" in mechanisms else client.auth_login
    try:
        await method(target.user, target.password.reveal())
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise stages.login_failure(target, f"{exc.code} {exc.message}") from None
    except aiosmtplib.SMTPException as exc:
        raise StepFailed(f"authentication failed: {exc}", fields=[target.login_field, target.password_field]) from None
    return f"logged in as {target.user} ({'PLAIN' if 'plain' in mechanisms else 'LOGIN'})"


async def _sender(client: aiosmtplib.SMTP, target: Target) -> None:
    try:
        await client.mail(target.email)
    except aiosmtplib.SMTPSenderRefused as exc:
        reply = f"{exc.code} {exc.message}"
        if exc.code == 530 or "auth" in exc.message.lower():
            raise StepFailed(
                "the server requires authentication, which is off for this account",
                fields=[target.field("auth")],
                hint="turn on SMTP authentication (--smtp-auth)",
                server_reply=reply,
            ) from None
        raise StepFailed(
            f"the server refuses {target.email} as sender",
            fields=["email", target.login_field],
            server_reply=reply,
        ) from None
    except aiosmtplib.SMTPException as exc:
        raise StepFailed(f"MAIL FROM failed: {exc}") from None
    with contextlib.suppress(aiosmtplib.SMTPException):
        await client.rset()


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


def _describe(client: aiosmtplib.SMTP) -> str:
    mechanisms = ", ".join(m.upper() for m in client.server_auth_methods) or "none advertised"
    return f"ESMTP; login methods: {mechanisms}"
