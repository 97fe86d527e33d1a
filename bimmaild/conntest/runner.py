"""Run a connection test: IMAP and SMTP concurrently, then probe alternatives where useful.

When a server cannot be reached the way the account says (refused port, TLS
on a plain port, no STARTTLS …), or a later step blames the security setting
(no login offered before TLS, LOGINDISABLED, "STARTTLS first"), the usual
other ways are tried at once, each with a short timeout, and the report says
which one works ("port 465 refused; 587 with STARTTLS works").  For SMTP,
"authentication required but off" and "no authentication offered" are probed
by flipping the auth switch.  Clear text is never proposed unless the account
already uses it, and a probe never sends a password over it.

When the configured port and every usual port of the host refuse the
connection, the host name is named too: a host that resolves but serves no
mail (a typo that exists, an old server) looks exactly like that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bimmaild.conntest import imap_check, smtp_check, stages
from bimmaild.conntest.report import Alternative, Report, ServerReport, Step, StepFailed
from bimmaild.conntest.target import Target

log = logging.getLogger(__name__)

STEP_TIMEOUT = 5.0
PROBE_TIMEOUT = 3.0
# Steps whose failure means "wrong way in": worth trying the usual ports and securities.  A later
# step whose failure names the security setting is one too (see ``_ways``).
CONNECTION_STEPS = {"connect", "tls", "capabilities"}
USUAL_WAYS: dict[str, list[tuple[int, str]]] = {
    "imap": [(993, "ssl"), (143, "starttls")],
    "smtp": [(465, "ssl"), (587, "starttls"), (25, "starttls")],
}


@dataclass(frozen=True)
class Limits:
    """Timeouts, the usual (port, security) pairs worth probing, and the resolver.

    Tests point ``usual_ways`` at their own servers, and replace ``resolver`` to
    make a name fail without sending a DNS query off the machine.
    """

    step_timeout: float = STEP_TIMEOUT
    probe_timeout: float = PROBE_TIMEOUT
    usual_ways: Mapping[str, Sequence[tuple[int, str]]] = field(default_factory=lambda: USUAL_WAYS)
    resolver: stages.Resolver = stages.system_resolver

    @classmethod
    def for_timeout(cls, seconds: float) -> Limits:
        return cls(step_timeout=seconds, probe_timeout=min(PROBE_TIMEOUT, seconds))


async def run(imap: Target, smtp: Target, limits: Limits | None = None) -> Report:
    limits = limits or Limits()
    imap_report, smtp_report = await asyncio.gather(_server(imap, limits), _server(smtp, limits))
    return Report(imap_report, smtp_report)


async def _server(target: Target, limits: Limits) -> ServerReport:
    check = imap_check.check if target.kind == "imap" else smtp_check.check
    try:
        report = await check(target, limits.step_timeout, limits.resolver)
    except Exception as exc:  # a bug must not hide the other server's result
        log.exception("%s connection test failed unexpectedly", target.kind)
        report = ServerReport(target.kind, target.host, target.port, target.security)
        hint = "a bug in bimmaild, not a problem of the settings: its log has the details"
        report.steps.append(Step("internal", False, f"internal error: {exc.__class__.__name__}", hint=hint))
        return report
    failed = report.failed
    if failed is not None:
        report.alternatives = await _probe(target, failed, limits)
        report.suggestion = _suggestion(target, failed, report.alternatives)
        _blame_host(target, failed, report.alternatives)
    return report


def candidates(
    target: Target, usual_ways: Mapping[str, Sequence[tuple[int, str]]] = USUAL_WAYS
) -> list[tuple[int, str]]:
    """Other (port, security) pairs worth trying; never clear text unless already chosen."""
    ways = [*usual_ways[target.kind], (target.port, "ssl"), (target.port, "starttls")]
    if target.security == "none":
        ways.append((target.port, "none"))
    seen: list[tuple[int, str]] = []
    for way in ways:
        if way != (target.port, target.security) and way not in seen:
            seen.append(way)
    return seen


def _ways(target: Target, failed: Step, limits: Limits) -> list[tuple[Target, bool | None]]:
    """The variants worth trying after ``failed``, each with its auth flip (None: not flipped).

    Ports and securities when the way in is in doubt: a connection step failed,
    or any step named the security setting (SMTP "no AUTH before TLS", IMAP
    LOGINDISABLED, "530 STARTTLS first").  SMTP auth on/off when a step named it.
    """
    ways: list[tuple[Target, bool | None]] = []
    if failed.name in CONNECTION_STEPS or target.field("security") in failed.fields:
        ways += [(target.variant(port, security), None) for port, security in candidates(target, limits.usual_ways)]
    if target.kind == "smtp" and target.field("auth") in failed.fields and failed.name in ("login", "sender"):
        ways.append((target.variant(target.port, target.security, auth=not target.auth), not target.auth))
    return ways


async def _probe(target: Target, failed: Step, limits: Limits) -> list[Alternative]:
    ways = _ways(target, failed, limits)
    return list(await asyncio.gather(*(_try(variant, auth, limits) for variant, auth in ways)))


async def _try(variant: Target, auth: bool | None, limits: Limits) -> Alternative:
    try:
        message = await _reach(variant, auth is not None, limits)
        return Alternative(variant.port, variant.security, True, message, auth)
    except StepFailed as failure:
        return Alternative(variant.port, variant.security, False, failure.message, auth, refused=failure.refused)
    except Exception as exc:
        return Alternative(variant.port, variant.security, False, f"{exc.__class__.__name__}: {exc}", auth)


async def _reach(variant: Target, flipped: bool, limits: Limits) -> str:
    """Try one variant, as far as it can go without sending the password where the account does not.

    IMAP: up to the capabilities (a login is possible there).  SMTP without
    authentication: the whole check (MAIL FROM, then RSET: no password, nothing
    sent).  SMTP with authentication: up to EHLO and the AUTH offer, except the
    auth flip on the account's own port and security, which logs in (how else to
    tell "it works") — over TLS only: over clear text it stops at the AUTH offer.
    """
    timeout, resolver = limits.probe_timeout, limits.resolver
    if variant.kind == "imap":
        return await imap_check.probe(variant, timeout, resolver)
    if not variant.auth or (flipped and variant.security != "none"):
        return await smtp_check.probe_sender(variant, timeout, resolver)
    return await smtp_check.probe(variant, timeout, resolver)


def _blame_host(target: Target, failed: Step, alternatives: list[Alternative]) -> None:
    """Every usual port refused too: the host, more likely than the port, is wrong (R-A3)."""
    if not (failed.refused and alternatives and all(a.refused for a in alternatives)):
        return
    host = target.field("host")
    if host not in failed.fields:
        failed.fields.insert(0, host)
    failed.hint = stages.nothing_listens(target, [target.port, *(a.port for a in alternatives)])


def _suggestion(target: Target, failed: Step, alternatives: list[Alternative]) -> str | None:
    working = [a for a in alternatives if a.ok]
    if not working:
        return None
    best = working[0]
    if best.auth is not None:
        state = "on" if best.auth else "off"
        return f"{failed.message}; with SMTP authentication {state} it works"
    way = f"port {best.port} with {best.security.upper() if best.security != 'ssl' else 'SSL/TLS'}"
    return f"{failed.message}; {way} works"
