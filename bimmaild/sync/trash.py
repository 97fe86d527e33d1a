"""Deleting, restoring and purging messages: local at once, on the server through the journal.

A delete (R-C4) moves the local copy into the account's trash folder at
once (file and row), and journals the server move in the same transaction;
the move is carried out right away by a trash mirror run, or later when the
server is reachable (R-C7).  Until the server gives the copy's new UID, the
row is ``pending`` (a placeholder UID, never removed by a sync).  Restore is
the same move back to the folder the message came from.  Deleting from the
trash is permanent: the local copy goes, and the server copy is expunged
(``UID EXPUNGE`` of that UID only).

Order for crash safety: the file moves first, then one transaction moves the
row and writes the journal entry.  A crash in between leaves the file where
reconciliation finds it and the server untouched.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from bimmaild.protocol.errors import ConfirmationRequired, InvalidParams, NotFound
from bimmaild.store import folders as folder_q
from bimmaild.store import journal as journal_q
from bimmaild.store.db import Database
from bimmaild.store.maildir import MaildirFolder


class Trash:
    def __init__(self, db: Database, mail_root: Path) -> None:
        self.db = db
        self.mail_root = mail_root

    def _row(self, message_id: int, index: int) -> sqlite3.Row:
        row: sqlite3.Row | None = self.db.conn.execute(
            "SELECT m.*, f.role, f.wire_name, f.maildir, f.name AS folder FROM messages m "
            "JOIN folders f ON f.id = m.folder_id WHERE m.id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no message {message_id}", field=f"ids[{index}]")
        return row

    def trash_folder(self, account_id: int) -> sqlite3.Row:
        rows = [r for r in folder_q.for_account(self.db.conn, account_id) if r["role"] == "account_trash"]
        if not rows:
            raise InvalidParams(
                "the account's trash folder is not known yet: fetch the account once first", field="ids"
            )
        return rows[0]

    async def delete(self, ids: list[int], *, permanent: bool, confirm: bool) -> dict[str, Any]:
        rows = [self._row(mid, i) for i, mid in enumerate(ids)]
        in_trash = [r for r in rows if r["role"] == "account_trash"]
        if in_trash and not permanent:
            raise InvalidParams(
                f"message {in_trash[0]['id']} is already in the trash; deleting it there is permanent "
                "(permanent: true, with confirm)",
                field="permanent",
            )
        if permanent and len(in_trash) != len(rows):
            raise InvalidParams("only messages in the trash can be deleted permanently", field="permanent")
        rows = _distinct(rows)
        if permanent and not confirm:
            raise ConfirmationRequired(
                f"{len(rows)} message(s) will be deleted for good, locally and on the server", field="confirm"
            )
        accounts = set()
        for row in rows:
            if permanent:
                await self._purge(row)
            else:
                await self._move(row, self.trash_folder(row["account_id"]), origin=row["folder_id"])
            accounts.add(row["account_id"])
        return {"deleted" if permanent else "moved_to_trash": [r["id"] for r in rows], "accounts": sorted(accounts)}

    async def restore(self, ids: list[int]) -> dict[str, Any]:
        rows = [self._row(mid, i) for i, mid in enumerate(ids)]
        for i, row in enumerate(rows):
            if row["role"] != "account_trash":
                raise InvalidParams(f"message {row['id']} is not in the trash", field=f"ids[{i}]")
            if row["origin_folder_id"] is None or folder_q.by_id(self.db.conn, row["origin_folder_id"]) is None:
                raise InvalidParams(f"message {row['id']}: the folder it came from is not known", field=f"ids[{i}]")
        rows = _distinct(rows)
        for row in rows:
            await self._move(row, folder_q.by_id(self.db.conn, row["origin_folder_id"]), origin=None)
        return {"restored": [r["id"] for r in rows], "accounts": sorted({r["account_id"] for r in rows})}

    async def _move(self, row: sqlite3.Row, target: Any, *, origin: int | None) -> None:
        account_dir = self.mail_root / str(row["account_id"])
        source = MaildirFolder(account_dir / row["maildir"])
        destination = MaildirFolder(account_dir / target["maildir"])
        await asyncio.to_thread(_move_file, source, destination, row["filename"])
        try:
            with self.db.transaction() as conn:
                entry = journal_q.record(conn, row["account_id"], "move", {
                    "row_id": row["id"], "uid": row["uid"], "message_id": row["message_id"], "size": row["size"],
                    "from_wire": row["wire_name"], "to_wire": target["wire_name"], "to_folder_id": target["id"],
                })  # fmt: skip
                conn.execute(
                    "UPDATE messages SET folder_id = ?, uid = ?, pending = ?, origin_folder_id = ? WHERE id = ?",
                    (target["id"], -row["id"], entry, origin, row["id"]),
                )
        except Exception:  # not recorded (disk full, read-only store): the file goes back where the index says
            await asyncio.to_thread(_move_file, destination, source, row["filename"])
            raise

    async def _purge(self, row: sqlite3.Row) -> None:
        maildir = MaildirFolder(self.mail_root / str(row["account_id"]) / row["maildir"])
        with self.db.transaction() as conn:
            if row["pending"] is None and row["uid"] > 0:
                journal_q.record(
                    conn, row["account_id"], "expunge", {"folder_wire": row["wire_name"], "uid": row["uid"]}
                )
            else:
                # Its move into the trash has not reached the server yet (no UID there): the queued
                # move runs first, then this entry finds the copy by Message-ID and expunges it.
                journal_q.record(conn, row["account_id"], "expunge", {"folder_wire": row["wire_name"], "uid": None,
                                 "message_id": row["message_id"], "size": row["size"]})  # fmt: skip
            conn.execute("DELETE FROM messages WHERE id = ?", (row["id"],))
        await asyncio.to_thread(maildir.remove, row["filename"])


def _distinct(rows: list[sqlite3.Row]) -> list[sqlite3.Row]:
    """One row per message: an id given twice is one message, whose file must not move twice."""
    return list({row["id"]: row for row in rows}.values())


def _move_file(source: MaildirFolder, destination: MaildirFolder, name: str) -> None:
    destination.ensure()
    (source.cur / name).rename(destination.cur / name)
    destination.sync_directory()
    source.sync_directory()
