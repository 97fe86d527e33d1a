"""Synchronise one account: connect, refresh the folder list, then each selected folder in turn.

One IMAP connection per account for sync.  A folder the server refuses
(deleted between LIST and SELECT, a NO or BAD to one of its commands) is
skipped while the other folders sync, and the run ends in ``error`` naming it,
so that ``account.show`` tells and automatic fetches back off; a broken
connection ends the run with an error (the next fetch resumes from what
was stored).  A refused password or a safety stop puts the account in
``needs-attention``: retrying cannot fix either without the user.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bimmaild import tls
from bimmaild.accounts.credentials import Credentials
from bimmaild.accounts.model import Account
from bimmaild.accounts.secrets import Secret
from bimmaild.imap import mutf7
from bimmaild.imap.connection import (
    AuthenticationFailed,
    CommandFailed,
    ImapConnection,
    ImapError,
    LoginDisabled,
    StartTlsUnavailable,
)
from bimmaild.imap.parse import ListEntry, quote_mailbox
from bimmaild.oauth.tokens import TokenProblem, reauth_hint
from bimmaild.store import journal as journal_q
from bimmaild.store.db import Database
from bimmaild.sync import folder_list
from bimmaild.sync.folder_sync import FolderResult, FolderSync
from bimmaild.sync.operations import Operations
from bimmaild.sync.planner import DEFAULT_SAFETY, SafetyStop
from bimmaild.sync.reporting import Reporter

log = logging.getLogger(__name__)

SENT_FOLDER = "Sent"  # created when a sent message's copy has nowhere to go (as Thunderbird does)


class AccountUnavailable(Exception):
    """The account cannot be synchronised now; ``attention`` when only the user can fix it."""

    def __init__(self, message: str, *, attention: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.attention = attention


@dataclass
class AccountResult:
    account_id: int
    account: str
    state: str = "ok"  # ok | error | needs-attention
    error: str | None = None
    folders: list[FolderResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    login_refused: bool = False  # only the user can fix it (password, token, certificate)

    def to_public(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "account": self.account,
            "state": self.state,
            "error": self.error,
            "new": sum(f.new for f in self.folders),
            "updated": sum(f.updated for f in self.folders),
            "removed": sum(f.removed for f in self.folders),
            "folders": [f.to_public() for f in self.folders],
            "notes": self.notes,
        }


async def connect(account: Account, credentials: Credentials, timeout: float) -> ImapConnection:
    """A logged-in connection to the account's IMAP server, or AccountUnavailable saying why."""
    try:
        password = await credentials.secret(account, "imap")
    except TokenProblem as exc:
        raise AccountUnavailable(exc.message, attention=exc.attention) from None
    if password is None:
        raise AccountUnavailable("no IMAP password is stored (bimmailctl account modify)", attention=True)
    where = f"{account.imap_host}:{account.imap_port}"
    context = tls.client_context(account.tls_ca_file) if account.imap_security != "none" else None
    try:
        conn = await ImapConnection.open(account.imap_host, account.imap_port, account.imap_security, context, timeout)
    except ssl.SSLCertVerificationError as exc:
        raise AccountUnavailable(f"{where}: certificate refused ({exc.verify_message})", attention=True) from None
    except StartTlsUnavailable:  # R-B3: never a downgrade; and it may be an attacker's doing, so say so
        raise AccountUnavailable(
            f"{where} does not offer STARTTLS, which this account requires: not logging in without TLS "
            "(if the server does offer it, something on the network removed it)"
        ) from None
    except (OSError, ssl.SSLError, ImapError) as exc:  # socket.gaierror is an OSError
        raise AccountUnavailable(f"cannot reach {where}: {_describe(exc)}") from None
    try:
        if account.oauth:
            await _login_oauth(conn, account, credentials, password)
        else:
            await conn.login(account.imap_user, password.reveal())
    except AuthenticationFailed as exc:
        await conn.aclose()
        if exc.unavailable:  # the server's own auth backend is down: nothing for the user to fix
            raise AccountUnavailable(f"IMAP login temporarily impossible: {exc.text}") from None
        hint = reauth_hint(account) if account.oauth else "check with: bimmailctl account test"
        raise AccountUnavailable(f"IMAP login refused: {exc.text} ({hint})", attention=True) from None
    except TokenProblem as exc:
        await conn.aclose()
        raise AccountUnavailable(exc.message, attention=exc.attention) from None
    except LoginDisabled as exc:
        await conn.aclose()
        raise AccountUnavailable(f"IMAP login impossible: {exc}", attention=True) from None
    except (ImapError, OSError) as exc:
        await conn.aclose()
        raise AccountUnavailable(f"IMAP login failed: {_describe(exc)}") from None
    except BaseException:
        conn.close()  # cancelled (daemon stopping, account deleted): do not wait
        raise
    return conn


