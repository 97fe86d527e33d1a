"""Stages shared by the IMAP and SMTP checks, and the translation of failures into advice.

Every failure becomes a :class:`StepFailed` that says, in the user's terms,
what went wrong, which settings to change (``fields``) and how (``hint``).
The classification functions take exceptions and return values: no I/O,
so each diagnosis is unit-tested on its own.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bimmaild import tls
from bimmaild.conntest.report import ServerReport, Step, StepFailed
from bimmaild.conntest.target import Target

USUAL = {"imap": {"ssl": 993, "starttls": 143}, "smtp": {"ssl": 465, "starttls": 587}}


@dataclass
class StepResult:
    """What a successful step says; the step body fills it in."""

    message: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Runs the steps of one check in order and records each in the report."""

    def __init__(self, report: ServerReport) -> None:
        self.report = report

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[StepResult]:
        start = time.monotonic()
        result = StepResult()
        try:
            yield result
        except StepFailed as failure:
            self._add(Step(name, False, failure.message, failure.fields, failure.hint, failure.server_reply,
                           failure.details, refused=failure.refused), start)  # fmt: skip
            raise
        self._add(Step(name, True, result.message, details=result.details), start)

    def _add(self, step: Step, start: float) -> None:
        step.duration_ms = round((time.monotonic() - start) * 1000)
        self.report.steps.append(step)


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Addresses of ``host``, IPv4 first (what a connect tries in order)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = {str(info[4][0]) for info in infos}
    return sorted(addresses, key=lambda a: (":" in a, a))


async def resolve(target: Target, timeout: float, resolver: Resolver = system_resolver) -> list[str]:
    try:
        async with asyncio.timeout(timeout):
            addresses = await resolver(target.host, target.port)
    except TimeoutError:
        raise StepFailed(
            f"looking up {target.host} timed out",
            fields=[target.field("host")],
            hint="check the host name and this machine's DNS",
        ) from None
    except socket.gaierror as exc:
        raise StepFailed(
            f"the host name {target.host} cannot be resolved ({exc.strerror})",
            fields=[target.field("host")],
            hint="check the spelling of the server name",
        ) from None
    return addresses


