"""Real local users for the system daemon's tests (R-L3), and a way to act as them.

The fixture creates (when root, which CI is) three users and an admin group
with ``useradd``/``groupadd``, and removes them at the end of the session;
users left by an interrupted run are reused.  Clients run as those users
through ``tests.servers.as_user``: the daemon knows them only by the uid the
kernel reports for the socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CtlResult

ADMIN_GROUP = "bimtest-admin"
PREFIX = "bimtest-"
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalUser:
    name: str
    uid: int

    async def ctl(self, socket_path: Path, *args: str, stdin: str | None = None) -> CtlResult:
        """``bimmailctl --socket SOCKET ARGS`` as this user."""
        return await _run([self.name, "--", "ctl", "--socket", str(socket_path), *args], stdin)

    async def raw(self, socket_path: Path, *calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Protocol calls on one connection as this user, the first being the hello: each
        answer as {"result": …} or {"error": …}."""
        done = await _run([self.name, "--", "raw", str(socket_path), json.dumps(calls)], None)
        assert done.code == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]


async def _run(args: list[str], stdin: str | None) -> CtlResult:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.servers.as_user", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else b""), 30)
    assert proc.returncode is not None
    return CtlResult(proc.returncode, out.decode(), err.decode())


@dataclass(frozen=True)
class LocalUsers:
    alice: LocalUser
    bob: LocalUser
    carol: LocalUser  # a member of the admin group
    admin_group: str


def _ensure_user(name: str, groups: list[str]) -> LocalUser:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group",
             *(["--groups", ",".join(groups)] if groups else []), name],
            check=True, capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(name)
    return LocalUser(name, entry.pw_uid)


@pytest.fixture(scope="session")
def local_users() -> Iterator[LocalUsers]:
    if os.geteuid() != 0:
        pytest.skip("creating local users needs root (CI runs the tests as root)")
    subprocess.run(["groupadd", "--force", "--system", ADMIN_GROUP], check=True, capture_output=True)
    users = LocalUsers(
        _ensure_user(PREFIX + "alice", []),
        _ensure_user(PREFIX + "bob", []),
        _ensure_user(PREFIX + "carol", [ADMIN_GROUP]),
        ADMIN_GROUP,
    )
    try:
        yield users
    finally:
        for user in (users.alice, users.bob, users.carol):
            subprocess.run(["userdel", user.name], check=False, capture_output=True)
        subprocess.run(["groupdel", ADMIN_GROUP], check=False, capture_output=True)
