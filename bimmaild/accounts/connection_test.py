"""From account settings to a connection test, and from a failed test to an error (R-A3).

The settings are a flat mapping by column (see ``model``), saved or not; the
passwords are by slot.  When ``account add`` runs the test and it fails, the
add is refused with the error class of the first failing step, naming the
first field to fix, and carrying the whole report in ``data.report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bimmaild.accounts.providers import Provider
from bimmaild.accounts.secrets import Secret
from bimmaild.conntest.report import Report, ServerReport, Step
from bimmaild.conntest.target import Target
from bimmaild.protocol.errors import AuthFailed, BimmailError, ServerError, ServerUnreachable, TlsFailure

_ERROR_BY_STEP: dict[str, type[BimmailError]] = {
    "dns": ServerUnreachable,
    "connect": ServerUnreachable,
    "tls": TlsFailure,
    "certificate": TlsFailure,
    "login": AuthFailed,
    "token": AuthFailed,
}


def targets(
    settings: Mapping[str, Any], passwords: Mapping[str, Secret | None], provider: Provider | None
) -> tuple[Target, Target]:
    """With OAuth2, ``passwords["password"]`` is the access token, for both servers."""
    separate = bool(settings["separate_auth"])
    email = str(settings["email"])
    hints = provider.hints if provider else ()
    oauth = settings.get("auth") == "oauth2"

    def target(kind: str, auth: bool) -> Target:
        login = settings[f"{kind}_login"] if separate else settings["login"]
        slot = f"{kind}_password" if separate and not oauth else "password"
        return Target(
            kind=kind,
            host=settings[f"{kind}_host"],
            port=settings[f"{kind}_port"],
            security=settings[f"{kind}_security"],
            user=login or email,
            password=passwords.get(slot),
            email=email,
            auth=auth,
            ca_file=settings["tls_ca_file"],
            login_field=f"{kind}.login" if separate else "login",
            password_field="oauth.flow" if oauth else f"{kind}.password" if separate else "password",
            preset_hints=tuple(hints),
            oauth=oauth,
        )

    return target("imap", True), target("smtp", bool(settings["smtp_auth"]))


def token_failure(settings: Mapping[str, Any], step: Step) -> Report:
    """The report of a test that could not get an access token: no server was contacted."""
    servers = []
    for kind in ("imap", "smtp"):
        server = ServerReport(kind, settings[f"{kind}_host"], settings[f"{kind}_port"], settings[f"{kind}_security"])
        server.steps.append(step)
        servers.append(server)
    return Report(servers[0], servers[1])


def failure_error(report: Report) -> BimmailError:
    """The error that refuses to save settings whose test failed."""
    parts = []
    first_class: type[BimmailError] | None = None
    for server in (report.imap, report.smtp):
        step = server.failed
        if step is None:
            continue
        parts.append(f"{server.server.upper()} {step.name}: {step.message}")
        if first_class is None:
            first_class = _ERROR_BY_STEP.get(step.name, ServerError)
    fields = report.fields
    fix = f" — fix {', '.join(fields)}" if fields else ""
    message = f"connection test failed: {'; '.join(parts)}{fix} (or save without testing)"
    error_class = first_class or ServerError
    return error_class(message, field=fields[0] if fields else None, data={"report": report.to_public()})
