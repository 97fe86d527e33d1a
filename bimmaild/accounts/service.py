"""Account management: add, modify, delete, primary, enable (R-A1, R-A2, R-E2, R-L1, R-L2, R-X1, R-X2).

Every change runs under one lock, so a check (is this name free?) and the
write that relies on it cannot interleave with another client's change while
the secret backend is awaited.  Order of writes, chosen so that a crash at any
point leaves nothing a later account could inherit:

* add: passwords (under a fresh random ``secret_ref``), then the row.
* modify: new passwords, then the row, then passwords no longer used.
* delete: the row, then passwords, then local mail.
The start-up sweep (:meth:`AccountService.sweep`) removes what a crash left
behind in the secret backend and the mail directory.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bimmaild.accounts import connection_test, model, presets, validation
from bimmaild.accounts.model import Account
from bimmaild.accounts.providers import Provider, ProviderDatabase
from bimmaild.accounts.secrets import Secret, SecretBackend, account_key
from bimmaild.activity import Activity
from bimmaild.conntest import runner as conntest
from bimmaild.conntest.report import Report
from bimmaild.events import EventBus
from bimmaild.protocol.errors import ConfirmationRequired, Conflict, InvalidParams, NotFound, SecretsUnavailable
from bimmaild.protocol.schema import INT64_MAX
from bimmaild.store import accounts as q
from bimmaild.store import journal as journal_q
from bimmaild.store import status as status_q
from bimmaild.store.db import Database
from bimmaild.users import user_name

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class AccountService:
    def __init__(
        self,
        db: Database,
        secrets: SecretBackend,
        mail_root: Path,
        events: EventBus,
        providers: ProviderDatabase,
        limits: conntest.Limits | None = None,
    ) -> None:
        self.db = db
        self.secrets = secrets
        self.mail_root = mail_root
        self.events = events
        self.providers = providers
        self.limits = limits or conntest.Limits()
        # Called with an account id before it is deleted (the daemon stops its fetch there).
        self.before_delete: Callable[[int], Awaitable[None]] | None = None
        # Called with the id of an account added after a successful connection test: the daemon
        # fetches it at once, which also creates its trash folder on the server (R-C3).
        self.after_add: Callable[[int], None] | None = None
        # What the account is doing now (fetching, push, next fetch), filled in by the daemon.
        self.activity: Activity | None = None
        # System mode: may this user make the daemon read that file (the CA file)?  Raises if not.
        self.check_readable: Callable[[str, int, str], None] | None = None
        self._lock = asyncio.Lock()

    # -- reading -----------------------------------------------------------

    def all(self, owner: int | None = None) -> list[Account]:
        """Every account (the daemon's own work), or one user's (what a client may see)."""
        return [Account.from_row(r) for r in q.all_rows(self.db.conn, owner)]

    def find(self, ref: str | int, owner: int | None = None) -> Account:
        """By name (case-insensitive, among the owner's), else by id; a digit string that is no
        name is an id.  Another user's account is "not found", exactly like a missing one."""
        row = None
        if isinstance(ref, str):
            text = ref.strip()
            if owner is not None:
                row = q.by_name(self.db.conn, owner, text)
            # ASCII digits only ("²".isdigit() is true, int("²") fails), and an id SQLite can hold.
            if row is None and text.isascii() and text.isdigit() and int(text) <= INT64_MAX:
                row = q.by_id(self.db.conn, int(text))
        else:
            row = q.by_id(self.db.conn, ref)
        if row is None or (owner is not None and row["owner_uid"] != owner):
            raise NotFound(f"no account named or numbered {ref!r}", field="account")
        return Account.from_row(row)

    def exists(self, account_id: int) -> bool:
        return q.by_id(self.db.conn, account_id) is not None

    def primary(self, owner: int) -> Account | None:
        row = q.primary(self.db.conn, owner)
        return None if row is None else Account.from_row(row)

    async def slots_set(self, account: Account) -> set[str]:
        return {slot for slot in model.SLOTS if await self.secrets.get(account_key(account.secret_ref, slot))}

    async def public(self, account: Account) -> dict[str, Any]:
        status = status_q.read(self.db.conn, account.id)
        status["pending_operations"] = journal_q.count_pending(self.db.conn, account.id)
        if self.activity is not None:
            status.update(self.activity.of(account.id).to_public())
        owner = {"uid": account.owner_uid, "name": user_name(account.owner_uid)}
        return {**account.to_public(await self.slots_set(account)), "owner": owner, "status": status}

    # -- changing ----------------------------------------------------------

    async def add(self, params: Mapping[str, Any], owner: int) -> tuple[Account, list[str], Report | None]:
        """Validate, fill from the preset, test the connection (unless told not to), save."""
        flat, passwords = model.split_params(params)
        make_primary = bool(flat.pop("primary"))
        run_test = bool(flat.pop("test", False))
        self._check_files(flat, owner)  # before validation opens the file
        settings, provider, notes = self._new_settings(flat)
        model.check_passwords(settings, passwords, have=set())
        self._check_name_free(settings["name"], None, owner)  # before a test that takes seconds
        if settings["login"] is None and not settings["separate_auth"]:
            notes.append(f"login is the address {settings['email']}")
        report = None
        if run_test:
            secrets = {slot: Secret(value) for slot, value in passwords.items()}
            report = await conntest.run(*connection_test.targets(settings, secrets, provider), self.limits)
            if not report.ok:
                raise connection_test.failure_error(report)
        async with self._lock:
            self._check_name_free(settings["name"], None, owner)
            secret_ref = uuid.uuid4().hex
            for slot, value in passwords.items():
                await self.secrets.put(account_key(secret_ref, slot), Secret(value))
            with self.db.transaction() as conn:
                previous = q.primary(conn, owner)
                primary = make_primary or previous is None
                if primary and previous is not None:
                    q.clear_primary(conn, owner)
                    notes.append(f"{previous['name']!r} is no longer the primary account")
                elif primary:
                    notes.append("it is the primary account (the first one)")
                now = _now()
                row = {**settings, "secret_ref": secret_ref, "owner_uid": owner, "is_primary": int(primary)}
                account_id = q.insert(conn, {**row, "created_at": now, "updated_at": now})
        account = self.find(account_id)
        log.info("account %d %r added", account.id, account.name)
        await self._changed("added", account)
        if report is not None and account.enabled and self.after_add is not None:
            self.after_add(account.id)
            notes.append("a first fetch has started (it also creates the trash folder on the server)")
        return account, notes, report

    async def test(
        self, ref: str | int | None, params: Mapping[str, Any], owner: int | None = None
    ) -> tuple[Report, list[str]]:
        """Test a saved account (``params`` override its settings) or unsaved settings (R-A3)."""
        flat, passwords = model.split_params(params)
        flat.pop("primary", None)
        if owner is not None:
            self._check_files(flat, owner)
        secrets: dict[str, Secret | None] = {slot: Secret(value) for slot, value in passwords.items()}
        if ref is None:
            settings, provider, notes = self._new_settings(flat)
        else:
            account = self.find(ref, owner)
            notes = self._follow_security(account, flat)
            settings = {**account.settings(), **model.normalize(flat)}
            provider = self.providers.by_id(settings["provider"]) if settings["provider"] else None
            for slot in model.SLOTS:
                if slot not in secrets:
                    secrets[slot] = await self.secrets.get(account_key(account.secret_ref, slot))
        report = await conntest.run(*connection_test.targets(settings, secrets, provider), self.limits)
        return report, notes

    def _new_settings(self, flat: dict[str, Any]) -> tuple[dict[str, Any], Provider | None, list[str]]:
        """Settings of an account being created: checked, completed from the preset and defaults."""
        if not flat.get("email"):
            raise InvalidParams("missing required parameter 'email'", field="email")
        flat["email"] = validation.email_address(flat["email"])
        provider = presets.choose(self.providers, flat.get("provider"), flat["email"])
        notes = presets.fill(flat, provider)
        flat["provider"] = provider.id if provider else None
        for key in ("login", "imap_login", "smtp_login", "tls_ca_file"):
            flat.setdefault(key, None)
        flat.setdefault("separate_auth", False)
        settings = model.normalize(flat)
        return {c: settings.get(c) for c in model.SETTING_COLUMNS}, provider, notes

    async def modify(
        self, ref: str | int, params: Mapping[str, Any], owner: int | None = None
    ) -> tuple[Account, list[str]]:
        async with self._lock:
            account = self.find(ref, owner)
            flat, passwords = model.split_params(params)
            primary = flat.pop("primary", None)
            self._check_files(flat, account.owner_uid)
            notes = self._follow_security(account, flat)
            changes = model.normalize(flat)
            merged = {**account.settings(), **changes}
            if "name" in changes:
                self._check_name_free(merged["name"], account.id, account.owner_uid)
            have = await self.slots_set(account)
            model.check_passwords(merged, passwords, have)
            unused = have - set(model.required_slots(merged))
            for slot, value in passwords.items():
                await self.secrets.put(account_key(account.secret_ref, slot), Secret(value))
            with self.db.transaction() as conn:
                notes += self._apply_primary(conn, account, primary)
                q.update(conn, account.id, {**changes, "updated_at": _now()})
                notes += self._clear_attention(conn, account)
            for slot in unused:
                await self.secrets.delete(account_key(account.secret_ref, slot))
        account = self.find(account.id)
        await self._changed("modified", account)
        return account, notes

    async def delete(self, ref: str | int, *, confirm: bool, owner: int | None = None) -> dict[str, Any]:
        async with self._lock:
            account = self.find(ref, owner)
            if not confirm:
                raise ConfirmationRequired(
                    f"deleting {account.name!r} removes its local messages, settings, signatures "
                    "and stored passwords (mail on the server is untouched); confirm to proceed",
                    field="confirm",
                    data={"account": account.name},
                )
            if self.before_delete is not None:
                await self.before_delete(account.id)
            with self.db.transaction() as conn:
                q.delete(conn, account.id)
            notes = ["mail on the server is untouched"]
            try:
                await self._forget_secrets(account.secret_ref)
            except SecretsUnavailable as exc:
                log.warning("account %d deleted but its passwords could not be removed: %s", account.id, exc)
                notes.append(f"its stored passwords could not be removed now ({exc.message})")
            await asyncio.to_thread(shutil.rmtree, self.mail_root / str(account.id), True)
        log.info("account %d %r deleted", account.id, account.name)
        if account.primary:
            notes.append("it was the primary account: there is none now (set one with account primary)")
        self.events.publish(
            "account.changed", {"change": "deleted", "account_id": account.id, "account": None}, owner=account.owner_uid
        )
        return {
            "deleted": {"id": account.id, "name": account.name, "email": account.email},
            "primary_cleared": account.primary,
            "notes": notes,
        }

    async def make_primary(self, ref: str | int, owner: int | None = None) -> tuple[Account, str | None]:
        async with self._lock:
            account = self.find(ref, owner)
            previous = self.primary(account.owner_uid)
            with self.db.transaction() as conn:
                self._apply_primary(conn, account, True)
                q.update(conn, account.id, {"updated_at": _now()})
        account = self.find(account.id)
        await self._changed("modified", account)
        return account, previous.name if previous and previous.id != account.id else None

    async def set_enabled(self, ref: str | int, enabled: bool, owner: int | None = None) -> Account:
        async with self._lock:
            account = self.find(ref, owner)
            with self.db.transaction() as conn:
                q.update(conn, account.id, {"enabled": int(enabled), "updated_at": _now()})
                if enabled:
                    self._clear_attention(conn, account)
        account = self.find(account.id)
        await self._changed("modified", account)
        return account

    async def sweep(self) -> None:
        """Remove secrets and mail directories that belong to no account (left by a crash)."""
        refs = q.secret_refs(self.db.conn)
        keys = await self.secrets.keys()
        for key in sorted(keys or set()):
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "account" and parts[1] not in refs:
                log.info("removing orphan secret of a deleted account")
                await self.secrets.delete(key)
        ids = q.ids(self.db.conn)
        if self.mail_root.is_dir():
            for entry in self.mail_root.iterdir():
                if entry.name.isdigit() and int(entry.name) not in ids:
                    log.info("removing orphan mail directory %s", entry)
                    await asyncio.to_thread(shutil.rmtree, entry, True)

    # -- helpers -----------------------------------------------------------

    def _check_name_free(self, name: str, own_id: int | None, owner: int) -> None:
        row = q.by_name(self.db.conn, owner, name)
        if row is not None and row["id"] != own_id:
            raise Conflict(f"an account named {row['name']!r} already exists", field="name")

    def _check_files(self, flat: Mapping[str, Any], owner: int) -> None:
        """Before anything opens a file a client named (the daemon may be root: system mode)."""
        if flat.get("tls_ca_file") and self.check_readable is not None:
            self.check_readable(str(flat["tls_ca_file"]).strip(), owner, "tls_ca_file")

    @staticmethod
    def _follow_security(account: Account, flat: dict[str, Any]) -> list[str]:
        """When security changes and the port was its default, move the port along."""
        notes = []
        for kind in ("imap", "smtp"):
            security = flat.get(f"{kind}_security")
            if security is None or f"{kind}_port" in flat:
                continue
            old_security = getattr(account, f"{kind}_security")
            old_port = getattr(account, f"{kind}_port")
            if old_port == model.default_port(kind, old_security) and security != old_security:
                flat[f"{kind}_port"] = model.default_port(kind, security)
                notes.append(f"{kind}.port set to {flat[f'{kind}_port']} to match {kind}.security {security}")
        return notes

    @staticmethod
    def _apply_primary(conn: sqlite3.Connection, account: Account, primary: bool | None) -> list[str]:
        if primary is None or primary == account.primary:
            return []
        if primary:
            q.clear_primary(conn, account.owner_uid)
            q.update(conn, account.id, {"is_primary": 1})
            return [f"{account.name!r} is now the primary account"]
        q.update(conn, account.id, {"is_primary": 0})
        return ["there is no primary account now"]

    def _clear_attention(self, conn: sqlite3.Connection, account: Account) -> list[str]:
        """A change by the user is the answer to needs-attention: automatic fetches resume."""
        if status_q.read(conn, account.id)["state"] != "needs-attention":
            return []
        status_q.clear(conn, account.id)
        return ["the account no longer waits for attention: automatic fetches resume"]

    async def _forget_secrets(self, secret_ref: str) -> None:
        for slot in model.SLOTS:
            await self.secrets.delete(account_key(secret_ref, slot))

    async def _changed(self, change: str, account: Account) -> None:
        self.events.publish(
            "account.changed",
            {"change": change, "account_id": account.id, "account": await self.public(account)},
            owner=account.owner_uid,
        )
