"""fetch, account.folders and automation.*: synchronisation on demand, the choice of folders, the
automatic fetch's switches (R-C1, R-C2, R-E1)."""

from __future__ import annotations

from typing import Any

from bimmaild.accounts.model import Account
from bimmaild.accounts.service import AccountService
from bimmaild.control.router import Router, Session
from bimmaild.events import EventBus
from bimmaild.imap.connection import ImapError
from bimmaild.scheduler import Scheduler
from bimmaild.store import folders as folder_q
from bimmaild.store import messages as message_q
from bimmaild.sync import folder_list
from bimmaild.sync.account_sync import AccountUnavailable, connect, prepare_folders
from bimmaild.sync.service import SyncService
from bimmaild.users import Users


class SyncHandlers:
    def __init__(
        self, accounts: AccountService, sync: SyncService, scheduler: Scheduler, events: EventBus, users: Users
    ) -> None:
        self.users = users
        self.accounts = accounts
        self.sync = sync
        self.scheduler = scheduler
        self.events = events

    def register(self, router: Router) -> None:
        router.register("fetch", self.fetch)
        router.register("account.folders", self.folders)
        router.register("automation.get", self.automation_get)
        router.register("automation.set", self.automation_set)

    async def automation_get(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return self.scheduler.info()

    async def automation_set(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        result = self.scheduler.configure(params.get("enabled"), params.get("interval_minutes"))
        self.events.publish("automation.changed", result)
        return result

    async def fetch(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        return await self.sync.fetch(
            params["accounts"], owner=session.uid, wait=params["wait"], confirm_removals=params["confirm_deletions"]
        )

    async def folders(self, session: Session, params: dict[str, Any]) -> dict[str, Any]:
        account = self.accounts.find(params["account"], session.uid)
        if params["select"] or params["unselect"]:  # choosing folders is configuration (R-L3)
            self.users.check_configure(session.identity)
        offline = None
        if params["refresh"]:
            async with self.sync.lock(account.id):
                offline = await self._refresh(account)
        folder_list.choose(self.sync.db, account.id, params["select"], params["unselect"])
        if params["select"] or params["unselect"]:
            self.events.publish(
                "account.changed",
                {"change": "folders", "account_id": account.id, "account": None},
                owner=account.owner_uid,
            )
        rows = folder_q.for_account(self.sync.db.conn, account.id)
        return {
            "account": account.name,
            "offline": offline,
            "folders": [folder_list.public(row, message_q.count(self.sync.db.conn, row["id"])) for row in rows],
        }

    async def _refresh(self, account: Account) -> str | None:
        """The server's folder list (the trash folder created if missing); the reason when offline."""
        try:
            conn = await connect(account, self.accounts.credentials, self.sync.timeout)
        except AccountUnavailable as exc:
            return exc.message
        try:
            await prepare_folders(self.sync.db, conn, account, self.sync.mail_root)
        except ImapError as exc:
            return f"listing folders failed: {exc}"
        finally:
            await conn.logout()
        return None
