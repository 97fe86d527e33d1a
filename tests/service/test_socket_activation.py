"""Socket activation end to end without a service manager: systemd-socket-activate listens as the
.socket unit would, starts bimmaild on the first connection and hands it the listening socket
(LISTEN_FDS); bimmailctl, the first client, is served by the daemon it woke up."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.helpers import BIN_DIR, run_ctl

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate") or shutil.which(
    "systemd-socket-activate", path="/usr/bin:/bin"
)

pytestmark = pytest.mark.skipif(
    SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed (Debian package systemd)"
)


@asynccontextmanager
async def activator(sock: Path, log: Path, *daemon_args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """systemd-socket-activate listening on ``sock``; bimmaild is started only when a client comes."""
    assert SOCKET_ACTIVATE is not None
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            SOCKET_ACTIVATE, "-l", str(sock), str(BIN_DIR / "bimmaild"), *daemon_args, stdout=out, stderr=out
        )
    try:
        for _ in range(200):  # it prints "Listening on …" once bound
            if sock.exists():
                break
            await asyncio.sleep(0.01)
        assert sock.exists(), log.read_text()
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_first_ctl_call_starts_the_daemon(short_dir: Path, tmp_path: Path) -> None:
    sock, log, data = short_dir / "activated.sock", tmp_path / "activate.log", tmp_path / "data"
    unused = short_dir / "own" / "bimmaild.sock"  # where the daemon would bind on its own
    async with activator(sock, log, "--socket", str(unused), "--data-dir", str(data), "--secret-backend", "file") as p:
        assert not data.exists(), "nothing runs before the first client"
        status = await run_ctl(sock, "status")
        assert status.code == 0, status.stderr + log.read_text()
        assert f"pid {p.pid}, running" in status.stdout, "the activator became bimmaild (exec, same pid)"
        assert f"data dir      {data}" in status.stdout
        assert (await run_ctl(sock, "account", "list")).code == 0  # the same daemon serves the next ones
        assert not unused.exists(), "the daemon adopted the passed socket instead of binding its own"
        p.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(p.wait(), 15) == 0
    assert "Execing " in log.read_text()
    assert sock.exists(), "the socket belongs to whoever passed it, never unlinked by the daemon"


@pytest.mark.skipif(os.geteuid() != 0, reason="the system daemon runs as root (CI runs the tests as root)")
async def test_system_daemon_is_socket_activated_too(short_dir: Path, tmp_path: Path) -> None:
    """bimmaild --system (bimmaild-system.socket's service) adopts the socket the same way and creates
    no /run/bimmail of its own: the socket unit owns that directory."""
    sock, log, data = short_dir / "system.sock", tmp_path / "activate.log", tmp_path / "data"
    run_dir_before = Path("/run/bimmail").exists()
    async with activator(sock, log, "--system", "--data-dir", str(data)) as p:
        status = await run_ctl(sock, "status")
        assert status.code == 0, status.stderr + log.read_text()
        assert f"pid {p.pid}, running" in status.stdout
        p.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(p.wait(), 15) == 0
    assert Path("/run/bimmail").exists() == run_dir_before
