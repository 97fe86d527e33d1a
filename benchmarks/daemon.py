"""bimmaild as a benchmark client: the one place that drives the daemon, ``daemon_initial_sync()``.

The daemon is used exactly as a user would, through its two commands, so that the figure
includes everything the real initial sync does (connection, folder selection, download, Maildir
writes, index commits, durability) and nothing of the benchmark's own making:

1. ``bimmaild --socket S --data-dir D --secret-backend file``, ready once
   ``bimmailctl --socket S status`` exits 0;
2. ``bimmailctl --socket S account add --name Bench …  --password-stdin --no-test`` (the test
   Dovecot over STARTTLS, trusted through ``--tls-ca-file``);
3. ``bimmailctl --socket S --json fetch --wait Bench``: the measured wall time (it includes the
   start of the bimmailctl process, ~0.1 s, as the other clients' figures include theirs);
4. peak RSS: ``VmHWM`` of the bimmaild process (``/proc/<pid>/status``) right after the fetch;
5. messages: the files in ``D/mail/<account-id>/<folder>/{cur,new}``.

Until the daemon has a ``fetch`` command, bimmailctl rejects it with a usage error (exit 2) and
``DaemonUnavailable`` says so; ``fetch_available()`` asks the same question up front.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT = "Bench"
READY_TIMEOUT = 30.0
FETCH_TIMEOUT = 3600.0


class DaemonUnavailable(RuntimeError):
    """bimmailctl has no ``fetch`` command yet (the synchronisation has not landed)."""


@dataclass(frozen=True)
class DaemonRun:
    seconds: float  # wall time of `bimmailctl --json fetch --wait Bench`
    peak_rss: int  # bytes: VmHWM of bimmaild right after the fetch
    messages: int  # message files under D/mail
    report: Any  # what `fetch --json` printed


def _command(name: str) -> str:
    """The console script next to this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise DaemonUnavailable(f"{name} is not installed (pip install -e . in the venv)")
    return found


def fetch_available() -> bool:
    """Whether bimmailctl knows ``fetch`` (argparse answers ``--help`` with 0, an unknown command with 2)."""
    done = subprocess.run([_command("bimmailctl"), "fetch", "--help"], capture_output=True, text=True, check=False)
    return done.returncode == 0


def _ctl(socket: Path, *args: str, stdin: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    argv = [_command("bimmailctl"), "--socket", str(socket), *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def _running_daemon(socket: Path, data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """bimmaild started, ready (``status`` exits 0), and stopped with SIGTERM at the end."""
    argv = [_command("bimmaild"), "--socket", str(socket), "--data-dir", str(data_dir), "--secret-backend", "file"]
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while _ctl(socket, "status").returncode != 0:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bimmaild did not become ready; its log:\n{_tail(log)}")
                time.sleep(0.1)
            yield daemon
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def _vm_hwm(pid: int) -> int:
    """Peak resident set size of ``pid`` in bytes, from the kernel's high-water mark."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def _count_messages(mail_root: Path) -> int:
    return sum(1 for sub in ("cur", "new") for folder in mail_root.glob(f"*/**/{sub}") for _ in folder.iterdir())


def _check(done: subprocess.CompletedProcess[str], what: str) -> None:
    if done.returncode == 2 and "invalid choice" in done.stderr:
        raise DaemonUnavailable(done.stderr.strip().splitlines()[-1])
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-1000:]}")


# =====================================================================================================
# THE DAEMON RUN.  Everything the benchmark knows about bimmaild is in this function; keep it in step
# with the daemon's command line.  Contract: see the module docstring (and issue 4).
# =====================================================================================================
def daemon_initial_sync(workdir: Path, *, port: int, login: str, password: str, ca_file: Path) -> DaemonRun:
    """Initial sync of the Dovecot user ``login`` by a fresh bimmaild whose store is ``workdir/data``.

    ``port`` is the Dovecot STARTTLS listener on 127.0.0.1.  The SMTP settings are required by
    ``account add`` but never used (nothing is sent).  ``workdir`` must be fresh and short (the
    control socket lives in it: 108-byte limit of Unix socket paths).
    """
    socket, data_dir = workdir / "ctl.sock", workdir / "data"
    with _running_daemon(socket, data_dir, workdir / "bimmaild.log") as daemon:
        added = _ctl(
            socket, "account", "add", "--name", ACCOUNT, "--email", login, "--password-stdin",
            "--imap-host", "127.0.0.1", "--imap-port", str(port), "--imap-security", "starttls",
            "--smtp-host", "127.0.0.1", "--smtp-port", "25", "--smtp-security", "none", "--no-smtp-auth",
            "--tls-ca-file", str(ca_file), "--no-test",
            stdin=password + "\n",
        )  # fmt: skip
        _check(added, "bimmailctl account add")
        started = time.perf_counter()
        fetched = _ctl(socket, "--json", "fetch", "--wait", ACCOUNT, timeout=FETCH_TIMEOUT)
        seconds = time.perf_counter() - started
        peak_rss = _vm_hwm(daemon.pid)
        _check(fetched, "bimmailctl fetch --wait")
    return DaemonRun(seconds, peak_rss, _count_messages(data_dir / "mail"), json.loads(fetched.stdout or "null"))
