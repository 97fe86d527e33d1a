"""bimmaild under a service manager, without systemd: a fake NOTIFY_SOCKET (a datagram socket
of the test) receives READY, STATUS, WATCHDOG, RELOADING and STOPPING; ``$JOURNAL_STREAM``
switches the log to journald's form; the config file is read, shown and reloaded on SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

from bimmailctl.client import Client
from tests.e2e.test_daemon_process import BIMMAILD, Notifications, bimmaild, notify_socket
from tests.helpers import account_params

__all__ = ["notify_socket"]  # the fixture, shared with test_daemon_process


def states(notify: Notifications, key: str) -> list[str]:
    return [
        line[len(key) + 1 :] for message in notify.seen for line in message.split("\n") if line.startswith(key + "=")
    ]


async def collect(notify: Notifications, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(seconds):
            while True:
                notify.seen.append((await loop.sock_recv(notify.sock, 4096)).decode())
    except TimeoutError:
        pass


async def test_readiness_status_watchdog_reload_and_stopping(
    short_dir: Path, tmp_path: Path, notify_socket: Notifications
) -> None:
    sock, data, conf = short_dir / "s" / "d.sock", tmp_path / "data", tmp_path / "config.toml"
    conf.write_text("fetch_interval_minutes = 30\n")
    env = {"WATCHDOG_USEC": "400000"}  # 0.4 s: pinged every 0.2 s
    async with bimmaild(sock, data, notify_socket, extra_env=env, extra_args=("--config", str(conf))) as proc:
        async with await Client.connect(sock) as client:  # READY=1 came once the socket accepts
            [ready] = [m for m in notify_socket.seen if "READY=1" in m.split("\n")]
            assert "STATUS=0 accounts; idle" in ready.split("\n")
            assert (await client.call("automation.get"))["interval_minutes"] == 30  # from the file
            await client.call("account.add", account_params())
            await client.call("account.add", account_params(name="Home", email="home@example.org"))
            await client.call("account.disable", {"account": "Home"})
            await collect(notify_socket, 1.5)
            assert states(notify_socket, "STATUS")[-1] == "1 account (1 disabled); idle"
            assert len(states(notify_socket, "WATCHDOG")) >= 4, "pinged from the event loop"

            conf.write_text(
                "fetch_interval_minutes = 7\nconnect_timeout = 9\nsocket = '/elsewhere.sock'  # the command line wins\n"
            )
            notify_socket.seen.clear()
            proc.process.send_signal(signal.SIGHUP)
            await notify_socket.wait_for("READY=1")
            assert states(notify_socket, "RELOADING") == ["1"] and states(notify_socket, "MONOTONIC_USEC")
            assert (await client.call("automation.get"))["interval_minutes"] == 7

            conf.write_text("fetch_interval_minutes = 'often'\n")  # a bad file: kept the old settings
            proc.process.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            assert (await client.call("automation.get"))["interval_minutes"] == 7
            assert (await client.call("status"))["pid"] == proc.process.pid
        assert await proc.stop() == 0
        await notify_socket.wait_for("STOPPING=1")
    log = proc.log.read_text()
    assert "config: connect_timeout changed; takes effect at the next start" in log
    assert "config not reloaded" in log and "fetch_interval_minutes must be an integer, not 'often'" in log


async def test_journald_form_of_the_log(short_dir: Path, tmp_path: Path, notify_socket: Notifications) -> None:
    """With stderr being the journal stream: a priority prefix on every line, no timestamp."""
    data = tmp_path / "data"
    log = data.parent / f"{data.name}.log"
    log.touch()
    st = log.stat()
    env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    async with bimmaild(short_dir / "s" / "d.sock", data, notify_socket, extra_env=env) as proc:
        assert await proc.stop() == 0
    lines = log.read_text().splitlines()
    assert any(line.startswith("<6>bimmaild.daemon: bimmaild ") and "ready on" in line for line in lines)
    assert any(line.startswith("<7>") for line in lines), "debug lines at priority 7"
    assert all(line[:1] == "<" and line[2] == ">" for line in lines), [x for x in lines if x[:1] != "<"][:3]


async def test_plain_form_of_the_log_when_stderr_is_not_the_journal(
    short_dir: Path, tmp_path: Path, notify_socket: Notifications
) -> None:
    """A $JOURNAL_STREAM inherited from a parent service, stderr elsewhere: timestamps, no prefix."""
    env = {"JOURNAL_STREAM": "1:1"}
    async with bimmaild(short_dir / "s" / "d.sock", tmp_path / "data", notify_socket, extra_env=env) as proc:
        assert await proc.stop() == 0
    first = proc.log.read_text().splitlines()[0]
    assert (first[:4].isdigit() and " DEBUG " in first) or " INFO " in first


def print_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIMMAILD, *args, "--print-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def test_print_config_shows_each_setting_and_its_source(tmp_path: Path) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text('log_level = "warning"\nsocket = "~/b.sock"\nsafety_stop_share = 0.8\n')
    out = print_config("--config", str(conf), "--log-level", "debug", env={"BIMMAIL_SOCKET": "/tmp/env.sock"})
    assert out.returncode == 0, out.stderr
    lines = {line.split(" = ")[0]: line for line in out.stdout.splitlines() if " = " in line}
    assert lines["log_level"].startswith('log_level = "debug"  # command line')
    assert lines["socket"].startswith('socket = "/tmp/env.sock"  # $BIMMAIL_SOCKET')
    assert lines["safety_stop_share"].startswith("safety_stop_share = 0.8  # config file")
    assert lines["fetch_interval_minutes"].startswith("fetch_interval_minutes = 15  # default")
    assert f"config file: {conf} (read)" in out.stdout
    # The output is itself a valid config file giving the same settings.
    again = tmp_path / "again.toml"
    again.write_text(out.stdout)
    assert print_config("--config", str(again)).stdout.splitlines()[1:] == [
        line.replace("# command line", "# config file").replace("# $BIMMAIL_SOCKET", "# config file")
        .replace("# default", "# config file")
        for line in out.stdout.splitlines()[1:]
    ]  # fmt: skip


def test_a_bad_config_file_is_a_clear_startup_error(tmp_path: Path) -> None:
    conf = tmp_path / "config.toml"
    for text, message in (
        ("log_levl = 'info'\n", "unknown setting 'log_levl'"),
        ("connect_timeout = -1\n", "connect_timeout must be between 0.5 and 300, not -1"),
        ("safety_stop_minimum = true\n", "safety_stop_minimum must be an integer, not True"),
        ("[oops\n", "not valid TOML"),
    ):
        conf.write_text(text)
        out = subprocess.run([BIMMAILD, "--config", str(conf)], capture_output=True, text=True, timeout=30)
        assert out.returncode == 1 and str(conf) in out.stderr and message in out.stderr, out.stderr
