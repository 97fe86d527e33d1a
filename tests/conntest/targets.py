"""Targets that reach the test servers, for driving the connection test's checks directly (R-A3)."""

from __future__ import annotations

import socket
from dataclasses import replace
from typing import Any

from bimmaild.accounts.secrets import Secret
from bimmaild.conntest.report import ServerReport, Step
from bimmaild.conntest.target import Target
from tests.servers.fixtures import MailServers

HOST = "127.0.0.1"


def imap_target(servers: MailServers, **changes: Any) -> Target:
    """The session Dovecot's implicit-TLS listener, trusted through its CA; ``changes`` as in ``replace``."""
    return replace(_target(servers, "imap", servers.dovecot.ports["imaps"], "ssl"), **changes)


def smtp_target(servers: MailServers, **changes: Any) -> Target:
    """The SMTP server's STARTTLS listener, with authentication; ``changes`` as in ``replace``."""
    return replace(_target(servers, "smtp", servers.smtp.ports["starttls"], "starttls"), **changes)


def _target(servers: MailServers, kind: str, port: int, security: str) -> Target:
    user = servers.user
    return Target(kind, HOST, port, security, user.login, Secret(user.password), user.login, ca_file=servers.ca_file)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def failed_step(report: ServerReport) -> Step:
    """The one failed step; every failed step says how to go on (a hint), whatever else it lacks."""
    step = report.failed
    assert step is not None, report.to_public()
    assert step.hint, f"no hint for {step.name}: {step.message}"
    return step
