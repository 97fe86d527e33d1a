"""The clients compared by ``initial_sync.py``, each run as its own process into a fresh directory.

Every client is a separate process so that the figures are comparable: wall time includes a
process start for all of them, and peak RSS is the process's own.  For the raw baseline and
mbsync it is ``ru_maxrss`` as reported by ``/usr/bin/time -f %M``, not by our own ``wait4()``:
Linux carries a process's peak RSS across exec, so a child forked (or vforked) by this Python
process, which holds the mailbox generator's buffers, inherits our ~65 MB as its floor (measured:
every client showed 66 MB); the small ``time`` program is the parent that forks the client.
``RUSAGE_CHILDREN`` would be worse still (the maximum over every child so far).  For the daemon,
which outlives its measured command, it is ``VmHWM`` from ``/proc`` (per address space, so exec
resets it).

Each client writes into the ``target`` directory it is given, which the caller creates fresh for
every measurement (DESIGN.md §6: compare in the same run, alternating, each into a new directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchmarks import daemon, mbsync

BASELINE = Path(__file__).with_name("baseline.py")
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None  # GNU time (Debian package "time")


@dataclass(frozen=True)
class Server:
    """What every client needs to reach the test Dovecot's INBOX over STARTTLS on 127.0.0.1."""

    port: int
    login: str
    password: str
    ca_file: Path


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_rss: int  # bytes
    messages: int  # messages the client read or stored, checked against the mailbox
    detail: str = ""


@dataclass(frozen=True)
class _Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int


class Client(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def slug(self) -> str: ...  # for directory names

    def run(self, server: Server, target: Path) -> Sample: ...


def run_measured(argv: list[str], stdin: str | None = None) -> _Finished:
    """Run ``argv`` to completion: wall time from spawn to reaping, and its own peak RSS (see above)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        wrapped = [TIME, "-f", "%M", "-o", rss.name, *argv] if TIME else argv
        started = time.perf_counter()
        process = subprocess.Popen(
            wrapped, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE, stdout=out, stderr=err
        )
        if process.stdin is not None:
            process.stdin.write((stdin or "").encode())
            process.stdin.close()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        text_out, text_err = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        reported = rss.read().split()
    # time(1) writes "Command exited with non-zero status N" before %M when the command fails.
    peak_kib = int(reported[-1]) if reported and reported[-1].isdigit() else usage.ru_maxrss
    return _Finished(process.returncode, text_out, text_err, seconds, peak_kib * 1024)


def _require(done: _Finished, what: str) -> None:
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-1500:]}")


def count_maildir(path: Path) -> int:
    return sum(len(os.listdir(path / sub)) for sub in ("cur", "new") if (path / sub).is_dir())


@dataclass(frozen=True)
class RawClient:
    """benchmarks/baseline.py: one UID FETCH 1:* for the folder, to a Maildir or discarded."""

    name: str
    slug: str
    write: bool
    cleartext: bool = False
    lf: bool = False

    def run(self, server: Server, target: Path) -> Sample:
        argv = [sys.executable, str(BASELINE), "--port", str(server.port), "--user", server.login]
        argv += ["--cleartext"] if self.cleartext else ["--ca-file", str(server.ca_file)]
        argv += ["--mode", "maildir", "--target", str(target)] if self.write else ["--mode", "read"]
        argv += ["--lf"] if self.lf else []
        done = run_measured(argv, stdin=server.password + "\n")
        _require(done, self.name)
        result = json.loads(done.stdout)
        return Sample(done.seconds, done.peak_rss, result["messages"], result["transport"])


@dataclass(frozen=True)
class MbsyncClient:
    """mbsync -a with a config of its own (FSync yes or no) and a fresh near Maildir."""

    name: str
    slug: str
    program: str
    fsync: bool

    def run(self, server: Server, target: Path) -> Sample:
        target.mkdir()
        config, near = mbsync.write_config(
            target, port=server.port, user=server.login, password=server.password, ca_file=server.ca_file,
            fsync=self.fsync, tls=mbsync.tls_option(self.program),
        )  # fmt: skip
        done = run_measured(mbsync.command(self.program, config))
        _require(done, self.name)
        return Sample(done.seconds, done.peak_rss, count_maildir(near / "INBOX"))


@dataclass(frozen=True)
class DaemonClient:
    """bimmaild + bimmailctl, through ``daemon.daemon_initial_sync()`` (the marked function)."""

    name: str = "daemon (bimmaild)"
    slug: str = "daemon"

    def run(self, server: Server, target: Path) -> Sample:
        target.mkdir()
        result = daemon.daemon_initial_sync(
            target, port=server.port, login=server.login, password=server.password, ca_file=server.ca_file
        )
        return Sample(result.seconds, result.peak_rss, result.messages, json.dumps(result.report, ensure_ascii=False))
