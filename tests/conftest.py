"""Shared fixtures: a real daemon in-process on a private socket, and a client.

The daemon runs in the test's event loop (pueue's integration-test pattern),
on a socket in a short temporary directory (AF_UNIX paths are limited to 108
bytes, too short for pytest's tmp_path) and a data dir under tmp_path.  Tests
talk to it only through the real socket: ``bimmailctl.Client`` or the
``bimmailctl`` command itself (``tests.helpers.run_ctl``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bimmailctl.client import Client
from tests.helpers import RunningDaemon, daemon_config, start_daemon, stop_daemon
from tests.servers.dovecot import Dovecot, ImapUser
from tests.servers.fixtures import mail_servers, oauth_dovecot, oauth_server, oauth_servers, smtp_server

__all__ = [
    "mail_servers",
    "oauth_dovecot",
    "oauth_server",
    "oauth_servers",
    "smtp_server",
]  # fixtures defined with the servers, registered here


@pytest.fixture(scope="session", autouse=True)
def private_config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Daemons started as processes read config.toml from the user config dir: never the
    developer's own (platformdirs follows $XDG_CONFIG_HOME)."""
    previous = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config-home"))
    yield
    if previous is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = previous


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def daemon(short_dir: Path, tmp_path: Path) -> AsyncIterator[RunningDaemon]:
    running = await start_daemon(daemon_config(short_dir, tmp_path))
    try:
        yield running
    finally:
        await stop_daemon(running)


@pytest.fixture
async def client(daemon: RunningDaemon) -> AsyncIterator[Client]:
    async with await Client.connect(daemon.socket_path, client_name="pytest") as c:
        yield c


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One real Dovecot for the whole session; tests isolate themselves by user (imap_user)."""
    with Dovecot.running() as server:
        yield server


@pytest.fixture
def imap_user(dovecot: Dovecot) -> ImapUser:
    """A fresh IMAP user with an empty mailbox (INBOX, Sent, Drafts, Junk, Trash, Archive)."""
    return dovecot.add_user()
