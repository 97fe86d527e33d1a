"""SQL for account_status: the outcome of each account's last fetch, kept across restarts.

``needs-attention`` must survive a restart: a safety stop or a refused
password stays until the user acts, instead of being retried blindly.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def read(conn: sqlite3.Connection, account_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM account_status WHERE account_id = ?", (account_id,)).fetchone()
    if row is None:
        return {"state": "new", "message": None, "last_fetch_at": None, "last_result": None}
    return {
        "state": row["state"],
        "message": row["message"],
        "last_fetch_at": row["last_fetch_at"],
        "last_result": json.loads(row["last_result"]) if row["last_result"] else None,
    }


def in_state(conn: sqlite3.Connection, state: str) -> set[int]:
    """Ids of the accounts whose last fetch ended in ``state`` (one query for all)."""
    return {row[0] for row in conn.execute("SELECT account_id FROM account_status WHERE state = ?", (state,))}


def write(
    conn: sqlite3.Connection, account_id: int, state: str, message: str | None, at: str, result: dict[str, Any] | None
) -> None:
    conn.execute(
        "INSERT INTO account_status (account_id, state, message, last_fetch_at, last_result) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (account_id) DO UPDATE SET state = excluded.state, message = excluded.message, "
        "last_fetch_at = excluded.last_fetch_at, last_result = excluded.last_result",
        (account_id, state, message, at, json.dumps(result) if result is not None else None),
    )


def clear(conn: sqlite3.Connection, account_id: int) -> None:
    conn.execute("DELETE FROM account_status WHERE account_id = ?", (account_id,))
