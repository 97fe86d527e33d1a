"""Message content on disk: one Maildir per synchronised folder, readable by mutt or notmuch.

File names carry what a restart needs to recognise a file without the index:
``<uidvalidity>.<uid>.bimmail:2,<flags>``.  Writing a batch is crash-safe
and durable at the cost of two flushes per batch, not per message (DESIGN.md
§6: per-file fsync costs 5×):

1. every file is written under ``tmp/``;
2. one ``syncfs(2)`` of the store's file system makes them all durable;
3. each is renamed into ``cur/`` (Maildir's atomic delivery);
4. one ``fsync`` of ``cur/`` makes the renames durable.

Only then does the caller commit the index rows.  A crash before step 3
leaves files in ``tmp/`` (removed at the next reconciliation); after it,
files in ``cur/`` that the index does not know (re-indexed from their names).
Everything here is blocking I/O: callers run it in a worker thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# IMAP system flags and their Maildir info letters (sorted by letter in names).
FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "$Forwarded": "P", "\\Answered": "R", "\\Seen": "S", "\\Deleted": "T"}
_NAME = re.compile(r"^(\d+)\.(\d+)\.bimmail(?::2,[A-Za-z]*)?$")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_syncfs = getattr(_libc, "syncfs", None)


def base_name(uidvalidity: int, uid: int) -> str:
    return f"{uidvalidity}.{uid}.bimmail"


def file_name(uidvalidity: int, uid: int, flags: Iterable[str]) -> str:
    letters = sorted({FLAG_LETTERS[f] for f in flags if f in FLAG_LETTERS})
    return f"{base_name(uidvalidity, uid)}:2,{''.join(letters)}"


def parse_name(name: str) -> tuple[int, int] | None:
    """(uidvalidity, uid) of one of our file names, else None."""
    match = _NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def flush_filesystem(directory: Path) -> None:
    """Make every written file of this file system durable (syncfs, else sync)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _syncfs is None or _syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class NewFile:
    uidvalidity: int
    uid: int
    flags: tuple[str, ...]
    data: bytes | bytearray


class MaildirFolder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path / "tmp"
        self.cur = path / "cur"
        self.new = path / "new"

    def ensure(self) -> None:
        for directory in (self.path, self.tmp, self.cur, self.new):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write_batch(self, files: Sequence[NewFile]) -> list[str]:
        """Write, make durable, deliver; returns the final names (in ``cur/``), in order."""
        if not files:
            return []
        self.ensure()
        staged = []
        for item in files:
            name = base_name(item.uidvalidity, item.uid)
            fd = os.open(self.tmp / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(item.data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            staged.append((name, file_name(item.uidvalidity, item.uid, item.flags)))
        flush_filesystem(self.path)
        for tmp_name, final in staged:
            os.rename(self.tmp / tmp_name, self.cur / final)
        fsync_directory(self.cur)
        return [final for _, final in staged]

    def rename(self, old: str, new: str) -> None:
        """New flags: a rename in ``cur/`` (durable with the next directory fsync)."""
        if old != new:
            os.rename(self._locate(old), self.cur / new)

    def remove(self, name: str) -> None:
        self._locate(name).unlink(missing_ok=True)

    def read(self, name: str) -> bytes:
        return self._locate(name).read_bytes()

    def sync_directory(self) -> None:
        fsync_directory(self.cur)

    def _locate(self, name: str) -> Path:
        path = self.cur / name
        return path if path.exists() or not (self.new / name).exists() else self.new / name

    def delivered(self) -> dict[str, str]:
        """Our files in ``cur/`` and ``new/``, by base name (without flags) -> full name."""
        found: dict[str, str] = {}
        for directory in (self.new, self.cur):
            if not directory.is_dir():
                continue
            with os.scandir(directory) as entries:
                for entry in entries:
                    if parse_name(entry.name) is not None:
                        found[entry.name.split(":", 1)[0]] = entry.name
        return found

    def clear_tmp(self) -> int:
        """Remove what a crash left half-delivered; returns how many files."""
        if not self.tmp.is_dir():
            return 0
        removed = 0
        with os.scandir(self.tmp) as entries:
            for entry in entries:
                os.unlink(entry.path)
                removed += 1
        return removed
