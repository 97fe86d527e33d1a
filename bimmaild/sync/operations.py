"""Replaying the journal of server operations over an IMAP connection (R-C3, R-C4, R-C7).

Every operation is idempotent and recognises whether it already happened,
because a crash can come between sending it and recording its result:

* ``create``: the folder is listed already → only subscribe; ALREADYEXISTS is success.
* ``move``: if the UID is no longer in the source folder, the move happened (or
  the message went otherwise); the copy in the destination is then matched by
  Message-ID and size when that folder syncs.  Otherwise ``UID MOVE`` (RFC
  6851), or without MOVE: ``UID COPY`` (its COPYUID recorded at once), then
  ``UID STORE +FLAGS.SILENT (\\Deleted)`` and ``UID EXPUNGE`` of that UID only
  — never a plain EXPUNGE, which would remove other clients' deleted mail.
  Before copying again after an interrupted attempt, the destination is
  searched for the Message-ID, so a message is never copied twice.
* ``expunge``: ``UID STORE \\Deleted`` + ``UID EXPUNGE`` of that UID, if still there.
* ``append`` (the Sent copy of a message sent by SMTP, R-D1): waits while the
  outbox has not delivered the message (queued, failed, uncertain: the user may
  still retry); none for a cancelled one.  The Sent folder is searched for the
  Message-ID first, so a copy appended just before a crash is not appended
  again; then ``APPEND (\\Seen)``.  The message is downloaded by the Sent
  folder's sync, like any other.  The outbox file is removed once it is done.

A refusal by the server is recorded on the entry, which is tried again after
1, 2, 4 … minutes (at most six hours: ``MAX_RETRY_DELAY``), never given up;
a broken connection ends the replay (the rest waits for the next one).  One
SELECT serves every entry on the same folder (``ensure_selected``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bimmaild.backoff import doubling
from bimmaild.imap.connection import CommandFailed, ImapConnection
from bimmaild.imap.parse import quote_mailbox
from bimmaild.store import folders as folder_q
from bimmaild.store import journal as journal_q
from bimmaild.store.db import Database
from bimmaild.store.maildir import MaildirFolder, file_name

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 6 * 3600.0  # seconds: the longest wait between two tries of a refused entry


def _quoted_id(message_id: str) -> str:
    return '"' + message_id.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Postponed(Exception):
    """The entry cannot run yet (e.g. its message is still in the outbox); not an attempt."""


class Operations:
    def __init__(self, db: Database, conn: ImapConnection, account_id: int, mail_root: Path) -> None:
        self.db = db
        self.conn = conn
        self.account_id = account_id
        self.account_dir = mail_root / str(account_id)

    async def replay(self, kinds: Collection[str] | None = None) -> list[str]:
        """Carry out every pending entry (of these kinds) in order; returns notes about entries the
        server refused (each is tried again later, with a back-off)."""
        notes = []
        handlers = {"create": self._create, "move": self._move, "expunge": self._expunge, "append": self._append}
        for entry in journal_q.pending(self.db.conn, self.account_id, due_only=True):
            if kinds is not None and entry["kind"] not in kinds:
                continue
            params = journal_q.params(entry)
            try:
                await handlers[entry["kind"]](entry["id"], params)
            except Postponed:
                continue
            except CommandFailed as exc:
                error = f"{exc.command}: {exc.result} {exc.text}"
                with self.db.transaction() as conn:
                    retry_in = doubling(entry["attempts"] + 1, 60.0, MAX_RETRY_DELAY)
                    journal_q.refused_now(conn, entry["id"], error, retry_in)
                notes.append(f"server operation {entry['kind']} #{entry['id']} refused (tried again later): {error}")
                log.warning(
                    "account %d: journal entry %d (%s) refused: %s", self.account_id, entry["id"], entry["kind"], error
                )
                continue
            with self.db.transaction() as conn:
                journal_q.complete(conn, entry["id"])
        return notes

    # -- create ----------------------------------------------------------------

    async def _create(self, entry_id: int, params: dict[str, Any]) -> None:
        mailbox = quote_mailbox(params["wire_name"])
        listed = {e.wire_name for e in await self.conn.list_entries()}
        if params["wire_name"] not in listed:
            try:
                await self.conn.create(mailbox)
            except CommandFailed as exc:
                if "ALREADYEXISTS" not in exc.text.upper():
                    raise
        await self.conn.subscribe(mailbox)
        log.info("account %d: created and subscribed %r on the server", self.account_id, params["wire_name"])

    # -- move ------------------------------------------------------------------

    async def _move(self, entry_id: int, params: dict[str, Any]) -> None:
        source = quote_mailbox(params["from_wire"])
        target = quote_mailbox(params["to_wire"])
        uid = int(params["uid"])
        await self.conn.ensure_selected(source)
        new_uid: int | None = params.get("copied_uid")
        if uid <= 0 and params.get("message_id"):
            # Recorded while an earlier move of this message had not reached the server (a restore
            # right after the delete): only the placeholder UID was known, the earlier entry has
            # moved it since.  (UID SEARCH of a placeholder UID would be a BAD command, refused
            # and retried for ever.)
            found = await self.conn.uid_search(f"HEADER Message-ID {_quoted_id(params['message_id'])}")
            uid = max(found, default=0)
        if uid > 0 and uid in await self.conn.uid_search(f"UID {uid}"):
            # A COPY once sent is finished as such, even if the server has offered MOVE since:
            # a MOVE now would leave a second copy in the target.
            if "MOVE" in self.conn.capabilities and not params.get("copy_sent"):
                new_uid = (await self.conn.uid_move(str(uid), target)).get(uid)
            else:
                new_uid = await self._copy_then_expunge(entry_id, params, uid, source, target)
        await self._settle(params, new_uid)

    async def _copy_then_expunge(
        self, entry_id: int, params: dict[str, Any], uid: int, source: str, target: str
    ) -> int | None:
        copied: int | None = params.get("copied_uid")
        if copied is None and params.get("copy_sent") and params.get("message_id"):
            # Interrupted after COPY was sent: is the copy there already?
            await self.conn.ensure_selected(target)
            found = await self.conn.uid_search(f"HEADER Message-ID {_quoted_id(params['message_id'])}")
            copied = max(found) if found else None
            await self.conn.ensure_selected(source)
        if copied is None:
            with self.db.transaction() as conn:
                journal_q.save_params(conn, entry_id, {**params, "copy_sent": True})
            copied = (await self.conn.uid_copy(str(uid), target)).get(uid)
            with self.db.transaction() as conn:
                journal_q.save_params(conn, entry_id, {**params, "copy_sent": True, "copied_uid": copied})
        await self.conn.uid_store(str(uid), "+FLAGS.SILENT", "(\\Deleted)")
        await self.conn.uid_expunge(str(uid))
        return copied

    async def _settle(self, params: dict[str, Any], new_uid: int | None) -> None:
        """The local copy takes its server UID in the destination (else waits to be matched by sync)."""
        row = self.db.conn.execute(
            "SELECT id, folder_id, filename, flags FROM messages WHERE id = ?", (params["row_id"],)
        ).fetchone()
        if row is None or row["folder_id"] != params["to_folder_id"]:
            return  # the local copy went elsewhere meanwhile (deleted for good, restored …)
        folder = folder_q.by_id(self.db.conn, params["to_folder_id"])
        if new_uid is None or folder is None or folder["uidvalidity"] is None:
            with self.db.transaction() as conn:
                conn.execute("UPDATE messages SET pending = -1 WHERE id = ?", (row["id"],))
            return
        name = file_name(folder["uidvalidity"], new_uid, row["flags"].split())
        maildir = MaildirFolder(self.account_dir / folder["maildir"])
        await asyncio.to_thread(_rename_in, maildir, row["filename"], name)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE messages SET uid = ?, filename = ?, pending = NULL WHERE id = ?", (new_uid, name, row["id"])
            )

    # -- expunge ---------------------------------------------------------------

    async def _expunge(self, entry_id: int, params: dict[str, Any]) -> None:
        await self.conn.ensure_selected(quote_mailbox(params["folder_wire"]))
        if params["uid"] is not None:
            uids = [u for u in await self.conn.uid_search(f"UID {int(params['uid'])}") if u == int(params["uid"])]
        elif params.get("message_id"):  # purged before its move reached the server: find the copy
            uids = await self.conn.uid_search(f"HEADER Message-ID {_quoted_id(params['message_id'])}")
        else:
            uids = []
        if uids:
            listed = ",".join(str(u) for u in uids)
            await self.conn.uid_store(listed, "+FLAGS.SILENT", "(\\Deleted)")
            await self.conn.uid_expunge(listed)

    # -- append ----------------------------------------------------------------

    async def _append(self, entry_id: int, params: dict[str, Any]) -> None:
        outbox = self.db.conn.execute("SELECT state FROM outbox WHERE id = ?", (params["outbox_id"],)).fetchone()
        state = outbox["state"] if outbox is not None else "cancelled"
        if state in ("queued", "sending", "failed", "uncertain"):
            raise Postponed
        path = Path(params["filename"])
        if state == "sent":
            sent = self.db.conn.execute(
                "SELECT wire_name FROM folders WHERE account_id = ? AND role = 'sent' AND state = 'present'",
                (self.account_id,),
            ).fetchone()
            if sent is None:
                raise CommandFailed("APPEND", "NO", "the account has no Sent folder on the server")
            mailbox = quote_mailbox(sent["wire_name"])
            await self.conn.ensure_selected(mailbox)
            if not await self.conn.uid_search(f"HEADER Message-ID {_quoted_id(params['message_id'])}"):
                try:
                    data = await asyncio.to_thread(path.read_bytes)
                except FileNotFoundError:
                    log.error(
                        "sent copy of %s: the outbox file %s is gone; no copy appended", params["message_id"], path
                    )
                    return
                await self.conn.append(mailbox, data)
                log.info(
                    "account %d: sent copy of %s appended to %r",
                    self.account_id,
                    params["message_id"],
                    sent["wire_name"],
                )
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _rename_in(maildir: MaildirFolder, old: str, new: str) -> None:
    if (maildir.cur / old).exists():
        maildir.rename(old, new)
        maildir.sync_directory()
