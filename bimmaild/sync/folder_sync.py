"""Synchronise one folder over an open IMAP connection (R-C2, R-C7).

Order of a run, each step safe to interrupt (a rerun converges, nothing is
lost or duplicated):

1. reconcile the Maildir with the index (once per folder and process): files
   a crash delivered but never indexed are indexed from their names, files
   half-written in ``tmp/`` go, the renames of an interrupted re-map are
   finished, rows whose file vanished are dropped and the folder's UIDNEXT
   lowered so the next run fetches them again;
2. STATUS: unchanged folder → done, one round trip;
3. SELECT (with CONDSTORE when offered, or QRESYNC with the state of the
   last complete sync: the answer then lists what vanished and which flags
   changed); UIDVALIDITY change → re-map by Message-ID (``planner.remap``):
   the new UIDs are committed first, each row still naming its old file,
   then the files are renamed and the new names committed;
4. new messages, streamed in batches: each batch's files are written and made
   durable in a worker thread while the next batch downloads, then its rows
   are committed; the stream pauses when two batches wait (bounded memory);
5. flag changes (from the QRESYNC answer, else CHANGEDSINCE with CONDSTORE),
   then removals (QRESYNC's VANISHED; a UID SEARCH only when the counts still
   disagree), which stop before a mass removal until confirmed;
6. the folder's state (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, count) is stored
   last: until then the next STATUS check sees a change and resyncs.  A
   message asked for but not returned with its content lowers the stored
   UIDNEXT to its UID and leaves the count unknown: the next run asks again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bimmaild.imap.connection import ImapConnection
from bimmaild.imap.parse import FetchItem, MailboxState, quote_mailbox, uid_set, uids_in_ranges
from bimmaild.store import folders as folder_q
from bimmaild.store import messages as message_q
from bimmaild.store.db import Database
from bimmaild.store.maildir import MaildirFolder, NewFile, base_name, file_name, parse_name
from bimmaild.sync import adoption, headers, planner
from bimmaild.sync.reporting import Reporter

log = logging.getLogger(__name__)

BATCH_BYTES = 8 * 1024 * 1024
BATCH_COUNT = 1000
MAX_WAITING_BATCHES = 2
BODY = "BODY[]"


@dataclass
class FolderResult:
    folder: str
    new: int = 0
    updated: int = 0
    removed: int = 0
    skipped: bool = False  # unchanged since the last sync
    attention: str | None = None  # safety stop: what needs confirming
    error: str | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "new": self.new,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.skipped,
            "needs_attention": self.attention,
            "error": self.error,
        }


def _flags_text(flags: tuple[str, ...] | None) -> str:
    """Stored flags: sorted, without \\Recent (a per-session flag that would look like a change)."""
    return " ".join(sorted({f for f in flags or () if f.lower() != "\\recent"}))


@dataclass
class ReconcilePlan:
    """What ``FolderSync.reconcile`` does to make the index and the Maildir agree."""

    missing: list[tuple[int, int]] = field(default_factory=list)  # (uid, row id): the row's file is gone
    found: list[tuple[str, int]] = field(default_factory=list)  # (file name, row id): its file, another name
    renames: list[tuple[str, str, int]] = field(default_factory=list)  # (old, new, row id): a re-map's to finish
    orphans: list[str] = field(default_factory=list)  # files no row names
    duplicates: list[str] = field(default_factory=list)  # a second file of a row's (UIDVALIDITY, UID)


def plan_reconcile(
    indexed: Mapping[int, tuple[int, str, str]], on_disk: Mapping[str, str], uidvalidity: int | None
) -> ReconcilePlan:
    """Match the index (uid -> (row id, flags, filename)) with the Maildir (base name -> name).

    A row's file is the one its ``filename`` names, flags aside (another mail client may have
    changed the info letters), or else the file named after the folder's UIDVALIDITY and the
    row's UID: a re-map commits the new UIDs before it renames the files (``_remap``), so after
    a crash a row may name its old file while the file already has its new name.  A row found
    under its old name whose new name is free is renamed, finishing the re-map.  Rows with a
    placeholder UID (below 1, waiting for a server UID or for the removal step) keep their names.
    """
    plan = ReconcilePlan()
    claimed: set[str] = set()
    for uid, (mid, _flags, filename) in indexed.items():
        base = filename.split(":", 1)[0]
        canonical = base_name(uidvalidity, uid) if uidvalidity is not None and uid >= 1 else None
        if base in on_disk:
            claimed.add(base)
            name = on_disk[base]
            if canonical is not None and base != canonical and canonical not in on_disk:
                plan.renames.append((name, canonical + name[len(base) :], mid))
            elif name != filename:
                plan.found.append((name, mid))
        elif canonical is not None and canonical in on_disk:
            claimed.add(canonical)
            if on_disk[canonical] != filename:
                plan.found.append((on_disk[canonical], mid))
        else:
            plan.missing.append((uid, mid))
    for base, name in on_disk.items():
        if base in claimed:
            continue
        parsed = parse_name(name)
        if parsed is not None and parsed[0] == uidvalidity and parsed[1] in indexed:
            plan.duplicates.append(name)  # the row has its file under its old name: the same message
        else:
            plan.orphans.append(name)
    return plan


class FolderSync:
    def __init__(
        self,
        db: Database,
        conn: ImapConnection,
        account_id: int,
        folder: Any,
        path: Path,
        *,
        reconcile: bool,
        confirm_removals: bool,
        safety: planner.SafetyStop = planner.DEFAULT_SAFETY,
        reporter: Reporter | None = None,
    ) -> None:
        self.safety = safety
        self.db = db
        self.reporter = reporter or Reporter()
        self.fresh = False
        self.totals = (0, 0)  # messages, bytes to download in this run
        self.done = (0, 0)
        self.conn = conn
        self.account_id = account_id
        self.folder_id: int = folder["id"]
        self.name: str = folder["name"]
        self.mailbox = quote_mailbox(folder["wire_name"])
        self.stored = planner.Stored(
            folder["uidvalidity"], folder["uidnext"], folder["highestmodseq"], folder["message_count"]
        )
        self.maildir = MaildirFolder(path)
        self.do_reconcile = reconcile
        self.confirm_removals = confirm_removals
        self.folder = folder
        # The account's trash folder: new arrivals are matched with copies we already have (R-C5).
        self.adopt = folder["role"] == "account_trash"
        self.condstore = "CONDSTORE" in conn.capabilities or "QRESYNC" in conn.capabilities
        self.result = FolderResult(self.name)
        self.notes: list[str] = []  # for the account's result (what is worth telling, not an error)
        # UIDs asked for whose content the server did not send: absent from its answer, or
        # answered without BODY[] (the second is an error).  Fetched again by the next run.
        self.not_returned: set[int] = set()
        self.without_body: set[int] = set()

    async def run(self) -> FolderResult:
        if self.do_reconcile:
            await self.reconcile()
        items = "(MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)" if self.condstore else "(MESSAGES UIDNEXT UIDVALIDITY)"
        status = await self.conn.status(self.mailbox, items)
        if planner.unchanged(self.stored, status, self.condstore):
            self.result.skipped = True
            return self.result
        qresync = planner.qresync_from(self.stored) if "QRESYNC" in self.conn.enabled else None
        state = await self.conn.select(self.mailbox, condstore=self.condstore, qresync=qresync)
        uidvalidity = state.uidvalidity or status.get("UIDVALIDITY")
        if uidvalidity is None:
            raise RuntimeError(f"the server gave no UIDVALIDITY for {self.name}")
        if planner.uidvalidity_changed(self.stored, uidvalidity):
            await self._remap(uidvalidity)
        elif self.stored.uidvalidity is None:
            # Known before the first file is written, so that a crash mid-way leaves files
            # the next run can recognise as this folder's (reconciliation compares it).
            with self.db.transaction() as conn:
                folder_q.update(conn, self.folder_id, {"uidvalidity": uidvalidity})
        self.fresh = fresh = self.stored.uidnext is None  # first sync: nothing local to update or remove
        start = planner.fetch_from(self.stored, uidvalidity)
        await self._fetch_new(uidvalidity, start)
        removals_done = True
        if not fresh and qresync is not None and qresync[0] == uidvalidity:
            # New messages are in the report too: their flags came with them, fresher than these.
            known = self.stored.uidnext or 0
            flags = {i.uid: i.flags for i in state.changed if i.uid and i.uid < known and i.flags is not None}
            await self._apply_flags(uidvalidity, flags)
            removals_done = await self._apply_vanished(state) and await self._remove_vanished(state.exists)
        elif not fresh:
            await self._update_flags(uidvalidity)
            removals_done = await self._remove_vanished(state.exists)
        uidnext = state.uidnext or max(message_q.uids(self.db.conn, self.folder_id), default=0) + 1
        if self.not_returned:
            # "Every message with a smaller UID that exists on the server is stored": not so
            # for these.  The next run fetches from the first of them (the count left unknown
            # so that its STATUS check does not call the folder unchanged).
            uidnext = min(uidnext, min(self.not_returned))
            removals_done = False
            self._report_not_returned()
        self._save_state(uidvalidity, uidnext, state.highestmodseq, state.exists, removals_done)
        return self.result

    # -- 1. reconciliation ---------------------------------------------------

    async def reconcile(self) -> None:
        await asyncio.to_thread(self.maildir.clear_tmp)
        on_disk = await asyncio.to_thread(self.maildir.delivered)
        indexed = message_q.uids(self.db.conn, self.folder_id)
        plan = plan_reconcile(indexed, on_disk, self.stored.uidvalidity)
        if plan.renames:  # an interrupted re-map: its files take their new names
            await asyncio.to_thread(self._rename_files, [(old, new) for old, new, _ in plan.renames])
        rows = await asyncio.to_thread(self._index_orphans, plan.orphans)
        if plan.duplicates:
            await asyncio.to_thread(self._remove_files, plan.duplicates)
        missing = plan.missing
        with self.db.transaction() as conn:
            message_q.delete(conn, [mid for _, mid in missing])
            conn.executemany(
                "UPDATE messages SET filename = ? WHERE id = ?",
                [(name, mid) for name, mid in plan.found] + [(new, mid) for _old, new, mid in plan.renames],
            )
            message_q.insert_many(conn, rows)
            if missing:
                # Placeholder UIDs (below 1: a copy waiting for its server UID) have nothing to fetch again.
                uids = [uid for uid, _ in missing if uid >= 1]
                if self.stored.uidnext is not None:
                    uids.append(self.stored.uidnext)
                uidnext = min(uids, default=None)
                folder_q.update(conn, self.folder_id, {"uidnext": uidnext, "message_count": None})
                self.stored = planner.Stored(self.stored.uidvalidity, uidnext, self.stored.highestmodseq, None)
        if missing or rows or plan.renames or plan.duplicates:
            log.info("account %d, folder %s: reconciled %d unindexed files, %d missing files, %d re-map renames "
                     "finished, %d duplicate files removed", self.account_id, self.name, len(rows), len(missing),
                     len(plan.renames), len(plan.duplicates))  # fmt: skip

    def _index_orphans(self, names: list[str]) -> list[dict[str, Any]]:
        """Rows for files a crash delivered before their batch was committed (worker thread)."""
        rows = []
        for name in names:
            parsed = parse_name(name)
            if parsed is None or parsed[0] != self.stored.uidvalidity:
                self.maildir.remove(name)  # from another UIDVALIDITY era: the server decides again
                continue
            raw = self.maildir.read(name)
            info = name.split(":2,", 1)[1] if ":2," in name else ""
            flags = [flag for flag, letter in _LETTER_FLAGS.items() if letter in info]
            rows.append(self._row(parsed[1], raw, tuple(flags), None, name))
        return rows

    def _row(
        self, uid: int, raw: bytes | bytearray, flags: tuple[str, ...], internal_date: str | None, filename: str
    ) -> dict[str, Any]:
        summary = headers.summary(raw)
        return {
            "account_id": self.account_id,
            "folder_id": self.folder_id,
            "uid": uid,
            "message_id": summary.message_id,
            "sent_at": summary.sent_at,
            "sender": summary.sender,
            "recipients": summary.recipients,
            "subject": summary.subject,
            "size": len(raw),
            "flags": _flags_text(flags),
            "internal_date": internal_date,
            "filename": filename,
        }

    # -- 4. new messages -----------------------------------------------------

    async def _fetch_new(self, uidvalidity: int, start: int) -> None:
        """Download in batches; one batch is written while the next downloads.

        At most MAX_WAITING_BATCHES downloaded batches wait for the writer: memory
        stays bounded by a few batches whatever the size of the folder.
        """
        known = set(message_q.uids(self.db.conn, self.folder_id))
        sizes: dict[int, int] = {}
        arrivals: dict[int, adoption.Arrival] = {}

        def on_size(item: FetchItem) -> None:
            if item.uid is not None and item.uid >= start and item.uid not in known:
                sizes[item.uid] = item.size or 0
                if self.adopt:
                    header = next((v for k, v in item.sections.items() if k.startswith("BODY[HEADER")), b"")
                    message_id = headers.summary(header + b"\r\n\r\n").message_id
                    arrivals[item.uid] = adoption.Arrival(message_id, item.size or 0, item.flags or ())

        attributes = (
            "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])" if self.adopt else "(UID RFC822.SIZE)"
        )
        await self.conn.uid_fetch(f"{start}:*", attributes, on_size)
        if not sizes:
            return
        await asyncio.to_thread(self.maildir.ensure)
        if arrivals:
            work = adoption.plan(self.db, self.maildir.path.parent, self.folder, uidvalidity, arrivals)
            done = await asyncio.to_thread(adoption.apply_files, work)
            adoption.commit(self.db, done)
            self.result.new += len(done.done)
            sizes = {uid: size for uid, size in sizes.items() if uid not in done.done}
        self.totals = (len(sizes), sum(sizes.values()))
        self.reporter.progress(self.name, 0, self.totals[0], 0, self.totals[1])
        queue: asyncio.Queue[list[FetchItem] | None] = asyncio.Queue(MAX_WAITING_BATCHES)
        try:
            async with asyncio.TaskGroup() as tasks:
                writer = tasks.create_task(self._writer(queue, uidvalidity))
                try:
                    for batch in planner.batches(sizes, BATCH_BYTES, BATCH_COUNT):
                        await queue.put(await self._download(batch))
                except Exception:
                    # A download failed (connection cut, server NO): the batches already
                    # downloaded are whole messages.  Store and index them before giving up,
                    # rather than cancel the writer mid-batch — its thread would go on writing
                    # unobserved, leaving files for the next run to reconcile (and race with).
                    await queue.put(None)
                    await writer
                    raise
                await queue.put(None)
        except ExceptionGroup as group:
            # One failure (the disk, the connection) ends both sides; callers handle its kind.
            raise group.exceptions[0] from None

    async def _download(self, batch: planner.Batch) -> list[FetchItem]:
        items: list[FetchItem] = []
        wanted = set(batch.uids)
        answered: set[int] = set()  # UIDs with some FETCH item, even one without the body
        stored: set[int] = set()

        def on_item(item: FetchItem) -> None:
            if item.uid is None or item.uid not in wanted:
                return
            answered.add(item.uid)
            if BODY in item.sections and item.uid not in stored:
                stored.add(item.uid)
                items.append(item)

        await self.conn.uid_fetch(uid_set(batch.uids), "(UID FLAGS INTERNALDATE BODY.PEEK[])", on_item)
        # UID FETCH passes over UIDs that no longer exist (expunged since the sizes were asked):
        # only the next run can tell them from a message the server failed to send.
        self.not_returned |= wanted - stored
        self.without_body |= answered - stored
        return items

    async def _writer(self, queue: asyncio.Queue[list[FetchItem] | None], uidvalidity: int) -> None:
        while (batch := await queue.get()) is not None:
            rows = await asyncio.to_thread(self._store_batch, batch, uidvalidity)
            with self.db.transaction() as conn:
                message_q.insert_many(conn, rows)
            self.result.new += len(rows)
            self.done = (self.done[0] + len(rows), self.done[1] + sum(r["size"] for r in rows))
            self.reporter.progress(self.name, self.done[0], self.totals[0], self.done[1], self.totals[1])
            if not self.fresh:
                self.reporter.new_messages(self.name, rows)

    def _store_batch(self, batch: list[FetchItem], uidvalidity: int) -> list[dict[str, Any]]:
        """Worker thread: files durable in the Maildir, then the rows that index them."""
        files = [NewFile(uidvalidity, item.uid or 0, item.flags or (), item.sections[BODY]) for item in batch]
        names = self.maildir.write_batch(files)
        return [
            self._row(item.uid or 0, item.sections[BODY], item.flags or (), item.internal_date, name)
            for item, name in zip(batch, names, strict=True)
        ]

    # -- 3. UIDVALIDITY change -----------------------------------------------

    async def _remap(self, uidvalidity: int) -> None:
        """Local copies take their new UIDs, matched by Message-ID and size (nothing downloaded again).

        Crash-safe in this order: (1) one transaction gives the rows their new UIDs and the folder
        its new UIDVALIDITY, each row still naming its old file; (2) the files are renamed to their
        new names (``<uidvalidity>.<uid>``); (3) the new names are committed.  A crash after (1)
        leaves rows whose file has its old name or already its new one: ``reconcile`` accepts
        both and finishes the renames.  Never the other way round: renamed files that the index
        does not name would be taken for another era's files and deleted with their rows.
        """
        remote: dict[int, tuple[str | None, int]] = {}

        def on_item(item: FetchItem) -> None:
            if item.uid is None:
                return
            header = next((v for k, v in item.sections.items() if k.startswith("BODY[HEADER")), b"")
            remote[item.uid] = (headers.summary(header + b"\r\n\r\n").message_id, item.size or 0)

        await self.conn.uid_fetch("1:*", "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", on_item)
        rows = self.db.conn.execute(
            "SELECT uid, id, message_id, size, flags, filename FROM messages WHERE folder_id = ?", (self.folder_id,)
        ).fetchall()
        local = {r["uid"]: (r["message_id"], r["size"]) for r in rows}
        moved, _unmatched_local, _unmatched_remote = planner.remap(local, remote)
        by_uid = {r["uid"]: r for r in rows}
        renames = []
        for old_uid, new_uid in moved.items():
            row = by_uid[old_uid]
            renames.append((row["id"], new_uid, row["filename"], file_name(uidvalidity, new_uid, row["flags"].split())))
        with self.db.transaction() as conn:
            # Every old UID first becomes negative (minus the row's id: unique, unlike minus an old
            # UID, which an earlier era's leftover may hold), so that no new UID collides with an
            # old one on UNIQUE(folder_id, uid).  Copies matching nothing keep theirs negative: they
            # can never shadow a new server UID, and the removal step (with its safety stop)
            # decides about them.
            conn.execute("UPDATE messages SET uid = -id WHERE folder_id = ?", (self.folder_id,))
            conn.executemany("UPDATE messages SET uid = ? WHERE id = ?", ((uid, mid) for mid, uid, _o, _n in renames))
            folder_q.update(conn, self.folder_id, {"uidvalidity": uidvalidity, "uidnext": 1, "message_count": None})
        self.stored = planner.Stored(uidvalidity, 1, None, None)
        await asyncio.to_thread(self._rename_files, [(old, new) for _, _, old, new in renames])
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE messages SET filename = ? WHERE id = ?", ((new, mid) for mid, _u, _o, new in renames)
            )
        log.info("account %d, folder %s: UIDVALIDITY changed; %d messages re-mapped by Message-ID",
                 self.account_id, self.name, len(renames))  # fmt: skip

    def _rename_files(self, pairs: list[tuple[str, str]]) -> None:
        for old, new in pairs:
            self.maildir.rename(old, new)
        if pairs:
            self.maildir.sync_directory()

    # -- 5. flags and removals -----------------------------------------------

    async def _update_flags(self, uidvalidity: int) -> None:
        indexed = message_q.uids(self.db.conn, self.folder_id)
        if not indexed:
            return
        changed: dict[int, tuple[str, ...]] = {}

        def on_item(item: FetchItem) -> None:
            if item.uid in indexed and item.flags is not None:
                changed[item.uid] = item.flags

        top = max(indexed)
        if top < 1:  # only copies waiting for the removal step (after a UIDVALIDITY change)
            return
        modifier = (
            f" (CHANGEDSINCE {self.stored.highestmodseq})" if self.condstore and self.stored.highestmodseq else ""
        )
        await self.conn.uid_fetch(f"1:{top}", f"(UID FLAGS){modifier}", on_item)
        await self._apply_flags(uidvalidity, changed, indexed)

    async def _apply_flags(
        self,
        uidvalidity: int,
        changed: dict[int, tuple[str, ...]],
        indexed: dict[int, tuple[int, str, str]] | None = None,
    ) -> None:
        """Store the flags that differ; ``indexed``: the folder's index, when the caller has just read it."""
        if not changed:
            return
        if indexed is None:
            indexed = message_q.uids(self.db.conn, self.folder_id)
        updates = []
        for uid, flags in changed.items():
            if uid not in indexed:
                continue
            mid, old_flags, filename = indexed[uid]
            text = _flags_text(flags)
            if text != old_flags:
                updates.append((text, filename, file_name(uidvalidity, uid, flags), mid))
        if not updates:
            return
        await asyncio.to_thread(self._rename_files, [(old, new) for _, old, new, _ in updates])
        with self.db.transaction() as conn:
            message_q.update_flags(conn, [(text, new, mid) for text, _old, new, mid in updates])
        self.result.updated += len(updates)

    async def _apply_vanished(self, state: MailboxState) -> bool:
        """QRESYNC's VANISHED (EARLIER): removals without asking for the folder's UID list."""
        if not state.vanished:
            return True
        indexed = message_q.uids(self.db.conn, self.folder_id, settled_only=True)
        gone = uids_in_ranges((uid for uid in indexed if uid >= 1), state.vanished)
        return await self._remove(indexed, gone)

    async def _remove_vanished(self, exists: int | None) -> bool:
        """Remove local copies of messages gone from the server; False when stopped for safety.

        Rows waiting for a server operation (``pending``) are not the server's to remove.
        """
        indexed = message_q.uids(self.db.conn, self.folder_id, settled_only=True)
        if not indexed or not planner.may_have_removals(len(indexed), 0, exists):
            return True
        top = max(indexed)
        present = set(await self.conn.uid_search(f"UID 1:{top}")) if top >= 1 else set()
        return await self._remove(indexed, [uid for uid in indexed if uid not in present])

    async def _remove(self, indexed: dict[int, tuple[int, str, str]], gone: list[int]) -> bool:
        if not gone:
            return True
        if planner.is_mass_removal(len(indexed), len(gone), self.safety) and not self.confirm_removals:
            self.result.attention = (
                f"{self.name}: the server no longer has {len(gone)} of the {len(indexed)} local messages; "
                "nothing was removed locally (confirm with: bimmailctl fetch --confirm-deletions)"
            )
            log.warning("account %d, folder %s", self.account_id, self.result.attention)
            return False
        await asyncio.to_thread(self._remove_files, [indexed[uid][2] for uid in gone])
        with self.db.transaction() as conn:
            message_q.delete(conn, [indexed[uid][0] for uid in gone])
        self.result.removed += len(gone)
        return True

    def _remove_files(self, names: list[str]) -> None:
        for name in names:
            self.maildir.remove(name)
        self.maildir.sync_directory()

    def _report_not_returned(self) -> None:
        def listed(uids: set[int]) -> str:
            shown = sorted(uids)[:10]
            return ", ".join(map(str, shown)) + (
                f" and {len(uids) - len(shown)} more" if len(uids) > len(shown) else ""
            )

        absent = self.not_returned - self.without_body
        if self.without_body:
            self.result.error = (
                f"the server answered without the content of {len(self.without_body)} message(s) "
                f"(UID {listed(self.without_body)}); asked for again at the next fetch"
            )
        if absent:
            # Most likely deleted on the server since the download began; the next run tells.
            self.notes.append(
                f"folder {self.name!r}: {len(absent)} message(s) asked for were not in the server's answer "
                f"(UID {listed(absent)}), probably deleted meanwhile; looked for again at the next fetch"
            )
        log.warning("account %d, folder %s: content not returned for UIDs %s (with an answer: %s)",
                    self.account_id, self.name, sorted(self.not_returned), sorted(self.without_body))  # fmt: skip

    # -- 6. state ------------------------------------------------------------

    def _save_state(
        self, uidvalidity: int, uidnext: int | None, modseq: int | None, exists: int | None, complete: bool
    ) -> None:
        values: dict[str, Any] = {
            "uidvalidity": uidvalidity,
            "uidnext": uidnext,
            "highestmodseq": modseq,
            # An incomplete sync leaves the count unknown, so the next STATUS check looks again.
            "message_count": exists if complete else None,
            "synced_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self.db.transaction() as conn:
            folder_q.update(conn, self.folder_id, values)


_LETTER_FLAGS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "$Forwarded": "P",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
__all__ = ["FolderResult", "FolderSync", "ReconcilePlan", "base_name", "plan_reconcile"]