def connect_failure(target: Target, exc: BaseException) -> StepFailed:
    port = target.port
    if isinstance(exc, ConnectionRefusedError):
        return StepFailed(
            f"connection refused on port {port}: nothing listens there",
            fields=[target.field("port")],
            hint=_usual_ports(target),
            refused=True,
        )
    if isinstance(exc, TimeoutError):
        return StepFailed(
            f"no answer on port {port} (the port is filtered, or this is the wrong host)",
            fields=[target.field("host"), target.field("port")],
            hint=_usual_ports(target),
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return StepFailed(
            f"{target.host} is unreachable: {exc.strerror}",
            fields=[target.field("host")],
            hint="check the host name, and this machine's network (a VPN or a firewall may stand in the way)",
        )
    return StepFailed(
        f"cannot connect to {target.host}:{port}: {exc}",
        fields=[target.field("host"), target.field("port")],
        hint="check the host name and the port; " + _usual_ports(target),
    )


def nothing_listens(target: Target, ports: list[int]) -> str:
    """The hint when every usual port of the host refused: the host, not the port, is likely wrong."""
    listed = ", ".join(str(p) for p in sorted(set(ports)))
    return f"nothing listens on any usual {target.label} port of {target.host} ({listed}): check the host name"


def _usual_ports(target: Target) -> str:
    usual = USUAL[target.kind]
    return f"usual {target.label} ports: {usual['ssl']} with ssl, {usual['starttls']} with starttls"


def tls_failure(target: Target, exc: BaseException) -> StepFailed:
    """A TLS handshake that failed for another reason than the certificate."""
    text = str(exc)
    plain_markers = ("WRONG_VERSION_NUMBER", "record layer failure", "http request", "packet length too long")
    security = target.field("security")
    if target.security == "ssl" and any(m.lower() in text.lower() for m in plain_markers):
        return StepFailed(
            f"port {target.port} answers in clear text, not TLS",
            fields=[security, target.field("port")],
            hint="this port wants security starttls; implicit TLS (ssl) is usually on port "
            f"{USUAL[target.kind]['ssl']}",
        )
    if isinstance(exc, TimeoutError):
        return StepFailed("the TLS handshake timed out", fields=[security], hint=_usual_ports(target))
    if isinstance(exc, ConnectionError | EOFError):
        return StepFailed(
            "the server closed the connection during the TLS handshake",
            fields=[security],
            hint="the server gave up on TLS here: it may want the other security on this port; " + _usual_ports(target),
        )
    return StepFailed(
        f"TLS handshake failed: {text}",
        fields=[security],
        hint="the server and this machine found no TLS version or cipher in common, or the server "
        "does not speak TLS this way; " + _usual_ports(target),
    )


def starttls_refused(target: Target, reply: str) -> StepFailed:
    """STARTTLS offered, then answered with an error: TLS is not to be had this way now."""
    return StepFailed(
        "the server offers STARTTLS but refused to start TLS; bimmail never falls back to clear text",
        fields=[target.field("security")],
        hint=f"use security ssl (usually port {USUAL[target.kind]['ssl']}), or try again later",
        server_reply=reply,
    )


def session_refused(target: Target, reply: str) -> StepFailed:
    """The server turned the client away in its greeting (IMAP BYE, SMTP 554)."""
    return StepFailed(
        "the server refused the session in its greeting",
        fields=[target.field("host"), target.field("port")],
        hint="the server may be busy (try again later), block this machine's address, or not serve "
        f"{target.label} clients on this port; " + _usual_ports(target),
        server_reply=reply,
    )


def clear_text_refused(target: Target, reply: str) -> StepFailed:
    """The server wants TLS before a login: a security setting found wrong only at login."""
    return StepFailed(
        "the server refuses to log in over clear text",
        fields=[target.field("security")],
        hint=f"use security starttls or ssl ({_usual_ports(target)})",
        server_reply=reply,
    )


def interrupted(what: str, how: str, advice: str, reply: str | None = None) -> StepFailed:
    """A step cut short (connection closed, no answer): not a refusal, so no setting is named."""
    return StepFailed(
        f"{what} did not complete: {how}",
        hint=f"the server stopped answering during {what}: {advice}",
        server_reply=reply,
    )


def temporary_failure(target: Target, what: str, reply: str) -> StepFailed:
    """The server cannot do ``what`` right now: no setting is wrong, so no field is named."""
    return StepFailed(
        f"the {target.label} server cannot {what} right now",
        hint="a temporary problem on the server's side; nothing in the settings is wrong: try again later",
        server_reply=reply,
    )


def certificate_failure(target: Target, exc: ssl.SSLCertVerificationError, der: bytes | None) -> StepFailed:
    """Why the certificate was rejected, with what it says about itself."""
    info = tls.describe_certificate(der) if der else {}
    names = ", ".join(info.get("names") or []) or "unknown names"
    code = exc.verify_code
    if code in tls.NAME_MISMATCH:
        return StepFailed(
            f"the certificate is not valid for {target.host}; it is for: {names}",
            fields=[target.field("host")],
            hint="use one of the certificate's names as the server host",
            details={"certificate": info},
        )
    if code in (tls.EXPIRED, tls.NOT_YET_VALID):
        when = info.get("not_after", "an unknown date")
        return StepFailed(
            f"the server's certificate is expired or not yet valid (valid until {when})",
            fields=[target.field("host")],
            hint="the server's administrator must renew it; if this host name is an old alias, "
            "use the provider's current server name",
            details={"certificate": info},
        )
    issuer = info.get("issuer", "an unknown issuer")
    what = "self-signed" if info.get("self_signed") else f"issued by {issuer}"
    fingerprint = info.get("sha256", "?")
    return StepFailed(
        f"the certificate is not trusted ({what}): {exc.verify_message}",
        fields=["tls_ca_file"],
        hint=f"if you trust this server, save its CA certificate (or its own, SHA-256 {fingerprint}) "
        "in a PEM file and set it with --tls-ca-file",
        details={"certificate": info},
    )


def greeting_timeout(target: Target) -> StepFailed:
    return StepFailed(
        f"connected, but the server sent no greeting on port {target.port}",
        fields=[target.field("security"), target.field("port")],
        hint=f"this port probably expects TLS from the first byte: use security ssl "
        f"(usually port {USUAL[target.kind]['ssl']})",
    )


def starttls_missing(target: Target, offered: str | None) -> StepFailed:
    """``offered``: the server's capability (IMAP) or extension (SMTP) list, which lacks STARTTLS."""
    return StepFailed(
        "the server does not offer STARTTLS on this port; bimmail never falls back to clear text",
        fields=[target.field("security")],
        hint=f"use security ssl (usually port {USUAL[target.kind]['ssl']}), or ask the server's administrator",
        server_reply=offered,
    )


def no_password(target: Target) -> StepFailed:
    hint = ("sign in again: bimmailctl account reauth" if target.oauth
            else "give the password (--password-stdin or --password-file)")  # fmt: skip
    message = "no access token: the account is not signed in" if target.oauth else "no password is set"
    return StepFailed(message, fields=[target.password_field], hint=hint)


def login_failure(target: Target, reply: str) -> StepFailed:
    hints = ["the access token was refused: sign in again (account reauth)" if target.oauth
             else "check the login and the password"]  # fmt: skip
    hints += list(target.preset_hints)
    return StepFailed(
        f"{target.label} login refused for {target.user}",
        fields=[target.login_field, target.password_field],
        hint="; ".join(hints),
        server_reply=reply,
    )
