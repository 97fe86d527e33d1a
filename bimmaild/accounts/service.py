"""Account management: add, modify, delete, primary, enable (R-A1, R-A2, R-E2, R-L1, R-L2, R-X1, R-X2).

Every change runs under one lock, so a check (is this name free?) and the
write that relies on it cannot interleave with another client's change while
the secret backend is awaited.  Order of writes, chosen so that a crash at any
point leaves nothing a later account could inherit:

* add: passwords or the OAuth2 refresh token (under a fresh random ``secret_ref``), then the row.
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
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bimmaild.accounts import connection_test, model, presets, validation
from bimmaild.accounts.credentials import Credentials
from bimmaild.accounts.model import Account
from bimmaild.accounts.providers import Provider, ProviderDatabase
from bimmaild.accounts.secrets import Secret, SecretBackend, account_key
from bimmaild.activity import Activity
from bimmaild.conntest import runner as conntest
from bimmaild.conntest.report import Report, Step
from bimmaild.events import EventBus
from bimmaild.oauth.flow import Tokens
from bimmaild.oauth.issuers import ISSUER_OF_PROVIDER
from bimmaild.oauth.signin import SignIn, SignIns
from bimmaild.oauth.tokens import REFRESH_SLOT, TokenProblem, TokenService
from bimmaild.protocol.errors import (
    AuthFailed,
    ConfirmationRequired,
    Conflict,
    InvalidParams,
    NotFound,
    SecretsUnavailable,
)
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
        tokens: TokenService | None = None,
        sign_ins: SignIns | None = None,
    ) -> None:
        self.tokens = tokens
        self.sign_ins = sign_ins
        # What every login (fetch, push, send) presents: a password or a fresh OAuth2 token.
        self.credentials = Credentials(secrets, tokens)
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
        owner = {"uid": account.owner_uid, "name": user_name(account.owner_uid)}
        return {**account.to_public(await self.slots_set(account)), "owner": owner, "status": self.state(account)}

    def state(self, account: Account) -> dict[str, Any]:
        """What the daemon knows and does with the account (its ``status``): no secret store read."""
        status = status_q.read(self.db.conn, account.id)
        status["pending_operations"] = journal_q.count_pending(self.db.conn, account.id)
        status["refused_operations"] = [
            {"id": r["id"], "kind": r["kind"], "attempts": r["attempts"], "error": r["last_error"],
             "next_attempt_at": r["next_attempt_at"]}
            for r in journal_q.refused(self.db.conn, account.id)
        ]  # fmt: skip
        if self.activity is not None:
            status.update(self.activity.of(account.id).to_public())
        return status

    # -- changing ----------------------------------------------------------

    async def add(self, params: Mapping[str, Any], owner: int) -> tuple[Account, list[str], Report | None]:
        """Validate, fill from the preset, test the connection (unless told not to), save."""
        flat, passwords = model.split_params(params)
        make_primary = bool(flat.pop("primary"))
        run_test = bool(flat.pop("test", False))
        flow_id = flat.pop("oauth_flow", None)
        self._check_files(flat, owner)  # before validation opens the file
        settings, provider, notes = self._new_settings(flat, has_password=bool(passwords))
        model.check_passwords(settings, passwords, have=set())
        self._check_name_free(settings["name"], None, owner)  # before a test that takes seconds
        if settings["login"] is None and not settings["separate_auth"]:
            notes.append(f"login is the address {settings['email']}")
        sign_in = self._sign_in(flow_id, owner, settings) if flow_id else None
        if settings["auth"] == "oauth2" and sign_in is None:
            if run_test:
                raise InvalidParams(
                    "an OAuth2 account needs a finished sign-in to test (oauth.begin, then oauth.wait): give "
                    "oauth.flow, or add it without testing and sign in later (account.reauth)",
                    field="oauth.flow",
                )
            notes.append("not signed in yet: sign in with bimmailctl account reauth")
        report = None
        if run_test:
            secrets = {slot: Secret(value) for slot, value in passwords.items()}
            if sign_in is not None:
                secrets["password"] = sign_in.done.result().access_token
            report = await conntest.run(*connection_test.targets(settings, secrets, provider), self.limits)
            if not report.ok:
                raise connection_test.failure_error(report)
        async with self._lock:
            self._check_name_free(settings["name"], None, owner)
            tokens = self._take(sign_in, owner) if sign_in is not None else None
            secret_ref = uuid.uuid4().hex
            for slot, value in passwords.items():
                await self.secrets.put(account_key(secret_ref, slot), Secret(value))
            if tokens is not None and tokens.refresh_token is not None:
                await self.secrets.put(account_key(secret_ref, REFRESH_SLOT), tokens.refresh_token)
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
        if tokens is not None and self.tokens is not None:
            self.tokens.remember(account.id, tokens)
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
        flow_id = flat.pop("oauth_flow", None)
        if owner is not None:
            self._check_files(flat, owner)
        secrets: dict[str, Secret | None] = {slot: Secret(value) for slot, value in passwords.items()}
        token_step: Step | None = None
        if ref is None:
            settings, provider, notes = self._new_settings(flat, has_password=bool(passwords))
            if flow_id:
                secrets["password"] = self._sign_in(flow_id, owner, settings).done.result().access_token
        else:
            account = self.find(ref, owner)
            notes = self._follow_security(account, flat)
            settings = {**account.settings(), **model.normalize(flat)}
            provider = self.providers.by_id(settings["provider"]) if settings["provider"] else None
            for slot in model.PASSWORD_SLOTS:
                if slot not in secrets:
                    secrets[slot] = await self.secrets.get(account_key(account.secret_ref, slot))
            if settings["auth"] == "oauth2":
                token_step, token = await self._token_step(account)
                if token is None:
                    return connection_test.token_failure(settings, token_step), notes
                secrets["password"] = token
        report = await conntest.run(*connection_test.targets(settings, secrets, provider), self.limits)
        if token_step is not None:
            report.imap.steps.insert(0, token_step)
        return report, notes

    async def _token_step(self, account: Account) -> tuple[Step, Secret | None]:
        """The "token" step of a saved OAuth2 account's test: really renew it (the refresh
        token is what breaks: revoked, expired), so a test proves the next fetch can log in."""
        assert self.tokens is not None
        started = time.monotonic()
        try:
            token = await self.tokens.access_token(account, renew=True)
        except TokenProblem as exc:
            fields = ["oauth.flow"] if exc.attention else []
            return Step("token", False, exc.message, fields=fields, duration_ms=_ms(started)), None
        return Step("token", True, "access token renewed", duration_ms=_ms(started)), token

    def _new_settings(
        self, flat: dict[str, Any], *, has_password: bool
    ) -> tuple[dict[str, Any], Provider | None, list[str]]:
        """Settings of an account being created: checked, completed from the preset and defaults."""
        if not flat.get("email"):
            raise InvalidParams("missing required parameter 'email'", field="email")
        flat["email"] = validation.email_address(flat["email"])
        provider, notes = presets.fill(flat, presets.choose(self.providers, flat.get("provider"), flat["email"]))
        flat["provider"] = provider.id if provider else None
        for key in ("login", "imap_login", "smtp_login", "tls_ca_file"):
            flat.setdefault(key, None)
        flat.setdefault("separate_auth", False)
        if flat.get("auth") is None:  # a provider that takes no password at all signs in (Outlook.com)
            oauth_only = provider is not None and provider.auth == ("oauth2",) and not has_password
            flat["auth"] = "oauth2" if oauth_only else "password"
        flat.setdefault("oauth_issuer", None)
        self._check_issuer(flat, provider.id if provider else None)
        settings = model.normalize(flat)
        return {c: settings.get(c) for c in model.SETTING_COLUMNS}, provider, notes

    def _check_issuer(self, flat: dict[str, Any], provider_id: str | None) -> None:
        """auth oauth2 needs an issuer (the preset's by default); auth password has none."""
        if flat["auth"] != "oauth2":
            if flat.get("oauth_issuer"):
                raise InvalidParams("oauth.issuer is only for auth oauth2", field="oauth.issuer")
            flat["oauth_issuer"] = None
            return
        if not flat.get("oauth_issuer"):
            flat["oauth_issuer"] = ISSUER_OF_PROVIDER.get(provider_id or "")
        if not flat["oauth_issuer"]:
            raise InvalidParams(
                "auth oauth2 needs oauth.issuer: this provider has no preset issuer (see oauth.client.list)",
                field="oauth.issuer",
            )
        flat["oauth_issuer"] = str(flat["oauth_issuer"]).strip().lower()

    def _sign_in(self, flow_id: str, owner: int | None, settings: Mapping[str, Any]) -> SignIn:
        """A finished sign-in of this user, with the issuer the settings use."""
        sign_in = self.sign_ins.get(flow_id, owner) if self.sign_ins is not None and owner is not None else None
        if sign_in is None:
            raise NotFound(f"no sign-in {flow_id!r} (oauth.begin starts one)", field="oauth.flow")
        if settings["auth"] != "oauth2":
            raise InvalidParams("oauth.flow is only for auth oauth2", field="oauth.flow")
        if sign_in.client.issuer.id != settings["oauth_issuer"]:
            raise InvalidParams(
                f"the sign-in was with {sign_in.client.issuer.id}, the account uses {settings['oauth_issuer']}",
                field="oauth.flow",
            )
        if not sign_in.done.done():
            raise Conflict("the sign-in is not finished (oauth.wait)", field="oauth.flow")
        error = sign_in.done.exception()
        if error is not None:
            raise AuthFailed(f"the sign-in failed: {error}", field="oauth.flow")
        return sign_in

    def _take(self, sign_in: SignIn, owner: int) -> Tokens:
        """The sign-in's tokens, once (a second add with the same flow is refused)."""
        assert self.sign_ins is not None
        if self.sign_ins.get(sign_in.id, owner) is None:
            raise NotFound("this sign-in was already used", field="oauth.flow")
        return self.sign_ins.take(sign_in)

    async def modify(
        self, ref: str | int, params: Mapping[str, Any], owner: int | None = None
    ) -> tuple[Account, list[str]]:
        async with self._lock:
            account = self.find(ref, owner)
            flat, passwords = model.split_params(params)
            primary = flat.pop("primary", None)
            flow_id = flat.pop("oauth_flow", None)
            self._check_files(flat, account.owner_uid)
            notes = self._follow_security(account, flat)
            changes = model.normalize(flat)
            merged = {**account.settings(), **changes}
            if "auth" in changes or "oauth_issuer" in changes:
                if changes.get("auth") == "password" and "oauth_issuer" not in changes:
                    merged["oauth_issuer"] = None
                self._check_issuer(merged, merged["provider"])
                changes.update(auth=merged["auth"], oauth_issuer=merged["oauth_issuer"])
            if "name" in changes:
                self._check_name_free(merged["name"], account.id, account.owner_uid)
            sign_in = self._sign_in(flow_id, account.owner_uid, merged) if flow_id else None
            new_grant = merged["auth"] == "oauth2" and (
                account.auth != "oauth2" or merged["oauth_issuer"] != account.oauth_issuer
            )
            if new_grant and sign_in is None:
                raise InvalidParams(
                    "OAuth2 with another issuer, or instead of a password, needs a sign-in: give oauth.flow",
                    field="oauth.flow",
                )
            have = await self.slots_set(account)
            model.check_passwords(merged, passwords, have)
            unused = (have & set(model.PASSWORD_SLOTS)) - set(model.required_slots(merged))
            if merged["auth"] != "oauth2" and REFRESH_SLOT in have:
                unused.add(REFRESH_SLOT)
            tokens = self._take(sign_in, account.owner_uid) if sign_in is not None else None
            for slot, value in passwords.items():
                await self.secrets.put(account_key(account.secret_ref, slot), Secret(value))
            if tokens is not None and tokens.refresh_token is not None:
                await self.secrets.put(account_key(account.secret_ref, REFRESH_SLOT), tokens.refresh_token)
            with self.db.transaction() as conn:
                notes += self._apply_primary(conn, account, primary)
                q.update(conn, account.id, {**changes, "updated_at": _now()})
                notes += self._clear_attention(conn, account)
            for slot in unused:
                await self.secrets.delete(account_key(account.secret_ref, slot))
        if self.tokens is not None:
            if tokens is not None:
                self.tokens.remember(account.id, tokens)
            elif "auth" in changes or "oauth_issuer" in changes:
                self.tokens.forget(account.id)
        account = self.find(account.id)
        await self._changed("modified", account)
        return account, notes

    async def reauth(self, ref: str | int, flow_id: str, owner: int | None = None) -> tuple[Account, list[str]]:
        """Give an account the tokens of a new sign-in: after a revoked or expired grant, or to
        move a password account to OAuth2 (its passwords are then forgotten)."""
        notes: list[str] = []
        async with self._lock:
            account = self.find(ref, owner)
            settings = account.settings()
            if account.auth != "oauth2":
                pending = self.sign_ins.get(flow_id, account.owner_uid) if self.sign_ins is not None else None
                settings.update(auth="oauth2", oauth_issuer=pending.client.issuer.id if pending else None)
                notes.append("the account now signs in with OAuth2; its stored passwords are forgotten")
            sign_in = self._sign_in(flow_id, account.owner_uid, settings)
            tokens = self._take(sign_in, account.owner_uid)
            if tokens.refresh_token is not None:
                await self.secrets.put(account_key(account.secret_ref, REFRESH_SLOT), tokens.refresh_token)
            with self.db.transaction() as conn:
                q.update(
                    conn, account.id, {"auth": "oauth2", "oauth_issuer": settings["oauth_issuer"], "updated_at": _now()}
                )
                notes += self._clear_attention(conn, account)
            for slot in model.PASSWORD_SLOTS:
                await self.secrets.delete(account_key(account.secret_ref, slot))
        if self.tokens is not None:
            self.tokens.remember(account.id, tokens)
        account = self.find(account.id)
        log.info("account %d %r signed in again", account.id, account.name)
        await self._changed("modified", account)
        if account.enabled and self.after_add is not None:
            self.after_add(account.id)
            notes.append("a fetch has started")
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
            if self.tokens is not None:
                self.tokens.forget(account.id)
            if self.activity is not None:
                self.activity.forget(account.id)
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

    def _follow_security(self, account: Account, flat: dict[str, Any]) -> list[str]:
        """A port and its security change together, with the rules of account.add (R-B1)."""
        provider = self.providers.by_id(account.provider) if account.provider else None
        notes = []
        for kind in presets.KINDS:
            host = flat.get(f"{kind}_host") or getattr(account, f"{kind}_host")
            current = (getattr(account, f"{kind}_port"), getattr(account, f"{kind}_security"))
            note = presets.follow(flat, kind, current, presets.preset_at(provider, kind, str(host)))
            if note is not None:
                notes.append(note)
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


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
