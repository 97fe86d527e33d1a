"""Sending a message: compose, keep it in the outbox, submit, then the Sent copy (R-D1, R-D2, R-E2).

Order, for "never lost, never sent twice":

1. the message is composed (Message-ID and Date set here) and written, with
   its outbox row and — unless the provider files sent mail itself (Gmail) —
   the journal entry of its Sent copy, before any byte goes to SMTP;
2. the row is marked ``sending`` and the message submitted, one RCPT per
   recipient.  Accepted: ``sent``.  Temporarily refused or unreachable:
   ``queued`` again with a back-off (the schedule retries it).  Permanently
   refused: ``failed``, kept for the user (``outbox retry|cancel``), never
   dropped.  Some recipients refused: they get an outbox entry of their own,
   ``queued`` for a temporary refusal, ``failed`` (kept for the user) for a
   permanent one.  The connection lost once DATA has begun: ``uncertain``,
   never resent on its own (the server may have taken it);
3. the Sent copy is appended by the journal (it waits while the message is
   queued; a failed message gets none), once: the Sent folder is searched for
   the Message-ID first.

A daemon killed during submission leaves a ``sending`` row: at the next start
it becomes ``uncertain`` (the server may have taken it); it is not resent on
its own, because SMTP cannot tell, and resending could deliver it twice.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import functools
import json
import logging
import mimetypes
import os
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bimmaild.accounts.model import Account
from bimmaild.accounts.providers import ProviderDatabase
from bimmaild.accounts.service import AccountService
from bimmaild.backoff import doubling
from bimmaild.events import EventBus
from bimmaild.protocol.errors import Conflict, InvalidParams, NotFound
from bimmaild.send import compose, recipients
from bimmaild.send.signatures import Signatures
from bimmaild.send.smtp import Submission, SubmissionFailed, SubmissionUncertain, submit
from bimmaild.store import journal as journal_q
from bimmaild.store.db import Database
from bimmaild.store.maildir import fsync_directory

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 30  # with the back-off (1, 2, 4 … 60 min), about a day of trying
MAX_BACKOFF = timedelta(hours=1)
HISTORY = timedelta(days=30)
APPEND_ENTRIES = (  # the pending Sent copy of an outbox entry
    "SELECT id FROM journal WHERE kind = 'append' AND state = 'pending' AND json_extract(params, '$.outbox_id') = ?"
)
DELIVERABLE = ("queued", "failed", "uncertain")  # states from which a message may be (re)submitted


def _now() -> datetime:
    return datetime.now(UTC)


class SendService:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        signatures: Signatures,
        providers: ProviderDatabase,
        data_dir: Path,
        timeout: float,
        events: EventBus | None = None,
        *,
        retry_seconds: float = 60.0,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.signatures = signatures
        self.providers = providers
        self.outbox_dir = data_dir / "outbox"
        self.timeout = timeout
        self.events = events
        self.retry_base = timedelta(seconds=retry_seconds)
        self.after_send: Any = None  # callable(account_id): the daemon replays the journal (the Sent copy)

    # -- composing -------------------------------------------------------------------

    def _sender(self, ref: str | int | None, owner: int) -> Account:
        if ref is not None:
            return self.accounts.find(ref, owner)
        primary = self.accounts.primary(owner)
        if primary is None:
            raise InvalidParams(
                "no account is primary: give the sending account (from), or make one primary", field="from"
            )
        return primary

    async def send(self, params: dict[str, Any], owner: int) -> dict[str, Any]:
        """Compose and submit for ``owner`` (the session's user): their accounts, their primary one."""
        account = self._sender(params.get("from"), owner)
        try:
            to, cc, bcc = recipients.parse_fields(params["to"], params["cc"], params["bcc"], account.separator)
        except recipients.RecipientError as exc:
            raise InvalidParams(exc.message, field=exc.field or "to") from None
        addresses = list(recipients.envelope_addresses(to, cc, bcc))
        if not addresses:
            raise InvalidParams("no recipient: give at least one address in to, cc or bcc", field="to")
        signature = None if params["no_signature"] else self.signatures.load(account.id, params.get("signature"))
        build = functools.partial(
            compose.build_message,
            sender=account.email, to=recipients.header_value(to.recipients), cc=recipients.header_value(cc.recipients),
            bcc=recipients.header_value(bcc.recipients), subject=params["subject"], text=params["text"],
            html=params.get("html"), signature=signature, attachments=_attachments(params.get("attachments", [])),
            domain=account.email.rpartition("@")[2],
        )  # fmt: skip
        utf8 = any(not a.rpartition("@")[0].isascii() for a in addresses)
        # Encoding big attachments takes a while: not on the loop that serves every client.
        message, raw = await asyncio.to_thread(_serialised, build, utf8)
        outbox_id = await self._enqueue(account, message, raw, addresses)
        result = await self.deliver(outbox_id)
        warnings = [w for f in (to, cc, bcc) for w in f.warnings]
        return {**result, "warnings": warnings, "signature": signature.name if signature else None}

    async def _enqueue(self, account: Account, message: EmailMessage, raw: bytes, addresses: list[str]) -> int:
        path = self.outbox_dir / f"{uuid.uuid4().hex}.eml"
        await asyncio.to_thread(_write_durably, path, raw)
        provider = self.providers.by_id(account.provider) if account.provider else None
        now = _now().isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO outbox (account_id, message_id, subject, sender, recipients, filename, state,"
                " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                (account.id, message["Message-ID"], message["Subject"], account.email, json.dumps(addresses),
                 str(path), now, now, now),
            )  # fmt: skip
            assert cur.lastrowid is not None
            if not (provider and provider.stores_sent_copy):
                journal_q.record(conn, account.id, "append", {
                    "outbox_id": cur.lastrowid, "filename": str(path), "message_id": message["Message-ID"],
                })  # fmt: skip
        return cur.lastrowid

    # -- delivering ------------------------------------------------------------------

    async def deliver(self, outbox_id: int) -> dict[str, Any]:
        row = self._row(outbox_id)
        account = self.accounts.find(row["account_id"])
        message = await asyncio.to_thread(_read_message, Path(row["filename"]))
        del message["Bcc"]  # the envelope carries Bcc recipients; the transmitted header must not
        row = self._row(outbox_id)  # again, after the awaits: another caller may have taken it meanwhile
        if row["state"] not in DELIVERABLE:
            raise Conflict(f"outbox entry {outbox_id} is {row['state']}", field="id")
        self._update(outbox_id, state="sending", attempts=row["attempts"] + 1)
        try:
            sent = await submit(
                account, self.accounts.credentials, message, json.loads(row["recipients"]), self.timeout
            )
        except SubmissionFailed as exc:
            return await self._failed(row, exc)
        except SubmissionUncertain as exc:
            error = f"{exc.message}; check the recipients' copy or the Sent folder, then retry or cancel"
            self._update(outbox_id, state="uncertain", last_error=error)
            log.warning("outbox %d: %s (uncertain)", outbox_id, exc.message)
            return self._result(row, "uncertain", [], {}, error)
        except BaseException as exc:  # a bug or a cancellation mid-submission: the outcome is unknown
            self._update(outbox_id, state="uncertain", last_error=f"submission interrupted: {exc!r}")
            raise
        return await self._succeeded(row, sent)

    async def _failed(self, row: sqlite3.Row, exc: SubmissionFailed) -> dict[str, Any]:
        retry = [a for a, (code, _) in exc.refused.items() if 400 <= code < 500]
        if retry and len(retry) < len(exc.refused):
            # Every recipient refused, some only for now: those get an entry of their own, retried;
            # this one keeps the others, refused for good, for the user.
            await self._requeue(row, retry)
            self._update(row["id"], recipients=json.dumps([a for a in exc.refused if a not in retry]))
        else:
            retry = []
        attempts = row["attempts"] + 1
        if exc.temporary and attempts < MAX_ATTEMPTS:
            wait = timedelta(seconds=doubling(attempts, self.retry_base.total_seconds(), MAX_BACKOFF.total_seconds()))
            self._update(row["id"], state="queued", last_error=exc.message,
                         next_attempt_at=(_now() + wait).isoformat(timespec="seconds"))  # fmt: skip
            state = "queued"
        else:
            self._update(row["id"], state="failed", last_error=exc.message)
            state = "failed"
        log.warning("outbox %d: %s (%s)", row["id"], exc.message, state)
        refused = {a: {"code": c, "message": m} for a, (c, m) in exc.refused.items()}
        return self._result(row, state, [], refused, exc.message, retry)

    async def _succeeded(self, row: sqlite3.Row, sent: Submission) -> dict[str, Any]:
        refused = {a: {"code": c, "message": m} for a, (c, m) in sent.refused.items()}
        self._update(row["id"], state="sent", last_error=None,
                     result=json.dumps({"accepted": sent.accepted, "refused": refused}))  # fmt: skip
        retry = sent.temporary
        if retry:
            await self._requeue(row, retry)
        refused_for_good = [a for a in sent.refused if a not in retry]
        kept = None
        if refused_for_good:  # kept for the user to see and decide (outbox retry|cancel), like a total refusal
            error = "refused: " + "; ".join(f"{a}: {c} {m}" for a, (c, m) in sent.refused.items() if a not in retry)
            kept = await self._requeue(row, refused_for_good, state="failed", error=error)
        await self._release(row["id"])
        if self.after_send is not None:
            self.after_send(row["account_id"])
        return {**self._result(row, "sent", sent.accepted, refused, None, retry), "reply": sent.reply,
                "refused_outbox_id": kept}  # fmt: skip

    async def _requeue(
        self, row: sqlite3.Row, addresses: list[str], *, state: str = "queued", error: str | None = None
    ) -> int:
        """Refused recipients: an outbox entry of their own, with its own copy of the file."""
        copy = self.outbox_dir / f"{uuid.uuid4().hex}.eml"
        data = await asyncio.to_thread(Path(row["filename"]).read_bytes)
        await asyncio.to_thread(_write_durably, copy, data)
        now = _now().isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO outbox (account_id, message_id, subject, sender, recipients, filename, state,"
                " last_error, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row["account_id"], row["message_id"], row["subject"], row["sender"], json.dumps(addresses),
                 str(copy), state, error, (_now() + self.retry_base).isoformat(timespec="seconds"), now, now),
            )  # fmt: skip
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _result(
        self, row: sqlite3.Row, state: str, accepted: list[str], refused: dict[str, Any], error: str | None,
        retry: list[str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        account = self.accounts.find(row["account_id"])
        return {
            "outbox_id": row["id"],
            "account": account.name,
            "message_id": row["message_id"],
            "state": state,
            "accepted": accepted,
            "refused": refused,
            "partial": bool(accepted) and bool(refused),
            "retrying": retry or [],
            "error": error,
            "reply": None,
            "refused_outbox_id": None,
        }

    # -- the outbox ---------------------------------------------------------------

    async def recover(self) -> None:
        """At start: a submission cut by a crash has an unknown outcome; say so, never resend blindly.

        Delivered and cancelled entries are listed for a month.  Files nothing
        refers to any more (a crash between writing the file and its row; an
        account deleted with its outbox) are removed.
        """
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET state = 'uncertain', last_error = ? WHERE state = 'sending'",
                ("the daemon stopped while submitting: the server may have taken the message; "
                 "check the recipients' copy or the Sent folder, then retry or cancel",),
            )  # fmt: skip
        needed = {r[0] for r in self.db.conn.execute("SELECT filename FROM outbox")}
        needed |= {
            r[0]
            for r in self.db.conn.execute(
                "SELECT json_extract(params, '$.filename') FROM journal WHERE kind = 'append' AND state = 'pending'"
            )
        }
        done = self.db.conn.execute("SELECT id FROM outbox WHERE state IN ('sent', 'cancelled')").fetchall()
        for (outbox_id,) in done:
            await self._release(outbox_id)
        with self.db.transaction() as conn:  # the outbox keeps a month of history
            conn.execute(
                "DELETE FROM outbox WHERE state IN ('sent', 'cancelled') AND updated_at < ? AND id NOT IN"
                " (SELECT json_extract(params, '$.outbox_id') FROM journal"
                " WHERE kind = 'append' AND state = 'pending')",
                ((_now() - HISTORY).isoformat(timespec="seconds"),),
            )
        removed = await asyncio.to_thread(_sweep, self.outbox_dir, needed)
        if removed:
            log.info("outbox: removed %d file(s) no message refers to", removed)

    async def retry_due(self) -> None:
        """The schedule's job: submit every queued message whose time has come."""
        now = _now().isoformat(timespec="seconds")
        due = self.db.conn.execute(
            "SELECT id FROM outbox WHERE state = 'queued' AND next_attempt_at <= ? ORDER BY id", (now,)
        ).fetchall()
        for (outbox_id,) in due:
            try:
                await self.deliver(outbox_id)
            except (Conflict, NotFound):
                continue  # retried by the user meanwhile, or its account deleted
            except Exception:  # one broken entry must not hold up the others
                log.exception("outbox %d: retry failed", outbox_id)

    def listing(self, ref: str | int | None, owner: int) -> list[dict[str, Any]]:
        if ref is None:
            rows = self.db.conn.execute(
                "SELECT o.* FROM outbox o JOIN accounts a ON a.id = o.account_id WHERE a.owner_uid = ? ORDER BY o.id",
                (owner,),
            ).fetchall()
        else:
            account_id = self.accounts.find(ref, owner).id
            rows = self.db.conn.execute(
                "SELECT * FROM outbox WHERE account_id = ? ORDER BY id", (account_id,)
            ).fetchall()
        return [self._public(r) for r in rows]

    def _public(self, row: sqlite3.Row) -> dict[str, Any]:
        return _public(row, self.accounts.find(row["account_id"]).name)

    async def retry(self, outbox_id: int, owner: int) -> dict[str, Any]:
        row = self._row(outbox_id, owner)
        if row["state"] not in DELIVERABLE:
            raise InvalidParams(f"outbox entry {outbox_id} is {row['state']}: nothing to retry", field="id")
        return await self.deliver(outbox_id)

    async def cancel(self, outbox_id: int, owner: int) -> dict[str, Any]:
        row = self._row(outbox_id, owner)
        if row["state"] not in DELIVERABLE:
            raise InvalidParams(f"outbox entry {outbox_id} is {row['state']}: it cannot be cancelled", field="id")
        with self.db.transaction() as conn:  # a cancelled message gets no Sent copy: that entry is done
            for entry in conn.execute(APPEND_ENTRIES, (outbox_id,)).fetchall():
                journal_q.complete(conn, entry["id"])
        self._update(outbox_id, state="cancelled")
        await self._release(outbox_id)
        return self._public(self._row(outbox_id))

    async def _release(self, outbox_id: int) -> None:
        """Remove the message's file once nothing needs it: delivered or cancelled, and no Sent
        copy waiting (that one removes the file itself when it is done)."""
        waiting = self.db.conn.execute(APPEND_ENTRIES, (outbox_id,)).fetchone()
        row = self._row(outbox_id)
        if waiting is None and row["state"] in ("sent", "cancelled"):
            await asyncio.to_thread(Path(row["filename"]).unlink, missing_ok=True)

    def _row(self, outbox_id: int, owner: int | None = None) -> sqlite3.Row:
        """The entry; with ``owner``, only theirs (another user's is "not found", like a missing one)."""
        row: sqlite3.Row | None = self.db.conn.execute("SELECT * FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        if row is not None and owner is not None and self.accounts.find(row["account_id"]).owner_uid != owner:
            row = None
        if row is None:
            raise NotFound(f"no outbox entry {outbox_id}", field="id")
        return row

    def _update(self, outbox_id: int, **values: Any) -> None:
        values["updated_at"] = _now().isoformat(timespec="seconds")
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.db.transaction() as conn:
            conn.execute(f"UPDATE outbox SET {sets} WHERE id = ?", (*values.values(), outbox_id))  # noqa: S608
        if self.events is not None and "state" in values:
            row = self._row(outbox_id)
            owner = self.accounts.find(row["account_id"]).owner_uid
            self.events.publish("outbox.changed", self._public(row), owner=owner)


def _public(row: sqlite3.Row, account: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account": account,
        "message_id": row["message_id"],
        "subject": row["subject"],
        "recipients": json.loads(row["recipients"]),
        "state": row["state"],
        "attempts": row["attempts"],
        "next_attempt_at": row["next_attempt_at"] if row["state"] == "queued" else None,
        "last_error": row["last_error"],
        "result": json.loads(row["result"]) if row["result"] else None,
        "created_at": row["created_at"],
    }


def _attachments(items: list[dict[str, Any]]) -> list[compose.Attachment]:
    out = []
    for i, item in enumerate(items):
        if not item.get("filename"):
            raise InvalidParams("an attachment needs a file name", field=f"attachments[{i}].filename")
        kind = item.get("content_type") or mimetypes.guess_type(item["filename"])[0] or "application/octet-stream"
        if "/" not in kind:
            raise InvalidParams(f"{kind!r} is not a MIME type", field=f"attachments[{i}].content_type")
        out.append(compose.Attachment(item["filename"], kind, bytes(item["data"])))
    return out


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)


def _serialised(build: Callable[[], EmailMessage], utf8: bool) -> tuple[EmailMessage, bytes]:
    message = build()
    return message, message.as_bytes(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)


def _sweep(directory: Path, needed: set[str]) -> int:
    removed = 0
    for path in directory.glob("*.eml") if directory.is_dir() else ():
        if str(path) not in needed:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _read_message(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message
