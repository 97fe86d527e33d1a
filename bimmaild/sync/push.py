"""Push: an IDLE connection per account on its INBOX, so new mail is fetched within seconds (R-E1).

A watcher runs while its account is enabled, included in automatic fetch,
the automation switch is on, INBOX is synchronised and the account does not
need attention.  It keeps its own connection (IDLE blocks a connection),
re-issues IDLE before the server's 30-minute limit (RFC 2177 asks for
< 29), and when the server reports a change (EXISTS, EXPUNGE, FETCH) asks
the sync service for a fetch, which joins one already under way.  A dropped
connection is re-opened with exponential back-off (1 s … 5 min); a server
without IDLE is left alone (the scheduled fetch remains the safety net).  A
login only the user can fix (refused password, revoked token, bad
certificate) puts the account in needs-attention and ends the watcher: no
hammering of the server until the account is changed.
Each watcher is a task of this service, cancelled when its account stops
qualifying and when the daemon stops.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from bimmaild.accounts.service import AccountService
from bimmaild.activity import Activity
from bimmaild.imap.connection import ImapConnection, ImapError
from bimmaild.store import folders as folder_q
from bimmaild.store import settings
from bimmaild.store import status as status_q
from bimmaild.sync.account_sync import AccountUnavailable, connect
from bimmaild.sync.folder_list import selected
from bimmaild.sync.service import SyncService

log = logging.getLogger(__name__)

IDLE_SECONDS = 25 * 60
MAX_BACKOFF = 300.0
CHANGE = re.compile(rb"^(\d+ (EXISTS|EXPUNGE|FETCH)|VANISHED)", re.IGNORECASE)


class PushService:
    def __init__(
        self, accounts: AccountService, sync: SyncService, activity: Activity, *, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.accounts = accounts
        self.sync = sync
        self.activity = activity
        self.idle_seconds = idle_seconds
        self._watchers: dict[int, asyncio.Task[None]] = {}

    def wanted(self) -> set[int]:
        conn = self.sync.db.conn
        if settings.read(conn, "automation_enabled") == "0":
            return set()
        chosen = set()
        attention = status_q.in_state(conn, "needs-attention")
        for account in self.accounts.all():
            if not (account.enabled and account.auto_fetch) or account.id in attention:
                continue
            inbox = [r for r in folder_q.for_account(conn, account.id) if r["role"] == "inbox"]
            if inbox and selected(inbox[0]) and inbox[0]["state"] == "present":
                chosen.add(account.id)
        return chosen

    def apply(self) -> None:
        """Start and stop watchers to match the switches (idempotent)."""
        wanted = self.wanted()
        for account_id, task in list(self._watchers.items()):
            if account_id not in wanted or task.done():
                task.cancel()
                del self._watchers[account_id]
                self.activity.of(account_id).push = "off"
        for account_id in wanted - set(self._watchers):
            self._watchers[account_id] = asyncio.get_running_loop().create_task(
                self._watch(account_id), name=f"push:{account_id}"
            )

    def offer(self, event: str, params: dict[str, Any], owner: int | None) -> None:
        """EventBus subscriber: switches, folder choices and account states change who is watched."""
        if event in ("account.changed", "fetch.done", "automation.changed"):
            self.apply()

    async def close(self) -> None:
        tasks = list(self._watchers.values())
        self._watchers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, account_id: int) -> None:
        live = self.activity.of(account_id)
        backoff = 1.0
        while True:
            live.push = "connecting"
            try:
                await self._session(account_id)
                return  # no IDLE on this server
            except (AccountUnavailable, ImapError, OSError) as exc:
                if isinstance(exc, AccountUnavailable) and exc.attention:
                    self._stop_for_attention(account_id, exc.message)
                    return
                if live.push == "idle":
                    backoff = 1.0  # it was working: retry soon
                live.push, live.push_error = "error", str(exc)
                log.info("push for account %d interrupted (%s); again in %.0f s", account_id, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _stop_for_attention(self, account_id: int, message: str) -> None:
        live = self.activity.of(account_id)
        live.push, live.push_error = "off", message
        log.warning("push for account %d stopped until the account is changed: %s", account_id, message)
        if self.accounts.exists(account_id):
            self.sync.record_failure(self.accounts.find(account_id), "needs-attention", message, login_refused=True)

    async def _session(self, account_id: int) -> None:
        account = self.accounts.find(account_id)
        live = self.activity.of(account_id)
        conn: ImapConnection = await connect(account, self.accounts.credentials, self.sync.timeout)
        done = False
        try:
            if "IDLE" not in conn.capabilities:
                live.push, live.push_error = "unsupported", "the server does not offer IDLE"
                return
            await conn.select('"INBOX"', readonly=True)
            live.push, live.push_error = "idle", None
            while True:
                pushed = await conn.idle(self.idle_seconds)
                if any(CHANGE.match(line) for line in pushed):
                    log.debug("push for account %d: %s", account_id, pushed[:3])
                    self.sync.start(account_id)
        except asyncio.CancelledError:
            conn.close()  # stopping: no LOGOUT behind an IDLE that the server would first have to end
            done = True
            raise
        finally:
            if not done:
                await conn.logout()
