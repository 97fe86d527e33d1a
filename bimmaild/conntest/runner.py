"""Run a connection test: IMAP and SMTP concurrently, then probe alternatives where useful.

When a server cannot be reached the way the account says (refused port, TLS
on a plain port, no STARTTLS …), the usual other ways are tried at once, each
with a short timeout, and the report says which one works ("port 465
refused; 587 with STARTTLS works").  For SMTP, "authentication required but
off" and "no authentication offered" are probed by flipping the auth switch.
Clear text is never proposed unless the account already uses it.
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
# Steps whose failure means "wrong way in": worth trying the usual ports and securities.
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
        report.steps.append(Step("internal", False, f"internal error: {exc.__class__.__name__}"))
        return report
    failed = report.failed
    if failed is not None:
        report.alternatives = await _probe(target, failed, limits)
        report.suggestion = _suggestion(target, failed, report.alternatives)
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


async def _probe(target: Target, failed: Step, limits: Limits) -> list[Alternative]:
    ways: list[tuple[Target, bool | None]]
    if failed.name in CONNECTION_STEPS:
        ways = [(target.variant(port, security), None) for port, security in candidates(target, limits.usual_ways)]
    elif target.kind == "smtp" and "smtp.auth" in failed.fields and failed.name in ("login", "sender"):
        ways = [(target.variant(target.port, target.security, auth=not target.auth), not target.auth)]
    else:
        return []
    results = await asyncio.gather(*(_try(variant, auth, limits) for variant, auth in ways))
    return list(results)


async def _try(variant: Target, auth: bool | None, limits: Limits) -> Alternative:
    timeout, resolver = limits.probe_timeout, limits.resolver
    try:
        if auth is not None:
            message = await smtp_check.probe_sender(variant, timeout, resolver)
        elif variant.kind == "imap":
            message = await imap_check.probe(variant, timeout, resolver)
        else:
            message = await smtp_check.probe(variant, timeout, resolver)
        return Alternative(variant.port, variant.security, True, message, auth)
    except StepFailed as failure:
        return Alternative(variant.port, variant.security, False, failure.message, auth)
    except Exception as exc:
        return Alternative(variant.port, variant.security, False, f"{exc.__class__.__name__}: {exc}", auth)


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