async def personal_wire_name(conn: ImapConnection, entries: list[ListEntry], name: str) -> str:
    """A folder's name on the wire (the trash folder's, R-C3, or Sent): in the personal
    namespace, with the server's hierarchy delimiter, in modified UTF-7."""
    prefix, delimiter = await conn.namespace_prefix()
    delimiter = delimiter or next((e.delimiter for e in entries if e.delimiter), None)
    local = name.replace("/", delimiter) if delimiter else name
    return prefix + mutf7.encode(local)


async def _login_oauth(conn: ImapConnection, account: Account, credentials: Credentials, token: Secret) -> None:
    """A refused token gets one renewed token (revoked early, clock skew); then it is refused."""
    try:
        await conn.login_oauth(account.imap_user, token.reveal())
    except AuthenticationFailed as exc:
        if exc.unavailable:
            raise
        renewed = await credentials.secret(account, "imap", renew=True)
        assert renewed is not None
        await conn.login_oauth(account.imap_user, renewed.reveal())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    return str(exc) or exc.__class__.__name__


async def prepare_folders(
    db: Database, conn: ImapConnection, account: Account, mail_root: Path
) -> tuple[list[sqlite3.Row], list[str]]:
    """What every connection does first: refresh the folder list, create the account's trash
    folder on the server if it is missing (R-C3) — and a Sent folder when a sent message's
    copy waits for one (R-D1) —, then replay pending server operations (R-C7), creations
    first since the others may need those folders."""
    entries = await conn.list_entries()
    rows, notes = await folder_list.refresh_from_server(db, conn, account.id, entries, account.trash_folder)
    pending = journal_q.pending(db.conn, account.id)
    creating = {journal_q.params(e)["wire_name"] for e in pending if e["kind"] == "create"}
    wanted = []
    if not any(r["role"] == "account_trash" and r["state"] == "present" for r in rows):
        wanted.append(account.trash_folder)
    if any(e["kind"] == "append" for e in pending) and not any(
        r["role"] == "sent" and r["state"] == "present" for r in rows
    ):
        wanted.append(SENT_FOLDER)
    for name in wanted:
        wire = await personal_wire_name(conn, entries, name)
        if wire not in creating:
            with db.transaction() as txn:
                journal_q.record(txn, account.id, "create", {"wire_name": wire})
    operations = Operations(db, conn, account.id, mail_root)
    notes += await operations.replay(kinds=("create",))
    if wanted:
        rows = folder_list.refresh(db, account.id, await conn.list_entries(), account.trash_folder)
    else:
        await _keep_trash_subscribed(conn, entries, rows)
    notes += await operations.replay()
    return rows, notes


async def _keep_trash_subscribed(conn: ImapConnection, entries: list[ListEntry], rows: list[sqlite3.Row]) -> None:
    """R-C3: the trash folder is subscribed, so that every client shows it — also when someone
    unsubscribed it, or it was made by hand before the account was added (a creation subscribes)."""
    trash = next((r for r in rows if r["role"] == "account_trash" and r["state"] == "present"), None)
    if trash is None:
        return
    if conn.subscribed_known:
        entry = next((e for e in entries if e.wire_name == trash["wire_name"]), None)
        subscribed = entry is not None and any(a.lower() == "\\subscribed" for a in entry.attributes)
    else:
        subscribed = bool(await conn.subscribed(quote_mailbox(trash["wire_name"])))
    if not subscribed:
        await conn.subscribe(quote_mailbox(trash["wire_name"]))
        log.info("subscribed the trash folder %r, which was not", trash["wire_name"])


