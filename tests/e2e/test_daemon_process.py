"""bimmaild as a real process: start, readiness, signals, restart, refusal, socket activation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bimmailctl.client import Client
from tests.helpers import BIN_DIR, account_params, run_ctl

BIMMAILD = str(BIN_DIR / "bimmaild")

# Hands the listening socket over as fd 3 with LISTEN_PID = our pid, then becomes
# bimmaild: what systemd does for a .socket unit.
ACTIVATE = (
    "import os, sys\n"
    "os.dup2(int(sys.argv[1]), 3)\n"
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES='control')\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


@dataclass
class Notifications:
    """A fake systemd NOTIFY_SOCKET: collects what the daemon reports."""

    sock: socket.socket
    seen: list[str] = field(default_factory=list)

    async def wait_for(self, state: str, timeout: float = 15) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while not any(state in s.split("\n") for s in self.seen):
                self.seen.append((await loop.sock_recv(self.sock, 4096)).decode())


@dataclass
class Proc:
    process: asyncio.subprocess.Process
    notify: Notifications
    log: Path

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 15)


@pytest.fixture
def notify_socket(short_dir: Path) -> Iterator[Notifications]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(short_dir / "notify"))
        sock.setblocking(False)
        yield Notifications(sock)


@asynccontextmanager
async def bimmaild(
    sock_path: Path,
    data_dir: Path,
    notify: Notifications,
    *argv_prefix: str,
    pass_fds: tuple[int, ...] = (),
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> AsyncIterator[Proc]:
    log = data_dir.parent / f"{data_dir.name}.log"
    notify.seen.clear()  # only this process's READY counts
    env = {**os.environ, "NOTIFY_SOCKET": notify.sock.getsockname(), **(extra_env or {})}
    args = [
        BIMMAILD,
        "--socket",
        str(sock_path),
        "--data-dir",
        str(data_dir),
        "--log-level",
        "debug",
        "--secret-backend",
        "file",
        *extra_args,
    ]
    with log.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            *argv_prefix, *args, stdout=log_file, stderr=log_file, env=env, pass_fds=pass_fds
        )
    proc = Proc(process, notify, log)
    try:
        await notify.wait_for("READY=1")
        yield proc
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_ready_signals_stop_and_restart_keep_accounts(
    short_dir: Path, tmp_path: Path, notify_socket: Notifications
) -> None:
    sock, data = short_dir / "s" / "bimmaild.sock", tmp_path / "data"
    async with bimmaild(sock, data, notify_socket) as proc:
        assert sock.exists()  # READY=1 only once the socket accepts
        async with await Client.connect(sock) as client:
            assert (await client.call("status"))["pid"] == proc.process.pid
            await client.call("account.add", account_params())
            await client.call("account.add", account_params(name="Home", email="home@example.org"))
            await client.call("account.disable", {"account": "Home"})
        assert await proc.stop(signal.SIGTERM) == 0
        await notify_socket.wait_for("STOPPING=1")
    assert not sock.exists(), "socket removed on clean shutdown"

    async with bimmaild(sock, data, notify_socket) as proc:
        result = await run_ctl(sock, "--json", "account", "list")
        assert result.code == 0
        assert '"name": "Work"' in result.stdout and '"name": "Home"' in result.stdout
        async with await Client.connect(sock) as client:
            accounts = await client.call("account.list")
        assert [(a["name"], a["enabled"], a["primary"]) for a in accounts] == [
            ("Work", True, True),
            ("Home", False, False),
        ]
        assert await proc.stop(signal.SIGINT) == 0


async def _refused(sock: Path, data_dir: Path) -> None:
    """A daemon started on ``sock`` says in one line that another serves it, exits 1, and has
    created nothing: no data dir, so no store migrated, no sweep, no scheduler, no outbox."""
    second = await asyncio.create_subprocess_exec(
        BIMMAILD, "--socket", str(sock), "--data-dir", str(data_dir), "--log-level", "debug",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(second.communicate(), 15)
    assert second.returncode == 1
    assert err.decode() == f"bimmaild: another bimmaild is already serving {sock}\n"  # no traceback, no log
    assert out == b""
    assert not data_dir.exists(), "a refused daemon created its data dir"


async def test_second_daemon_refused_and_crash_leftovers_cleaned(
    short_dir: Path, tmp_path: Path, notify_socket: Notifications
) -> None:
    """Issue 2: a second daemon on a served socket is refused before it starts anything (audit 23 gap 2)."""
    sock = short_dir / "s" / "bimmaild.sock"
    async with bimmaild(sock, tmp_path / "one", notify_socket) as first:
        await _refused(sock, tmp_path / "two")
        assert (await run_ctl(sock, "status")).code == 0  # the first one is untouched
        assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert sock.exists(), "a killed daemon leaves its socket behind"
    async with bimmaild(sock, tmp_path / "one", notify_socket):  # stale socket replaced
        assert (await run_ctl(sock, "status")).code == 0


async def test_live_socket_without_the_lock_is_refused_too(short_dir: Path, tmp_path: Path) -> None:
    """Issue 2: something answering on the socket without holding its lock (a daemon whose lock file
    was removed) is never replaced; the refusal still comes before anything is created."""
    sock = short_dir / "s" / "bimmaild.sock"
    sock.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(sock))
        listener.listen(4)
        await _refused(sock, tmp_path / "two")
        assert sock.exists()


async def test_socket_activation(short_dir: Path, tmp_path: Path, notify_socket: Notifications) -> None:
    """The daemon adopts a socket passed by systemd (LISTEN_FDS) and never unlinks it."""
    path = short_dir / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    # A client may connect before the daemon even runs: systemd queues it in the backlog.
    early = asyncio.create_task(run_ctl(path, "--json", "status"))
    async with bimmaild(
        short_dir / "unused.sock",
        tmp_path / "data",
        notify_socket,
        sys.executable,
        "-c",
        ACTIVATE,
        str(listener.fileno()),
        pass_fds=(listener.fileno(),),
    ) as proc:
        answered = await early
        assert answered.code == 0 and json.loads(answered.stdout)["socket"] == str(path), answered
        assert not (short_dir / "unused.sock").exists()
        assert await proc.stop() == 0
    assert path.exists(), "the inherited socket belongs to the .socket unit"
    listener.close()


async def test_unwritable_data_dir_is_a_clear_startup_error(short_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    process = await asyncio.create_subprocess_exec(
        BIMMAILD,
        "--socket",
        str(short_dir / "x.sock"),
        "--data-dir",
        str(blocker / "data"),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 1
    assert err.decode().startswith("bimmaild: cannot create the data dir")


async def test_output_cut_short_by_the_reader_is_quiet(
    short_dir: Path, tmp_path: Path, notify_socket: Notifications
) -> None:
    """`bimmailctl account list | head -1`: no BrokenPipe traceback, the SIGPIPE status."""
    sock = short_dir / "s" / "bimmaild.sock"
    async with bimmaild(sock, tmp_path / "data", notify_socket):
        async with await Client.connect(sock) as client:
            for i in range(300):
                await client.call("account.add", account_params(name=f"A{i}", email=f"a{i}@example.org"))
        ctl = f"{BIN_DIR / 'bimmailctl'} --socket {sock} --json account list | head -c 10; exit ${{PIPESTATUS[0]}}"
        proc = await asyncio.create_subprocess_exec("bash", "-c", ctl, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert len(out) == 10 and err == b"" and proc.returncode == 141, err
