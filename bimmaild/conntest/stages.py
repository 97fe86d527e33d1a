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
                           failure.details), start)  # fmt: skip
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
        )
    if isinstance(exc, TimeoutError):
        return StepFailed(
            f"no answer on port {port} (the port is filtered, or this is the wrong host)",
            fields=[target.field("host"), target.field("port")],
            hint=_usual_ports(target),
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return StepFailed(f"{target.host} is unreachable: {exc.strerror}", fields=[target.field("host")])
    return StepFailed(
        f"cannot connect to {target.host}:{port}: {exc}", fields=[target.field("host"), target.field("port")]
    )


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
        return StepFailed("the server closed the connection during the TLS handshake", fields=[security])
    return StepFailed(f"TLS handshake failed: {text}", fields=[security])


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
            fields=[],
            hint="the server's administrator must renew it",
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


def starttls_missing(target: Target) -> StepFailed:
    return StepFailed(
        "the server does not offer STARTTLS on this port; bimmail never falls back to clear text",
        fields=[target.field("security")],
        hint=f"use security ssl (usually port {USUAL[target.kind]['ssl']}), or ask the server's administrator",
    )


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
