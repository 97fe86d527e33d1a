"""Projects: the collaborative space where assigned messages outlive the server and the account (R-C6, R-X2).

Assigning a message gives the project its own copy: the file is hard-linked
(or copied) into ``<data>/projects/<project-id>/cur/`` and the index fields
are copied into ``project_messages``.  Nothing the account's sync does (an
expunge on the server, the account's deletion) can reach that copy; only
``unassign`` removes it.

Projects are shared by the users of a daemon; each assignment belongs to the
user who made it (R-L3): a user sees, reads and removes their own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bimmaild.accounts import validation
from bimmaild.protocol.errors import Conflict, NotFound
from bimmaild.store.db import Database
from bimmaild.store.maildir import fsync_directory


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Projects:
    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.root = data_dir / "projects"
        self.mail_root = data_dir / "mail"

    def find(self, name: str) -> sqlite3.Row:
        row: sqlite3.Row | None = self.db.conn.execute(
            "SELECT * FROM projects WHERE name = ?", (name.strip(),)
        ).fetchone()
        if row is None:
            raise NotFound(f"no project named {name!r}", field="project")
        return row

    def add(self, name: str, owner: int) -> dict[str, Any]:
        name = validation.text(name, "name", what="project name")
        if self.db.conn.execute("SELECT 1 FROM projects WHERE name = ?", (name,)).fetchone():
            raise Conflict(f"a project named {name!r} already exists", field="name")
        with self.db.transaction() as conn:
            cur = conn.execute("INSERT INTO projects (name, created_at) VALUES (?, ?)", (name, _now()))
        return self.public(self.find(name), owner) | {"id": cur.lastrowid}

    def public(self, row: sqlite3.Row, owner: int) -> dict[str, Any]:
        """``messages``: the user's own assignments in it."""
        count = self.db.conn.execute(
            "SELECT count(*) FROM project_messages WHERE project_id = ? AND owner_uid = ?", (row["id"], owner)
        )
        return {"id": row["id"], "name": row["name"], "created_at": row["created_at"], "messages": count.fetchone()[0]}

    def all(self, owner: int) -> list[dict[str, Any]]:
        return [self.public(r, owner) for r in self.db.conn.execute("SELECT * FROM projects ORDER BY id")]

    async def assign(self, ids: list[int], project: str, owner: int) -> dict[str, Any]:
        target = self.find(project)
        sources = []
        for i, mid in enumerate(ids):
            row = self.db.conn.execute(
                "SELECT m.*, f.maildir, f.name AS folder, a.name AS account_name, a.email AS account_email "
                "FROM messages m JOIN folders f ON f.id = m.folder_id JOIN accounts a ON a.id = m.account_id "
                "WHERE m.id = ? AND a.owner_uid = ?",
                (mid, owner),
            ).fetchone()
            if row is None:
                raise NotFound(f"no message {mid}", field=f"ids[{i}]")
            sources.append(row)
        assigned = []
        for row in sources:
            already = self.db.conn.execute(
                "SELECT id FROM project_messages WHERE project_id = ? AND source_id = ?", (target["id"], row["id"])
            ).fetchone()
            if already:
                assigned.append(already["id"])
                continue
            assigned.append(await self._copy_in(target["id"], row, owner))
        return {"project": target["name"], "assigned": assigned}

    async def _copy_in(self, project_id: int, row: sqlite3.Row, owner: int) -> int:
        directory = self.root / str(project_id) / "cur"
        name = f"{uuid.uuid4().hex}.bimmail:2,{row['filename'].split(':2,', 1)[1] if ':2,' in row['filename'] else ''}"
        source = self.mail_root / str(row["account_id"]) / row["maildir"] / "cur" / row["filename"]
        await asyncio.to_thread(_link_durably, source, directory, name)
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO project_messages (project_id, source_id, account_name, account_email, folder, message_id,"
                " sent_at, sender, recipients, subject, size, filename, assigned_at, owner_uid)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, row["id"], row["account_name"], row["account_email"], row["folder"], row["message_id"],
                 row["sent_at"], row["sender"], row["recipients"], row["subject"], row["size"], name, _now(), owner),
            )  # fmt: skip
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def unassign(self, ids: list[int], project: str, owner: int) -> dict[str, Any]:
        """``ids`` are account message ids (as assigned) or project message ids."""
        target = self.find(project)
        removed = []
        for mid in ids:
            row = self.db.conn.execute(
                "SELECT * FROM project_messages WHERE project_id = ? AND owner_uid = ? AND (source_id = ? OR id = ?)",
                (target["id"], owner, mid, mid),
            ).fetchone()
            if row is None:
                continue
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM project_messages WHERE id = ?", (row["id"],))
            path = self.root / str(target["id"]) / "cur" / row["filename"]
            await asyncio.to_thread(path.unlink, True)
            removed.append(row["id"])
        return {"project": target["name"], "unassigned": removed}

    def messages(self, project: str, owner: int) -> list[dict[str, Any]]:
        target = self.find(project)
        rows = self.db.conn.execute(
            "SELECT * FROM project_messages WHERE project_id = ? AND owner_uid = ? ORDER BY sent_at DESC, id DESC",
            (target["id"], owner),
        ).fetchall()
        return [self._summary(r) | {"project": target["name"]} for r in rows]

    async def message(self, message_id: int, owner: int) -> tuple[dict[str, Any], bytes, Path]:
        row = self.db.conn.execute(
            "SELECT * FROM project_messages WHERE id = ? AND owner_uid = ?", (message_id, owner)
        ).fetchone()
        if row is None:
            raise NotFound(f"no project message {message_id}", field="id")
        path = self.root / str(row["project_id"]) / "cur" / row["filename"]
        return self._summary(row), await asyncio.to_thread(path.read_bytes), path

    @staticmethod
    def _summary(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "source_id": row["source_id"],
            "account": row["account_name"],
            "account_email": row["account_email"],
            "folder": row["folder"],
            "message_id": row["message_id"],
            "date": row["sent_at"],
            "from": row["sender"],
            "to": row["recipients"],
            "subject": row["subject"],
            "size": row["size"],
            "assigned_at": row["assigned_at"],
        }


def _link_durably(source: Path, directory: Path, name: str) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / name
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
        with open(target, "rb") as f:
            os.fsync(f.fileno())
    fsync_directory(directory)
