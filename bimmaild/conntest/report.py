"""What a connection test reports: steps, offending fields, alternatives that work.

A check runs its steps in order and stops at the first failure, which it
raises as :class:`StepFailed`; the runner records it.  The report is plain
data (``to_public``) for the protocol; the ctl renders it as a checklist.
Step names are stable identifiers for front-ends:

IMAP: dns, connect, tls, certificate, capabilities, login, folders
SMTP: dns, connect, tls, certificate, capabilities, login, sender
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class StepFailed(Exception):
    """The step failed; ``fields`` are the settings to fix (protocol paths).

    ``message`` is our own words; what the server said goes to ``server_reply``, so that
    a front-end can show (and sanitise) it as the server's.  ``refused``: the TCP connection
    was refused, which the runner weighs against the other ports it probes (a host where
    nothing listens anywhere is the likelier mistake).
    """

    def __init__(
        self,
        message: str,
        *,
        fields: list[str] | None = None,
        hint: str | None = None,
        server_reply: str | None = None,
        details: dict[str, Any] | None = None,
        refused: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []
        self.hint = hint
        self.server_reply = server_reply
        self.details = details or {}
        self.refused = refused


@dataclass
class Step:
    name: str
    ok: bool
    message: str
    fields: list[str] = field(default_factory=list)
    hint: str | None = None
    server_reply: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    duration_ms: int = 0
    refused: bool = False  # internal (see StepFailed): not in the protocol's report

    def to_public(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "ok": self.ok,
            "message": self.message,
            "fields": self.fields,
            "hint": self.hint,
            "server_reply": self.server_reply,
            "details": self.details,
            "duration_ms": self.duration_ms,
        }


@dataclass
class Alternative:
    """A probed other way to reach the server (port/security, or SMTP auth on/off)."""

    port: int
    security: str
    ok: bool
    message: str
    auth: bool | None = None
    refused: bool = False  # internal (see StepFailed): not in the protocol's report

    def to_public(self) -> dict[str, Any]:
        return {"port": self.port, "security": self.security, "auth": self.auth, "ok": self.ok, "message": self.message}


@dataclass
class ServerReport:
    server: str  # "imap" | "smtp"
    host: str
    port: int
    security: str
    steps: list[Step] = field(default_factory=list)
    alternatives: list[Alternative] = field(default_factory=list)
    suggestion: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if not s.ok), None)

    def to_public(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "ok": self.ok,
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "steps": [s.to_public() for s in self.steps],
            "failed_step": failed.name if failed else None,
            "fields": failed.fields if failed else [],
            "alternatives": [a.to_public() for a in self.alternatives],
            "suggestion": self.suggestion,
        }


@dataclass
class Report:
    imap: ServerReport
    smtp: ServerReport

    @property
    def ok(self) -> bool:
        return self.imap.ok and self.smtp.ok

    @property
    def fields(self) -> list[str]:
        out: list[str] = []
        for server in (self.imap, self.smtp):
            failed = server.failed
            for name in failed.fields if failed else []:
                if name not in out:
                    out.append(name)
        return out

    def to_public(self) -> dict[str, Any]:
        return {"ok": self.ok, "fields": self.fields, "imap": self.imap.to_public(), "smtp": self.smtp.to_public()}
