"""SQL for the message index: one row per message stored in a folder's Maildir."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ROW_COLUMNS = (
    "account_id", "folder_id", "uid", "message_id", "sent_at", "sender", "recipients", "subject",
    "size", "flags", "internal_date", "filename",
)  # fmt: skip


def insert_many(conn: sqlite3.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    sql = f"INSERT INTO messages ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' for _ in ROW_COLUMNS)})"  # noqa: S608
    conn.executemany(sql, ([row[c] for c in ROW_COLUMNS] for row in rows))


def uids(conn: sqlite3.Connection, folder_id: int, *, settled_only: bool = False) -> dict[int, tuple[int, str, str]]:
    """uid -> (message id, flags, filename) of the indexed messages of a folder.

    ``settled_only``: without those waiting for a server operation (``pending``).
    """
    where = "folder_id = ? AND pending IS NULL" if settled_only else "folder_id = ?"
    cursor = conn.execute(f"SELECT uid, id, flags, filename FROM messages WHERE {where}", (folder_id,))  # noqa: S608
    return {uid: (mid, flags, filename) for uid, mid, flags, filename in cursor}


def count(conn: sqlite3.Connection, folder_id: int) -> int:
    return int(conn.execute("SELECT count(*) FROM messages WHERE folder_id = ?", (folder_id,)).fetchone()[0])


def update_flags(conn: sqlite3.Connection, changes: Sequence[tuple[str, str, int]]) -> None:
    """(flags, filename, message id) triples."""
    conn.executemany("UPDATE messages SET flags = ?, filename = ? WHERE id = ?", changes)


def delete(conn: sqlite3.Connection, ids: Iterable[int]) -> None:
    conn.executemany("DELETE FROM messages WHERE id = ?", ((i,) for i in ids))


def by_id(conn: sqlite3.Connection, message_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT m.*, f.name AS folder, f.maildir AS maildir, o.name AS origin FROM messages m "
        "JOIN folders f ON f.id = m.folder_id LEFT JOIN folders o ON o.id = m.origin_folder_id WHERE m.id = ?",
        (message_id,),
    ).fetchone()
    return row


def listing(
    conn: sqlite3.Connection, account_ids: Sequence[int], folder_ids: Sequence[int] | None, limit: int, offset: int
) -> list[sqlite3.Row]:
    """Newest first (by Date header, then by id), of these accounts (and folders, when given)."""
    where = f"m.account_id IN ({','.join('?' * len(account_ids))})"
    args = list(account_ids)
    if folder_ids is not None:
        where += f" AND m.folder_id IN ({','.join('?' * len(folder_ids))})"
        args += folder_ids
    sql = (
        "SELECT m.*, f.name AS folder, o.name AS origin FROM messages m JOIN folders f ON f.id = m.folder_id "  # noqa: S608
        f"LEFT JOIN folders o ON o.id = m.origin_folder_id WHERE {where} "
        "ORDER BY m.sent_at DESC, m.id DESC LIMIT ? OFFSET ?"
    )
    return conn.execute(sql, (*args, limit, offset)).fetchall()
