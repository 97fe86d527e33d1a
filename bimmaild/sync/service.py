"""Owns the running fetches: at most one per account, joined by later requests.

A fetch is a task of this service, not of the client that asked: ``fetch``
without ``wait`` returns at once and the work goes on; a client that waits
and then disconnects does not cancel it (waiters are shielded).  The service
cancels and awaits its tasks when the daemon stops; an interrupted fetch
resumes from the store at the next one.

The account's recorded state is the last *fetch*'s.  A mirror run (trash,
Sent) or the push connection only records a failure — a refused password
puts the account in needs-attention whoever meets it — and never overwrites
needs-attention with a lesser state nor the last fetch's time and counts.
After a refused login nothing connects for the account again (no mirror run,
queued or scheduled) until it is changed or a fetch is asked for: servers
lock accounts that keep trying a wrong password.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bimmaild.accounts.model import Account
from bimmaild.accounts.service import AccountService
from bimmaild.activity import Activity
from bimmaild.backoff import doubling
from bimmaild.events import EventBus
from bimmaild.store import status as status_q
from bimmaild.store.db import Database
from bimmaild.sync.account_sync import AccountResult, AccountSync
from bimmaild.sync.planner import DEFAULT_SAFETY
from bimmaild.sync.reporting import Reporter

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0
TRASH_ONLY = frozenset({"account_trash"})
TRASH_AND_SENT = frozenset({"account_trash", "sent"})


MAX_NEW_EVENTS = 50  # message.new events per batch: a flood of mail must not flood the clients


class EventReporter(Reporter):
    """Progress and new mail of one account's run, as live activity and events."""

    def __init__(self, account: Account, events: EventBus, activity: Activity) -> None:
        self.account = account
        self.events = events
        self.activity = activity

    def progress(self, folder: str, messages_done: int, messages_total: int, bytes_done: int, bytes_total: int) -> None:
        params = {
            "account_id": self.account.id, "account": self.account.name, "folder": folder,
            "messages_done": messages_done, "messages_total": messages_total,
            "bytes_done": bytes_done, "bytes_total": bytes_total,
        }  # fmt: skip
        self.activity.of(self.account.id).progress = params
        self.events.publish("fetch.progress", params, owner=self.account.owner_uid)

    def new_messages(self, folder: str, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows[:MAX_NEW_EVENTS]:
            self.events.publish("message.new", {
                "account_id": self.account.id, "account": self.account.name, "folder": folder,
                "uid": row["uid"], "message_id": row["message_id"], "subject": row["subject"],
                "from": row["sender"], "date": row["sent_at"],
            }, owner=self.account.owner_uid)  # fmt: skip


class SyncService:
    def __init__(
        self,
        db: Database,
        accounts: AccountService,
        mail_root: Path,
        events: EventBus,
        timeout: float,
        activity: Activity | None = None,
    ) -> None:
        self.db = db
        self.accounts = accounts
        self.mail_root = mail_root
        self.events = events
        self.timeout = timeout
        self.activity = activity or Activity()
        self.safety = DEFAULT_SAFETY  # the daemon's config sets it (and SIGHUP changes it)
        self._failures: dict[int, tuple[int, float]] = {}  # account -> (consecutive errors, when the last ended)
        self._mirror_failures: dict[int, tuple[int, float]] = {}  # the same, of mirror runs
        self._refused: set[int] = set()  # accounts whose last login was refused (see the module docstring)
        self._running: dict[int, asyncio.Task[AccountResult]] = {}
        self._mirrors: dict[int, asyncio.Task[None]] = {}
        self._mirror_roles: dict[int, frozenset[str]] = {}  # what the next mirror run of an account covers
        self._locks: dict[int, asyncio.Lock] = {}
        self._reconciled: set[int] = set()

    async def fetch(
        self, refs: list[str | int], *, owner: int | None, wait: bool, confirm_removals: bool = False
    ) -> dict[str, Any]:
        """Fetch the named accounts (all enabled ones of ``owner`` when none is named); R-L1: disabled
        ones never."""
        chosen = [self.accounts.find(ref, owner) for ref in refs] if refs else self.accounts.all(owner)
        skipped = [a.name for a in chosen if not a.enabled]
        tasks = [self._start(a, confirm_removals) for a in chosen if a.enabled]
        if not wait:
            return {"started": [a.name for a in chosen if a.enabled], "skipped_disabled": skipped, "accounts": []}
        outcomes = await asyncio.gather(*(asyncio.shield(task) for task in tasks), return_exceptions=True)
        results = [
            outcome.to_public()
            if isinstance(outcome, AccountResult)
            else AccountResult(
                account.id, account.name, "error", "the fetch was stopped (daemon stopping or account deleted)"
            ).to_public()
            for account, outcome in zip([a for a in chosen if a.enabled], outcomes, strict=True)
        ]
        return {"started": [a.name for a in chosen if a.enabled], "skipped_disabled": skipped, "accounts": results}

    def backoff_over(self, account_id: int, *, mirror: bool = False) -> bool:
        """After n failed fetches (or mirror runs) in a row, the next automatic one waits 2^(n-1)
        minutes (at most an hour)."""
        failures, when = (self._mirror_failures if mirror else self._failures).get(account_id, (0, 0.0))
        if not failures:
            return True
        wait = doubling(failures, 60.0, MAX_BACKOFF_SECONDS)
        return bool(time.monotonic() - when >= wait)

    def start(self, account_id: int) -> None:
        """Fetch one account in the background (e.g. right after it was added)."""
        self._start(self.accounts.find(account_id), False)

    def running(self, account_id: int) -> bool:
        task = self._running.get(account_id)
        return task is not None and not task.done()

    def _start(self, account: Account, confirm_removals: bool) -> asyncio.Task[AccountResult]:
        task = self._running.get(account.id)
        if task is not None and not task.done():
            return task  # a fetch is already under way: join it
        task = asyncio.get_running_loop().create_task(self._run(account, confirm_removals), name=f"fetch:{account.id}")
        self._running[account.id] = task
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[AccountResult]) -> None:
        for account_id, running in list(self._running.items()):
            if running is task:
                del self._running[account_id]

    def login_refused(self, account_id: int) -> bool:
        return account_id in self._refused

    def mirror(self, account_id: int, roles: frozenset[str] = TRASH_ONLY) -> None:
        """Replay the journal now, in the background, and sync the folders of these roles only
        (the trash folder after a delete or restore; also Sent after a message was sent).

        A change made while a run is under way gets one more run: that one may
        have replayed the journal before the change was written.
        """
        if not self.accounts.exists(account_id) or not self.accounts.find(account_id).enabled:
            return
        if account_id in self._refused:
            return  # the journal keeps the work; the next fetch or a change of the account resumes it
        self._mirror_roles[account_id] = self._mirror_roles.get(account_id, frozenset()) | roles
        task = self._mirrors.get(account_id)
        if task is None or task.done():
            self._mirrors[account_id] = asyncio.get_running_loop().create_task(
                self._mirror_runs(account_id), name=f"mirror:{account_id}"
            )

    async def _mirror_runs(self, account_id: int) -> None:
        while (roles := self._mirror_roles.pop(account_id, None)) is not None:
            if not self.accounts.exists(account_id) or not self.accounts.find(account_id).enabled:
                return
            if account_id in self._refused:  # refused while this run waited for the fetch to end
                return
            await self._run(self.accounts.find(account_id), False, only_roles=roles)

    def lock(self, account_id: int) -> asyncio.Lock:
        """Held by whatever works on an account's server state (fetch, trash mirror, folder listing)."""
        return self._locks.setdefault(account_id, asyncio.Lock())

    async def _run(
        self, account: Account, confirm_removals: bool, *, only_roles: frozenset[str] | None = None
    ) -> AccountResult:
        async with self.lock(account.id):  # one session per account at a time: fetch and mirror take turns
            return await self._run_locked(account, confirm_removals, only_roles)

    async def _run_locked(
        self, account: Account, confirm_removals: bool, only_roles: frozenset[str] | None
    ) -> AccountResult:
        what = "fetch" if only_roles is None else "mirror of " + ", ".join(sorted(only_roles))
        log.info("%s of account %d %r started", what, account.id, account.name)
        live = self.activity.of(account.id)
        if only_roles is None:
            live.fetching = True
            self._state(account, "fetching", None)
        sync = AccountSync(
            self.db, account, self.accounts.credentials, self.mail_root, timeout=self.timeout,
            reconciled=self._reconciled, confirm_removals=confirm_removals, safety=self.safety, only_roles=only_roles,
            reporter=EventReporter(account, self.events, self.activity),
        )  # fmt: skip
        try:
            result = await sync.run()
        except Exception as exc:  # a bug in one account's sync must not take others down
            log.exception("fetch of account %d failed", account.id)
            result = AccountResult(account.id, account.name, state="error", error=f"internal error: {exc}")
        finally:
            live.fetching, live.progress = False, None
        if result.login_refused:
            self._refused.add(account.id)
        elif result.state != "error":
            self._refused.discard(account.id)
        public = result.to_public()
        if only_roles is not None:
            self._mirror_done(account, result, public)
            return result
        if self.accounts.exists(account.id):  # deleted meanwhile: nothing to record
            at = datetime.now(UTC).isoformat(timespec="seconds")
            # A fetch that went well may still have something to say (a folder gone from the server,
            # an operation refused): the account's message, shown by status and account show.
            message = result.error or "; ".join(result.notes) or None
            try:
                with self.db.transaction() as conn:
                    status_q.write(conn, account.id, result.state, message, at, public)
                live.unrecorded = None
            except (sqlite3.Error, OSError) as exc:  # a full or read-only disk: the answer still goes out
                log.error("cannot record the fetch result of account %d: %s", account.id, exc)
                live.unrecorded = {"state": result.state, "message": message, "last_fetch_at": at}
        log.info(
            "fetch of account %d %r done: %s, %d new, %d updated, %d removed%s",
            account.id, account.name, result.state, public["new"], public["updated"], public["removed"],
            f" ({result.error})" if result.error else "",
        )  # fmt: skip
        _count_failure(self._failures, account.id, result.state)
        self.events.publish("fetch.done", public, owner=account.owner_uid)
        self._state(account, result.state, result.error)
        return result

    def _mirror_done(self, account: Account, result: AccountResult, public: dict[str, Any]) -> None:
        log.info("mirror of account %d %r done: %s%s", account.id, account.name, result.state,
                 f" ({result.error})" if result.error else "")  # fmt: skip
        _count_failure(self._mirror_failures, account.id, result.state)
        if result.state != "ok" and self.accounts.exists(account.id):
            self.record_failure(account, result.state, result.error)
        self.events.publish("trash.changed", public, owner=account.owner_uid)

    def record_failure(self, account: Account, state: str, message: str | None, *, login_refused: bool = False) -> None:
        """A failure met outside a fetch (a mirror run, the push connection) — see the module docstring.

        ``login_refused``: only the user can fix it (a mirror run's own result says so in
        ``_run_locked``; a mirror's needs-attention may also be a safety stop in the trash)."""
        current = status_q.read(self.db.conn, account.id)
        if login_refused:
            self._refused.add(account.id)
        if current["state"] == "needs-attention" and state != "needs-attention":
            return
        try:
            with self.db.transaction() as conn:
                status_q.write(conn, account.id, state, message, current["last_fetch_at"], current["last_result"])
        except (sqlite3.Error, OSError) as exc:
            log.error("cannot record the state of account %d: %s", account.id, exc)
        self._state(account, state, message)

    def _state(self, account: Account, state: str, message: str | None) -> None:
        self.events.publish("account.state", {"account_id": account.id, "account": account.name, "state": state,
                                              "message": message}, owner=account.owner_uid)  # fmt: skip

    def forget_failures(self, account_id: int) -> None:
        """The account was changed (new password, settings): its back-offs start afresh."""
        self._failures.pop(account_id, None)
        self._mirror_failures.pop(account_id, None)
        self._refused.discard(account_id)

    async def cancel(self, account_id: int) -> None:
        """Stop the account's fetch and trash mirror, if any, and wait until they have stopped."""
        self._mirror_roles.pop(account_id, None)
        tasks: list[asyncio.Task[Any]] = [
            t for t in (self._running.get(account_id), self._mirrors.get(account_id)) if t and not t.done()
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        self._mirror_roles.clear()
        tasks: list[asyncio.Task[Any]] = [t for t in [*self._running.values(), *self._mirrors.values()] if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _count_failure(counts: dict[int, tuple[int, float]], account_id: int, state: str) -> None:
    failures = counts.get(account_id, (0, 0.0))[0]
    counts[account_id] = (failures + 1 if state == "error" else 0, time.monotonic())
