"""New messages of the account's trash folder that we already have: not downloaded twice (R-C5).

A message appears in the server trash folder because we moved it there (the
server did not tell us its new UID, or we crashed before recording it), or
because another client (webmail, phone) moved or copied it there.  Either
way the content is usually already stored: matched by Message-ID and size,

* our own pending copy in the trash takes the server UID (its file is renamed);
* a copy in another folder is hard-linked into the trash Maildir (no second
  download, no second copy on disk) and indexed there, remembering the folder
  it came from.  That folder's own sync then removes its copy if the server
  removed it there: a move, seen as such.

Messages without a Message-ID are never matched: downloading one again is
better than pairing two different messages.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bimmaild.store import messages as message_q
from bimmaild.store.db import Database
from bimmaild.store.maildir import file_name, fsync_directory


@dataclass(frozen=True)
class Arrival:
    """A new UID of the trash folder, as the server describes it before any download."""

    message_id: str | None
    size: int
    flags: tuple[str, ...]


def candidates(db: Database, account_id: int, arrivals: Mapping[int, Arrival]) -> dict[tuple[str, int], sqlite3.Row]:
    """Local copies by (Message-ID, size): pending ones of the trash first, then any other."""
    ids = sorted({a.message_id for a in arrivals.values() if a.message_id})
    found: dict[tuple[str, int], sqlite3.Row] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = db.conn.execute(
            "SELECT m.*, f.maildir FROM messages m JOIN folders f ON f.id = m.folder_id "  # noqa: S608
            f"WHERE m.account_id = ? AND m.message_id IN ({marks}) ORDER BY m.pending IS NULL, m.id",
            (account_id, *chunk),
        ).fetchall()
        for row in rows:
            found.setdefault((row["message_id"], row["size"]), row)
    return found


@dataclass
class Plan:
    """File work (for a worker thread) and the rows to write afterwards (on the loop)."""

    target: Path
    renames: list[tuple[Path, Path, tuple[Any, ...]]] = field(default_factory=list)  # src, dst, UPDATE args
    links: list[tuple[Path, Path, dict[str, Any]]] = field(default_factory=list)  # src, dst, row to insert
    done: set[int] = field(default_factory=set)


def plan(db: Database, account_dir: Path, folder: Any, uidvalidity: int, arrivals: Mapping[int, Arrival]) -> Plan:
    matches = candidates(db, folder["account_id"], arrivals)
    result = Plan(account_dir / folder["maildir"] / "cur")
    claimed: set[int] = set()  # a local row answers for one arrival only
    for uid in sorted(arrivals):
        arrival = arrivals[uid]
        row = matches.get((arrival.message_id, arrival.size)) if arrival.message_id else None
        if row is None or row["id"] in claimed:
            continue
        claimed.add(row["id"])
        name = file_name(uidvalidity, uid, arrival.flags)
        source = account_dir / row["maildir"] / "cur" / row["filename"]
        if row["folder_id"] == folder["id"] and row["pending"] is not None:
            result.renames.append((source, result.target / name, (uid, name, _flags(arrival.flags), row["id"])))
        else:
            inserted = {**_copied(row), "folder_id": folder["id"], "uid": uid, "filename": name,
                        "flags": _flags(arrival.flags), "origin_folder_id": row["folder_id"]}  # fmt: skip
            result.links.append((source, result.target / name, inserted))
    return result


def apply_files(work: Plan) -> Plan:
    """Worker thread: rename or link what still exists; returns what was done."""
    done = Plan(work.target)
    for source, target, args in work.renames:
        if source.exists():
            os.rename(source, target)
            done.renames.append((source, target, args))
            done.done.add(args[0])
    for source, target, row in work.links:
        if source.exists():
            _link(source, target)
            done.links.append((source, target, row))
            done.done.add(row["uid"])
    if done.done:
        fsync_directory(work.target)
    return done


def commit(db: Database, done: Plan) -> None:
    with db.transaction() as conn:
        conn.executemany(
            "UPDATE messages SET uid = ?, filename = ?, flags = ?, pending = NULL WHERE id = ?",
            [args for _, _, args in done.renames],
        )
        rows = [row for _, _, row in done.links]
        message_q.insert_many(conn, rows)
        conn.executemany(
            "UPDATE messages SET origin_folder_id = ? WHERE folder_id = ? AND uid = ?",
            ((r["origin_folder_id"], r["folder_id"], r["uid"]) for r in rows),
        )


def _flags(flags: tuple[str, ...]) -> str:
    return " ".join(sorted({f for f in flags if f.lower() != "\\recent"}))


def _copied(row: sqlite3.Row) -> dict[str, Any]:
    return {column: row[column] for column in message_q.ROW_COLUMNS}


def _link(source: Path, target: Path) -> None:
    """Same file system: a hard link (no second copy); else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
