"""Logging to stderr, in the form journald reads best when it is journald that reads it.

Under systemd with stderr connected to the journal (``$JOURNAL_STREAM`` names stderr's device
and inode), each line starts with its syslog priority (``<3>`` error … ``<7>`` debug,
sd-daemon(3)) so ``journalctl -p warning`` works, and carries no timestamp (the journal adds
its own).  Elsewhere (a terminal, a file): a timestamp and the level name.
"""

from __future__ import annotations

import logging
import os
import sys

# sd-daemon(3) prefixes, by logging level.
PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """``<priority>name: message``; a traceback's lines follow, each with the same priority, so
    that the journal keeps the whole of an error at its level."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{PRIORITIES.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def to_journal() -> bool:
    """stderr is the journal stream systemd set up (not merely inherited from a parent under it)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
        return bool(inode) and (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if to_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str) -> None:
    """The daemon's level (also on SIGHUP); chatty libraries stay at INFO or above."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in ("keyring", "httpcore", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
