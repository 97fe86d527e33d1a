"""mbsync (isync), the reference sync tool, as a benchmark client.

``ensure_mbsync()`` installs Debian's ``isync`` when ``mbsync`` is missing and we are root (the
same policy as ``scripts/install-system-deps.sh``); otherwise mbsync is skipped with a note.

Each run gets its own config file and a fresh Maildir: one channel, far INBOX pulled to near
INBOX, ``Create Near``, ``Sync Pull``, over STARTTLS verified with the fixture's CA.  ``FSync yes``
(mbsync's default: fsync of every message and of the sync state) and ``FSync no`` are the two
variants; their difference is the cost of per-message durability on this disk.

Option names follow isync 1.4 (Debian bookworm's 1.4.4, checked in its mbsync(1)): ``Far`` /
``Near`` (``Master`` / ``Slave`` are the deprecated spellings), ``SSLType STARTTLS`` (isync 1.5
renamed it ``TLSType`` and keeps ``SSLType`` as a deprecated alias).  ``tls_option()`` picks the
spelling from ``mbsync --version``.

``Host localhost``, not ``127.0.0.1``: isync 1.4 checks the server name against the certificate's
DNS names and common name only, and the fixture's certificate names 127.0.0.1 as an IP address
(mbsync fails with "cannot get certificate common name").  localhost is 127.0.0.1 here (and only
that), and the certificate is valid for it, so the CA and the name are still verified.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

MBSYNC = "mbsync"


class MbsyncUnavailable(RuntimeError):
    """mbsync is not installed and cannot be installed here (the message says why)."""


def ensure_mbsync() -> str:
    """Path of mbsync, installing Debian's isync first when root; MbsyncUnavailable otherwise."""
    found = shutil.which(MBSYNC)
    if found:
        return found
    if os.getuid() != 0:
        raise MbsyncUnavailable("mbsync is not installed and we are not root: sudo apt-get install isync")
    if not shutil.which("apt-get"):
        raise MbsyncUnavailable("mbsync is not installed and there is no apt-get to install isync with")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("installing Debian's isync (mbsync) …", file=sys.stderr, flush=True)
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "isync"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise MbsyncUnavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    found = shutil.which(MBSYNC)
    if not found:
        raise MbsyncUnavailable("isync was installed but mbsync is not on PATH")
    return found


def version(mbsync: str) -> str:
    done = subprocess.run([mbsync, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip()


def tls_option(mbsync: str) -> str:
    """``TLSType`` from isync 1.5 on, ``SSLType`` before (1.5 still accepts it, deprecated)."""
    found = re.search(r"(\d+)\.(\d+)", version(mbsync))
    major_minor = (int(found.group(1)), int(found.group(2))) if found else (1, 4)
    return "TLSType" if major_minor >= (1, 5) else "SSLType"


def write_config(
    directory: Path,
    *,
    port: int,
    user: str,
    password: str,
    ca_file: Path,
    fsync: bool,
    tls: str,
    host: str = "localhost",
) -> tuple[Path, Path]:
    """Config file and the near Maildir root (fresh, empty), both under ``directory``."""
    near = directory / "maildir"
    near.mkdir()  # mbsync creates the INBOX under Path ("Create Near"), not Path itself
    config = directory / "mbsyncrc"
    config.write_text(
        f"""# Written by benchmarks/mbsync.py for one benchmark run.
FSync {"yes" if fsync else "no"}

IMAPAccount bench
Host {host}
Port {port}
User "{user}"
Pass "{password}"
{tls} STARTTLS
CertificateFile {ca_file}
AuthMechs LOGIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Path {near}/
Inbox {near}/INBOX

Channel bench
Far :bench-far:INBOX
Near :bench-near:INBOX
Create Near
Sync Pull
SyncState *
"""
    )
    config.chmod(0o600)
    return config, near


def command(mbsync: str, config: Path) -> list[str]:
    return [mbsync, "-q", "-c", str(config), "-a"]
