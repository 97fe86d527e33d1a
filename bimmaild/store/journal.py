"""SQL for the journal of server operations (R-C7).

An entry is written in the same transaction as the local change it stands
for, before anything is sent to the server, and stays ``pending`` until the
server's effect is confirmed: a crash or an unreachable server delays an
operation, never loses it.  ``params`` (JSON) carries what is needed to redo
it and to recognise that it already happened.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(conn: sqlite3.Connection, account_id: int, kind: str, params: dict[str, Any]) -> int:
    cur = conn.execute(
        "INSERT INTO journal (account_id, kind, params, created_at) VALUES (?, ?, ?, ?)",
        (account_id, kind, json.dumps(params), _now()),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def pending(conn: sqlite3.Connection, account_id: int) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM journal WHERE account_id = ? AND state = 'pending' ORDER BY id", (account_id,)
    ).fetchall()


def count_pending(conn: sqlite3.Connection, account_id: int) -> int:
    row = conn.execute("SELECT count(*) FROM journal WHERE account_id = ? AND state = 'pending'", (account_id,))
    return int(row.fetchone()[0])


def params(row: sqlite3.Row) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(row["params"])
    return value


def save_params(conn: sqlite3.Connection, entry_id: int, values: dict[str, Any]) -> None:
    conn.execute("UPDATE journal SET params = ? WHERE id = ?", (json.dumps(values), entry_id))


def attempted(conn: sqlite3.Connection, entry_id: int, error: str | None) -> None:
    conn.execute("UPDATE journal SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, entry_id))


def complete(conn: sqlite3.Connection, entry_id: int) -> None:
    conn.execute("UPDATE journal SET state = 'done', done_at = ?, last_error = NULL WHERE id = ?", (_now(), entry_id))


def fail(conn: sqlite3.Connection, entry_id: int, error: str) -> None:
    """Given up: the server refused in a way retrying cannot change."""
    conn.execute(
        "UPDATE journal SET state = 'failed', done_at = ?, last_error = ? WHERE id = ?", (_now(), error, entry_id)
    )
