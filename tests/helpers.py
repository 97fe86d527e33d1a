"""Helpers shared by tests: start/stop an in-process daemon, account params, run the ctl."""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bimmaild.daemon import Daemon, DaemonConfig
from bimmaild.protocol.codec import HEADER_SIZE, Request, Response, encode, parse

BIN_DIR = Path(sys.executable).parent


@dataclass
class RunningDaemon:
    daemon: Daemon
    config: DaemonConfig
    task: asyncio.Task[None]

    @property
    def socket_path(self) -> Path:
        return self.config.socket_path

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir


def daemon_config(short_dir: Path, tmp_path: Path) -> DaemonConfig:
    return DaemonConfig(
        data_dir=tmp_path / "data",
        socket_path=short_dir / "run" / "bimmaild.sock",
        secret_backend="file",
        connect_timeout=2.0,  # servers are local: a silent one is a black hole, not a slow link
    )


async def start_daemon(config: DaemonConfig) -> RunningDaemon:
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    ready = asyncio.create_task(daemon.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises the start-up error
    assert ready in done, "daemon did not become ready"
    return RunningDaemon(daemon, config, task)


async def stop_daemon(running: RunningDaemon) -> None:
    running.daemon.request_stop()
    await asyncio.wait_for(running.task, 10)


def account_params(name: str = "Work", email: str = "me@example.org", **extra: Any) -> dict[str, Any]:
    """Valid account.add params for servers that do not exist (so: no connection test)."""
    params: dict[str, Any] = {
        "test": False,
        "name": name,
        "email": email,
        "password": "s3cret-Work-pw",
        "imap": {"host": "imap.example.org", "port": 993, "security": "ssl"},
        "smtp": {"host": "smtp.example.org", "port": 587, "security": "starttls", "auth": True},
    }
    params.update(extra)
    return params


@dataclass
class CtlResult:
    code: int
    stdout: str
    stderr: str


async def run_ctl(
    socket_path: Path | None, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> CtlResult:
    """Run the installed ``bimmailctl`` command, as a user's shell would."""
    argv = [str(BIN_DIR / "bimmailctl")]
    if socket_path is not None:
        argv += ["--socket", str(socket_path)]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else b""), 30)
    assert proc.returncode is not None
    return CtlResult(proc.returncode, out.decode(), err.decode())


async def spawn_daemon(socket_path: Path, data_dir: Path, *extra: str) -> asyncio.subprocess.Process:
    """bimmaild as a real process (for SIGKILL tests), ready when its socket answers."""
    log = data_dir.parent / f"{data_dir.name}.log"
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            str(BIN_DIR / "bimmaild"), "--socket", str(socket_path), "--data-dir", str(data_dir),
            "--secret-backend", "file", "--log-level", "debug", *extra, stdout=out, stderr=out,
        )  # fmt: skip
    from bimmailctl.client import Client, DaemonNotRunning

    for _ in range(200):
        try:
            async with await Client.connect(socket_path):
                return process
        except DaemonNotRunning:
            if process.returncode is not None:
                raise RuntimeError(f"bimmaild exited with {process.returncode}; see {log}") from None
            await asyncio.sleep(0.05)
    raise RuntimeError(f"bimmaild did not start; see {log}")


class RawConnection:
    """A hand-driven control connection: any bytes out, frames in — for malformed and hostile
    input, which a real client (``bimmailctl.client``) refuses to send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, path: Path, *, hello: bool = False) -> RawConnection:
        reader, writer = await asyncio.open_unix_connection(str(path))
        raw = cls(reader, writer)
        if hello:
            await raw.hello()
        return raw

    async def send(self, data: bytes) -> None:
        """Bytes as they are: half a frame, a bare header …"""
        self.writer.write(data)
        await self.writer.drain()

    async def send_frame(self, payload: bytes, header: bytes | None = None) -> None:
        """``payload`` behind its length header, or behind ``header`` (one that lies)."""
        await self.send((header if header is not None else struct.pack(">I", len(payload))) + payload)

    async def request(self, method: str, params: Any, msgid: int = 1) -> Response:
        await self.send(encode(Request(msgid, method, params)))
        return await self.response()

    async def hello(self) -> None:
        response = await self.request("hello", {"protocol": 1, "client": "raw"}, msgid=0)
        assert response.error is None

    async def response(self, timeout: float = 5.0) -> Response:
        """The next response (events are skipped)."""
        while True:
            header = await asyncio.wait_for(self.reader.readexactly(HEADER_SIZE), timeout)
            (length,) = struct.unpack(">I", header)
            message = parse(await asyncio.wait_for(self.reader.readexactly(length), timeout))
            if isinstance(message, Response):
                return message

    async def closed_by_daemon(self) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1), 5) == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.writer.close()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
