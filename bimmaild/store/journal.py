"""SQL for the journal of server operations (R-C7).

An entry is written in the same transaction as the local change it stands
for, before anything is sent to the server, and stays ``pending`` until the
server's effect is confirmed: a crash or an unreachable server delays an
operation, never loses it.  ``params`` (JSON) carries what is needed to redo
it and to recognise that it already happened.  An entry the server refuses
(quota, a folder in the way …) is tried again later (``next_attempt_at``; the
replay decides when): what the user asked for is never silently given up, and
the refusal shows in ``status`` until it goes through.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
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


def pending(conn: sqlite3.Connection, account_id: int, *, due_only: bool = False) -> list[sqlite3.Row]:
    """Entries still to carry out, in order; ``due_only``: without those waiting after a refusal."""
    due = " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)" if due_only else ""
    args: tuple[Any, ...] = (account_id, _now()) if due_only else (account_id,)
    return conn.execute(
        f"SELECT * FROM journal WHERE account_id = ? AND state = 'pending'{due} ORDER BY id",  # noqa: S608
        args,
    ).fetchall()


def accounts_with_due_work(conn: sqlite3.Connection) -> set[int]:
    """Accounts with an entry that can run now: due, and for a Sent copy, its message sent."""
    rows = conn.execute(
        "SELECT DISTINCT j.account_id FROM journal j WHERE j.state = 'pending'"
        " AND (j.next_attempt_at IS NULL OR j.next_attempt_at <= ?)"
        " AND (j.kind != 'append' OR EXISTS (SELECT 1 FROM outbox o"
        " WHERE o.id = json_extract(j.params, '$.outbox_id') AND o.state = 'sent'))",
        (_now(),),
    )
    return {row[0] for row in rows}


def refused(conn: sqlite3.Connection, account_id: int) -> list[sqlite3.Row]:
    """Pending entries the server has refused at least once (with why), for ``status``."""
    return conn.execute(
        "SELECT id, kind, attempts, last_error, next_attempt_at FROM journal"
        " WHERE account_id = ? AND state = 'pending' AND attempts > 0 ORDER BY id",
        (account_id,),
    ).fetchall()


def count_pending(conn: sqlite3.Connection, account_id: int) -> int:
    row = conn.execute("SELECT count(*) FROM journal WHERE account_id = ? AND state = 'pending'", (account_id,))
    return int(row.fetchone()[0])


def params(row: sqlite3.Row) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(row["params"])
    return value


def save_params(conn: sqlite3.Connection, entry_id: int, values: dict[str, Any]) -> None:
    conn.execute("UPDATE journal SET params = ? WHERE id = ?", (json.dumps(values), entry_id))


def refused_now(conn: sqlite3.Connection, entry_id: int, error: str, retry_in: float) -> None:
    """The server said no: tried again in ``retry_in`` seconds (the replay's back-off)."""
    when = (datetime.now(UTC) + timedelta(seconds=retry_in)).isoformat(timespec="seconds")
    conn.execute(
        "UPDATE journal SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
        (error, when, entry_id),
    )


def complete(conn: sqlite3.Connection, entry_id: int) -> None:
    conn.execute("UPDATE journal SET state = 'done', done_at = ?, last_error = NULL WHERE id = ?", (_now(), entry_id))
