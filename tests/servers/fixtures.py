"""Fixtures that start the test mail servers, for any test module to use.

They live here rather than in a conftest so that each conftest that wants them
imports them explicitly (``from tests.servers.fixtures import smtp_server``):
one definition, and a reader sees where a fixture comes from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.servers.smtp import SmtpServer
from tests.servers.tls import make_tls

SMTP_LOGIN = "alice@example.org"
SMTP_PASSWORD = "alice-smtp-pw"


@pytest.fixture
async def smtp_server(tmp_path: Path) -> AsyncIterator[SmtpServer]:
    """A started SMTP server: one user (alice), AUTH required, CA in ``smtp_server.tls.ca_file``."""
    tls = make_tls(tmp_path / "tls")
    async with SmtpServer.start(tls, users={SMTP_LOGIN: SMTP_PASSWORD}, auth_required=True) as server:
        yield server
    assert server.errors == [], "the test SMTP server failed while handling a command"
