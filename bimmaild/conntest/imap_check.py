"""The IMAP half of a connection test (R-A3), step by step over one real connection.

dns → connect → tls (implicit, or STARTTLS offered and upgraded) →
certificate → capabilities → login → folders.  ``probe`` is the same without
login, used to try the usual alternatives: it goes as far as knowing whether
the server would take a login there (no LOGINDISABLED), never sending one.
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
            folders = await _folders(conn)
            step.message = f"{len(folders)} folders"
    except StepFailed:
        pass
    finally:
        if conn is not None:
            await _close(conn, logout=True)
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
        _check_login_offered(conn, target)
        return _describe_capabilities(conn)
    finally:
        await _close(conn, logout=False)


async def _close(conn: ImapConnection, *, logout: bool) -> None:
    """LOGOUT (or not) and close; a connection already lost is only released.

    Lost during a TLS upgrade, the connection's protocol never hears of it (asyncio
    tells the TLS layer only), and waiting for that would cost ``aclose``'s 2 s.
    """
    if conn.transport.is_closing():
        conn.close()
    elif logout:
        await conn.logout()
    else:
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
        raise stages.starttls_missing(target, _capability_line(conn)) from None
    except ImapTimeout:
        raise stages.tls_failure(target, TimeoutError()) from None
    except (ssl.SSLError, ImapConnectionLost, ConnectionError) as exc:
        raise stages.tls_failure(target, exc) from None
    except CommandFailed as exc:
        raise stages.starttls_refused(target, f"{exc.result} {exc.text}") from None


async def _greeting(conn: ImapConnection, target: Target) -> None:
    try:
        await conn.wait_greeting()
    except ImapTimeout:
        raise stages.greeting_timeout(target) from None
    except ImapProtocolError:
        raise StepFailed(
            f"the server on port {target.port} is not an IMAP server",
            fields=[target.field("port")],
            hint=stages._usual_ports(target),
            server_reply=_said(conn.protocol.greeting_line),
        ) from None
    except CommandFailed as exc:  # a BYE greeting
        raise stages.session_refused(target, f"* BYE {exc.text}") from None
    except ImapConnectionLost:
        raise StepFailed(
            "the server closed the connection before its greeting",
            fields=[target.field("port"), target.field("security")],
            hint="the server may limit connections from one address (try again later), or this port is "
            f"not for IMAP; {stages._usual_ports(target)}",
        ) from None


def _check_login_offered(conn: ImapConnection, target: Target) -> None:
    """Refuse before trying when the capabilities already say the login cannot work here.

    Mirrors ``ImapConnection.login``: AUTHENTICATE PLAIN with SASL-IR goes even
    under LOGINDISABLED, LOGIN does not.  A security setting found wrong only at
    this point still names ``*.security``, so the runner probes the other ways in.
    """
    caps = conn.capabilities
    if target.oauth:
        if not {"AUTH=OAUTHBEARER", "AUTH=XOAUTH2"} & caps:
            raise StepFailed(
                "the server offers no OAuth2 login (AUTH=OAUTHBEARER or AUTH=XOAUTH2)",
                fields=["auth"],
                hint="sign in with a password on this server (--auth password)",
                server_reply=_capability_line(conn),
            )
    elif "LOGINDISABLED" in caps and not {"AUTH=PLAIN", "SASL-IR"} <= caps:
        raise stages.clear_text_refused(target, _capability_line(conn))


async def _login(conn: ImapConnection, target: Target) -> str:
    if target.password is None:
        raise stages.no_password(target)
    _check_login_offered(conn, target)
    try:
        if target.oauth:
            return f"logged in as {target.user} ({await conn.login_oauth(target.user, target.password.reveal())})"
        await conn.login(target.user, target.password.reveal())
        return f"logged in as {target.user}"
    except AuthenticationFailed as exc:
        reply = f"{exc.result} {exc.text}"
        if exc.unavailable:
            raise stages.temporary_failure(target, "check logins", reply) from None
        if "[PRIVACYREQUIRED]" in exc.text.upper():  # RFC 5530: TLS first (Dovecot's plaintext refusal)
            raise stages.clear_text_refused(target, reply) from None
        raise stages.login_failure(target, reply) from None
    except ImapError as exc:
        raise _broken(conn, exc, "the login", "not a refusal: try again; if this repeats, check the login "
                      "and the password") from None  # fmt: skip


async def _folders(conn: ImapConnection) -> list[bytes]:
    """LIST after a successful login: the settings got this far, so a failure here is the
    server's own and names no field."""
    try:
        return await conn.list_folders()
    except CommandFailed as exc:
        raise StepFailed(
            "the server accepted the login but refused to list the folders",
            hint="the settings are right up to the login; the mailbox has a problem on the server: "
            "try again later, or ask its administrator",
            server_reply=f"{exc.result} {exc.text}",
        ) from None
    except ImapError as exc:
        raise _broken(conn, exc, "listing the folders", "try again") from None


def _broken(conn: ImapConnection, exc: ImapError, what: str, advice: str) -> StepFailed:
    """A command cut short (timeout, connection lost): no setting to blame; the server's BYE if any."""
    how = "the server did not answer in time" if isinstance(exc, ImapTimeout) else "the connection closed"
    bye = conn.protocol.bye
    return stages.interrupted(what, how, advice, f"* BYE {bye}" if bye else None)


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


def _capability_line(conn: ImapConnection) -> str:
    """What the server announced, as a reply to show (its capabilities, in its CAPABILITY form)."""
    return "CAPABILITY " + " ".join(sorted(conn.capabilities))


def _said(line: bytes) -> str:
    return line[:200].decode("utf-8", "replace").rstrip("\r\n")


def _describe_capabilities(conn: ImapConnection) -> str:
    mechanisms = ", ".join(conn.auth_mechanisms) or "none advertised"
    version = "IMAP4rev2" if "IMAP4REV2" in conn.capabilities else "IMAP4rev1"
    return f"{version}; login methods: {mechanisms}"
