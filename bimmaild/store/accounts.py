"""SQL for the accounts table.  Callers pass column dicts and get rows back."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

_SELECT = "SELECT * FROM accounts"


def all_rows(conn: sqlite3.Connection, owner: int | None = None) -> list[sqlite3.Row]:
    if owner is None:
        return conn.execute(f"{_SELECT} ORDER BY id").fetchall()
    return conn.execute(f"{_SELECT} WHERE owner_uid = ? ORDER BY id", (owner,)).fetchall()


def by_id(conn: sqlite3.Connection, account_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(f"{_SELECT} WHERE id = ?", (account_id,)).fetchone()
    return row


def by_name(conn: sqlite3.Connection, owner: int, name: str) -> sqlite3.Row | None:
    """Names are per owner and compare case-insensitively (the column is COLLATE NOCASE)."""
    row: sqlite3.Row | None = conn.execute(f"{_SELECT} WHERE owner_uid = ? AND name = ?", (owner, name)).fetchone()
    return row


def primary(conn: sqlite3.Connection, owner: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(f"{_SELECT} WHERE owner_uid = ? AND is_primary = 1", (owner,)).fetchone()
    return row


def insert(conn: sqlite3.Connection, values: Mapping[str, Any]) -> int:
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    # Column names come from our own code (model.SETTING_COLUMNS), never from a client.
    sql = f"INSERT INTO accounts ({columns}) VALUES ({marks})"  # noqa: S608
    cur = conn.execute(sql, tuple(values.values()))
    assert cur.lastrowid is not None
    return cur.lastrowid


def update(conn: sqlite3.Connection, account_id: int, values: Mapping[str, Any]) -> None:
    if not values:
        return
    assignments = ", ".join(f"{column} = ?" for column in values)
    sql = f"UPDATE accounts SET {assignments} WHERE id = ?"  # noqa: S608 (our column names)
    conn.execute(sql, (*values.values(), account_id))


def delete(conn: sqlite3.Connection, account_id: int) -> None:
    conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))


def clear_primary(conn: sqlite3.Connection, owner: int) -> None:
    conn.execute("UPDATE accounts SET is_primary = 0 WHERE owner_uid = ? AND is_primary = 1", (owner,))


def ids(conn: sqlite3.Connection) -> set[int]:
    return {row[0] for row in conn.execute("SELECT id FROM accounts")}


def secret_refs(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT secret_ref FROM accounts")}
