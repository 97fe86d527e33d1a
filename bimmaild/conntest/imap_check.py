"""The IMAP half of a connection test (R-A3), step by step over one real connection.

dns → connect → tls (implicit, or STARTTLS offered and upgraded) →
certificate → capabilities → login → folders.  ``probe`` is the same without
login, used to try the usual alternatives when connecting fails.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

from bimmaild import tls
from bimmaild.conntest import stages
from bimmaild.conntest.report import ServerReport, StepFailed
from bimmaild.conntest.target import Target
from bimmaild.imap.connection import (
    AuthenticationFailed,
    CommandFailed,
    ImapConnection,
    ImapConnectionLost,
    ImapError,
    ImapProtocolError,
    ImapTimeout,
    LoginDisabled,
    StartTlsUnavailable,
)


async def check(target: Target, timeout: float, resolver: stages.Resolver = stages.system_resolver) -> ServerReport:
    report = ServerReport("imap", target.host, target.port, target.security)
    rec = stages.Recorder(report)
    conn: ImapConnection | None = None
    try:
        async with rec.step("dns") as step:
            addresses = await stages.resolve(target, timeout, resolver)
            step.message = f"{target.host} is {', '.join(addresses)}"
        async with rec.step("connect") as step:
            conn = await _connect(target, addresses, timeout)
            step.message = f"connected to port {target.port}"
        await _secure(rec, conn, target)
        async with rec.step("capabilities") as step:
            if target.security == "ssl" or target.security == "none":
                await _greeting(conn, target)
            step.message = _describe_capabilities(conn)
            step.details = {"capabilities": sorted(conn.capabilities), "auth_mechanisms": conn.auth_mechanisms}
        async with rec.step("login") as step:
            step.message = await _login(conn, target)
        async with rec.step("folders") as step:
            try:
                folders = await conn.list_folders()
            except ImapError as exc:
                raise StepFailed(f"listing folders failed: {exc}") from None
            step.message = f"{len(folders)} folders"
    except StepFailed:
        pass
    finally:
        if conn is not None:
            await conn.logout()
    return report


async def probe(target: Target, timeout: float, resolver: stages.Resolver = stages.system_resolver) -> str:
    """Connect and secure as ``target`` says, without logging in; raises StepFailed."""
    conn = await _connect(target, await stages.resolve(target, timeout, resolver), timeout)
    try:
        if target.security == "ssl":
            await _upgrade(conn, target, lambda: conn.start_tls(tls.client_context(target.ca_file)))
        await _greeting(conn, target)
        if target.security == "starttls":
            await _upgrade(conn, target, lambda: conn.starttls(tls.client_context(target.ca_file)))
        return _describe_capabilities(conn)
    finally:
        await conn.aclose()


async def _connect(target: Target, addresses: list[str], timeout: float) -> ImapConnection:
    last: BaseException = ConnectionRefusedError()
    for address in addresses:
        try:
            return await ImapConnection.connect_tcp(target.host, target.port, timeout, address=address)
        except ImapTimeout:
            last = TimeoutError()
        except OSError as exc:
            last = exc
    raise stages.connect_failure(target, last)


async def _secure(rec: stages.Recorder, conn: ImapConnection, target: Target) -> None:
    """The tls and certificate steps (nothing when security is none)."""
    if target.security == "none":
        return
    context = tls.client_context(target.ca_file)
    rejected: ssl.SSLCertVerificationError | None = None
    async with rec.step("tls") as step:
        try:
            if target.security == "ssl":
                await _upgrade(conn, target, lambda: conn.start_tls(context))
            else:
                await _greeting(conn, target)
                await _upgrade(conn, target, lambda: conn.starttls(context))
        except ssl.SSLCertVerificationError as exc:
            rejected = exc
        info = conn.tls_info
        step.message = "TLS negotiated" + (f" ({info.version}, {info.cipher})" if info else "")
        if target.security == "starttls":
            step.message = "STARTTLS offered; " + step.message
    async with rec.step("certificate") as step:
        if rejected is not None:
            address = conn.transport.get_extra_info("peername")[0]
            raise stages.certificate_failure(target, rejected, await _fetch_certificate(target, address))
        der = conn.tls_info.peer_certificate if conn.tls_info else None
        step.details = {"certificate": tls.describe_certificate(der)} if der else {}
        step.message = f"valid for {target.host}"


async def _upgrade(conn: ImapConnection, target: Target, upgrade: Callable[[], Awaitable[None]]) -> None:
    try:
        await upgrade()
    except ssl.SSLCertVerificationError:
        raise
    except StartTlsUnavailable:
        raise stages.starttls_missing(target) from None
    except ImapTimeout:
        raise stages.tls_failure(target, TimeoutError()) from None
    except (ssl.SSLError, ImapConnectionLost, ConnectionError) as exc:
        raise stages.tls_failure(target, exc) from None
    except CommandFailed as exc:
        raise StepFailed(f"STARTTLS refused: {exc.text}", fields=[target.field("security")]) from None


async def _greeting(conn: ImapConnection, target: Target) -> None:
    try:
        await conn.wait_greeting()
    except ImapTimeout:
        raise stages.greeting_timeout(target) from None
    except ImapProtocolError as exc:
        raise StepFailed(
            f"the server on port {target.port} is not an IMAP server ({exc})",
            fields=[target.field("port")],
            hint=stages._usual_ports(target),
        ) from None
    except (ImapConnectionLost, CommandFailed) as exc:
        raise StepFailed(f"the server refused the session: {exc}", fields=[target.field("security")]) from None


async def _login(conn: ImapConnection, target: Target) -> str:
    if target.password is None:
        raise StepFailed("no password is set", fields=[target.password_field])
    try:
        if target.oauth:
            return f"logged in as {target.user} ({await conn.login_oauth(target.user, target.password.reveal())})"
        await conn.login(target.user, target.password.reveal())
        return f"logged in as {target.user}"
    except AuthenticationFailed as exc:
        if exc.unavailable:
            raise StepFailed(
                "the server cannot check logins right now (UNAVAILABLE): try again later", server_reply=exc.text
            ) from None
        raise stages.login_failure(target, exc.text) from None
    except LoginDisabled:
        raise StepFailed(
            "the server refuses to log in over clear text",
            fields=[target.field("security")],
            hint="use security starttls or ssl",
        ) from None
    except ImapError as exc:
        raise StepFailed(f"login failed: {exc}", fields=[target.login_field, target.password_field]) from None


async def _fetch_certificate(target: Target, address: str) -> bytes | None:
    """Read the rejected certificate over an unverified connection, for the report only."""
    try:
        conn = await ImapConnection.connect_tcp(target.host, target.port, 5.0, address=address)
    except (OSError, ImapError):
        return None
    try:
        if target.security == "ssl":
            await conn.start_tls(tls.inspection_context())
        else:
            await conn.wait_greeting()
            await conn.starttls(tls.inspection_context())
        info = conn.tls_info
        return info.peer_certificate if info else None
    except (OSError, ImapError, ssl.SSLError):
        return None
    finally:
        await conn.aclose()


def _describe_capabilities(conn: ImapConnection) -> str:
    mechanisms = ", ".join(conn.auth_mechanisms) or "none advertised"
    version = "IMAP4rev2" if "IMAP4REV2" in conn.capabilities else "IMAP4rev1"
    return f"{version}; login methods: {mechanisms}"