class AccountSync:
    def __init__(
        self,
        db: Database,
        account: Account,
        credentials: Credentials,
        mail_root: Path,
        *,
        timeout: float,
        reconciled: set[int],
        confirm_removals: bool,
        safety: SafetyStop = DEFAULT_SAFETY,
        only_roles: frozenset[str] | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.safety = safety
        self.reporter = reporter or Reporter()
        self.db = db
        self.account = account
        self.credentials = credentials
        self.mail_root = mail_root
        self.timeout = timeout
        self.reconciled = reconciled
        self.confirm_removals = confirm_removals
        self.only_roles = only_roles  # None: every folder chosen for sync

    async def run(self) -> AccountResult:
        result = AccountResult(self.account.id, self.account.name)
        try:
            conn = await connect(self.account, self.credentials, self.timeout)
        except AccountUnavailable as exc:
            result.state = "needs-attention" if exc.attention else "error"
            result.error = exc.message
            result.login_refused = exc.attention
            return result
        try:
            await self._folders(conn, result)
        except (ImapError, ConnectionError, TimeoutError) as exc:
            result.state, result.error = "error", f"connection to the IMAP server failed: {_describe(exc)}"
        except (OSError, sqlite3.Error) as exc:  # the local side: disk full, read-only data dir …
            result.state, result.error = "error", f"cannot write the local store: {_describe(exc)}"
        finally:
            await conn.logout()
        if result.state == "ok" and any(f.attention for f in result.folders):
            result.state = "needs-attention"
            result.error = "; ".join(f.attention for f in result.folders if f.attention)
        elif result.state == "ok" and any(f.error for f in result.folders):
            # Not "ok": a folder that did not sync would otherwise show only inside this result.
            result.state = "error"
            result.error = "; ".join(f"folder {f.folder!r}: {f.error}" for f in result.folders if f.error)
        return result

    async def _prepare(self, conn: ImapConnection, result: AccountResult) -> list[sqlite3.Row]:
        rows, notes = await prepare_folders(self.db, conn, self.account, self.mail_root)
        result.notes += notes
        return rows

    async def _folders(self, conn: ImapConnection, result: AccountResult) -> None:
        if "QRESYNC" in conn.capabilities:  # before any SELECT (RFC 5161)
            await conn.enable("QRESYNC")
        rows = await self._prepare(conn, result)
        for name in folder_list.gone(rows):
            result.notes.append(
                f"folder {name!r} is no longer on the server (renamed or deleted there); its local copies are kept"
            )
        account_dir = self.mail_root / str(self.account.id)
        chosen = folder_list.to_sync(rows)
        if self.only_roles is not None:
            chosen = [r for r in chosen if r["role"] in self.only_roles]
        for row in chosen:
            sync = FolderSync(
                self.db, conn, self.account.id, row, account_dir / row["maildir"],
                reconcile=row["id"] not in self.reconciled, confirm_removals=self.confirm_removals,
                safety=self.safety, reporter=self.reporter,
            )  # fmt: skip
            try:
                result.folders.append(await sync.run())
            except CommandFailed as exc:  # this folder only (e.g. deleted meanwhile)
                log.warning("account %d, folder %s: %s", self.account.id, row["name"], exc)
                sync.result.error = f"{exc.command}: {exc.result} {exc.text}"
                result.folders.append(sync.result)  # what was stored before the refusal counts
                continue
            except BaseException:
                result.folders.append(sync.result)  # what was done before the failure counts
                raise
            finally:
                result.notes += sync.notes
            self.reconciled.add(row["id"])
