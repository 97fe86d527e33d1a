"""messages.list and messages.show: reading the local store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bimmaild import message_view
from bimmaild.accounts.service import AccountService
from bimmaild.control.router import Router, Session
from bimmaild.protocol.errors import InvalidParams, NotFound, StorageError
from bimmaild.store import folders as folder_q
from bimmaild.store import messages as message_q
from bimmaild.store.db import Database
from bimmaild.sync.service import SyncService
from bimmaild.sync.trash import Trash

# Bytes of a raw message sent over the socket; bigger ones are read from their file by path.
MAX_RAW = 24 * 1024 * 1024


def owned_messages(db: Database, ids: Sequence[int], owner: int) -> None:
    """Every id is a message of ``owner``'s accounts; another user's is "not found", like a missing one."""
    found = {
        row[0]
        for row in db.conn.execute(
            f"SELECT m.id FROM messages m JOIN accounts a ON a.id = m.account_id"  # noqa: S608 (placeholders only)
            f" WHERE a.owner_uid = ? AND m.id IN ({','.join('?' * len(ids))})",
            (owner, *ids),
        )
    }
    for i, message_id in enumerate(ids):
        if message_id not in found:
            raise NotFound(f"no message {message_id}", field=f"ids[{i}]")


class MessageHandlers:
    def __init__(
        self, db: Database, accounts: AccountService, mail_root: Path, trash: Trash, sync: SyncService
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.mail_root = mail_root
        self.trash = trash
        self.sync = sync

    def register(self, router: Router) -> None:
        router.register("messages.list", self.list)
        router.register("messages.show", self.show)
        router.register("messages.delete", self.delete)
        router.register("messages.restore", self.restore)

    async def delete(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        owned_messages(self.db, params["ids"], session.uid)
        result = await self.trash.delete(params["ids"], permanent=params["permanent"], confirm=params["confirm"])
        for account_id in result["accounts"]:
            self.sync.mirror(account_id)  # the server side right away (the journal keeps it if that fails)
        return result

    async def restore(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        owned_messages(self.db, params["ids"], session.uid)
        result = await self.trash.restore(params["ids"])
        for account_id in result["accounts"]:
            self.sync.mirror(account_id)
        return result

    async def list(self, session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
        named = params.get("account") is not None
        accounts = [self.accounts.find(params["account"], session.uid)] if named else self.accounts.all(session.uid)
        folder_ids: list[int] | None = None
        if params["trash"] or params.get("folder") is not None:
            folder_ids = []
            for account in accounts:
                rows = folder_q.for_account(self.db.conn, account.id)
                if params["trash"]:
                    match = [r for r in rows if r["role"] == "account_trash"]
                    if not match and named:
                        raise InvalidParams(
                            f"the trash folder of {account.name!r} is not known yet: fetch the account once first",
                            field="trash",
                        )
                else:
                    match = [r for r in rows if params["folder"] in (r["name"], r["wire_name"])]
                folder_ids += [r["id"] for r in match[:1]]
            if not folder_ids and params.get("folder") is not None:
                where = f"account {accounts[0].name!r}" if named else "no account"
                raise NotFound(f"{where} has no folder {params['folder']!r}", field="folder")
        names = {a.id: a.name for a in accounts}
        rows = message_q.listing(self.db.conn, list(names), folder_ids, params["limit"], params["offset"])
        return [{**message_view.summary(r), "account": names[r["account_id"]]} for r in rows]

    async def show(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        row = message_q.by_id(self.db.conn, params["id"])
        if row is None or self.accounts.find(row["account_id"]).owner_uid != session.uid:
            raise NotFound(f"no message {params['id']}", field="id")
        path = self.mail_root / str(row["account_id"]) / row["maildir"] / "cur" / row["filename"]
        try:
            raw = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise StorageError(
                f"the file of message {row['id']} is missing ({path}); the next fetch restores it"
            ) from None
        # In a worker thread: parsing a big or deeply nested message takes seconds of CPU,
        # which must not stall every other client, fetch and push of the daemon.
        shown = await asyncio.to_thread(message_view.content, raw)
        result = {**message_view.summary(row), "path": str(path), **shown}
        if params["raw"]:
            if len(raw) > MAX_RAW:
                raise StorageError(f"message {row['id']} is {len(raw)} bytes; read it from {path}", field="raw")
            result["raw"] = raw
        return result
