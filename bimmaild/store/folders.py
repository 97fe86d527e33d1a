"""SQL for the folders table: one row per server folder of an account."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

_COLUMNS = (
    "wire_name", "name", "delimiter", "attributes", "role", "selected", "maildir",
    "uidvalidity", "uidnext", "highestmodseq", "message_count", "state", "synced_at",
)  # fmt: skip


def for_account(conn: sqlite3.Connection, account_id: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM folders WHERE account_id = ? ORDER BY id", (account_id,)).fetchall()


def by_id(conn: sqlite3.Connection, folder_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM folders WHERE id = ?", (folder_id,)).fetchone()
    return row


def insert(conn: sqlite3.Connection, account_id: int, values: Mapping[str, Any]) -> int:
    keys = [k for k in values if k in _COLUMNS]
    sql = f"INSERT INTO folders (account_id, {', '.join(keys)}) VALUES (?, {', '.join('?' for _ in keys)})"  # noqa: S608
    cur = conn.execute(sql, (account_id, *(values[k] for k in keys)))
    assert cur.lastrowid is not None
    return cur.lastrowid


def update(conn: sqlite3.Connection, folder_id: int, values: Mapping[str, Any]) -> None:
    keys = [k for k in values if k in _COLUMNS]
    if not keys:
        return
    sql = f"UPDATE folders SET {', '.join(f'{k} = ?' for k in keys)} WHERE id = ?"  # noqa: S608 (our columns)
    conn.execute(sql, (*(values[k] for k in keys), folder_id))
