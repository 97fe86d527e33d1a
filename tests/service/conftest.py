"""Fixtures for ``bimmailctl service``: a private HOME, XDG dirs and PATH, with stand-ins for
systemctl and systemd-run that record their arguments (the real ones would change this machine)."""

from __future__ import annotations

import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import BIN_DIR

# Answers like the real tools: `is-active`/`is-enabled` print a state; any other verb fails with
# $FAKE_SYSTEMCTL_ERROR when it is set (what `systemctl --user` says without a user manager).
FAKE_SYSTEMCTL = """#!/bin/sh
printf '%s\\n' "systemctl $*" >> "$FAKE_SYSTEMD_LOG"
[ "$1" = "--user" ] && shift
case "$1" in
    is-active) echo "${FAKE_ACTIVE:-inactive}"; exit 0;;
    is-enabled) echo "${FAKE_ENABLED:-disabled}"; exit 0;;
esac
if [ -n "$FAKE_SYSTEMCTL_ERROR" ]; then echo "$FAKE_SYSTEMCTL_ERROR" >&2; exit 1; fi
exit 0
"""
# `systemd-run --wait` exits with the service's status: 226/NAMESPACE when the sandbox is refused.
FAKE_SYSTEMD_RUN = """#!/bin/sh
printf '%s\\n' "systemd-run $*" >> "$FAKE_SYSTEMD_LOG"
exit "${FAKE_SYSTEMD_RUN_STATUS:-0}"
"""


@dataclass
class ServiceEnv:
    home: Path
    config: Path  # $XDG_CONFIG_HOME
    runtime: Path  # $XDG_RUNTIME_DIR
    bin: Path  # the only directory on $PATH
    log: Path

    @property
    def user_unit_dir(self) -> Path:
        return self.config / "systemd" / "user"

    def fake(self, name: str) -> None:
        """Put a stand-in for systemctl or systemd-run on PATH."""
        path = self.bin / name
        path.write_text(FAKE_SYSTEMCTL if name == "systemctl" else FAKE_SYSTEMD_RUN)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def service_env(tmp_path: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ServiceEnv:
    env = ServiceEnv(tmp_path / "home", tmp_path / "home" / "xdg-config", short_dir / "rt", tmp_path / "bin",
                     tmp_path / "systemd-calls.log")  # fmt: skip
    for directory in (env.home, env.config, env.bin):
        directory.mkdir(parents=True)
    env.runtime.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(env.home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env.config))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(env.runtime))
    monkeypatch.setenv("PATH", str(env.bin))
    monkeypatch.setenv("FAKE_SYSTEMD_LOG", str(env.log))
    monkeypatch.delenv("BIMMAIL_SOCKET", raising=False)
    # In-process, bimmailctl finds bimmaild next to sys.argv[0]: make it this venv's bimmailctl.
    monkeypatch.setattr(sys, "argv", [str(BIN_DIR / "bimmailctl")])
    return env


def venv_bimmaild() -> Path:
    return (BIN_DIR / "bimmailctl").resolve().parent / "bimmaild"
