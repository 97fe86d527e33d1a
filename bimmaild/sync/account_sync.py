"""Synchronise one account: connect, refresh the folder list, then each selected folder in turn.

One IMAP connection per account for sync.  A folder the server refuses
(deleted between LIST and SELECT, say) is reported and skipped; a broken
connection ends the run with an error (the next fetch resumes from what
was stored).  A refused password or a safety stop puts the account in
``needs-attention``: retrying cannot fix either without the user.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bimmaild import tls
from bimmaild.accounts.model import Account
from bimmaild.accounts.secrets import SecretBackend, account_key
from bimmaild.imap.connection import AuthenticationFailed, CommandFailed, ImapConnection, ImapError
from bimmaild.store.db import Database
from bimmaild.sync import folder_list
from bimmaild.sync.folder_sync import FolderResult, FolderSync

log = logging.getLogger(__name__)


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


async def connect(account: Account, secrets: SecretBackend, timeout: float) -> ImapConnection:
    """A logged-in connection to the account's IMAP server, or AccountUnavailable saying why."""
    slot = "imap_password" if account.separate_auth else "password"
    password = await secrets.get(account_key(account.secret_ref, slot))
    if password is None:
        raise AccountUnavailable("no IMAP password is stored (bimmailctl account modify)", attention=True)
    where = f"{account.imap_host}:{account.imap_port}"
    context = tls.client_context(account.tls_ca_file) if account.imap_security != "none" else None
    try:
        conn = await ImapConnection.open(account.imap_host, account.imap_port, account.imap_security, context, timeout)
    except ssl.SSLCertVerificationError as exc:
        raise AccountUnavailable(f"{where}: certificate refused ({exc.verify_message})", attention=True) from None
    except (OSError, ssl.SSLError, ImapError) as exc:  # socket.gaierror is an OSError
        raise AccountUnavailable(f"cannot reach {where}: {_describe(exc)}") from None
    try:
        await conn.login(account.imap_user, password.reveal())
    except AuthenticationFailed as exc:
        await conn.aclose()
        raise AccountUnavailable(
            f"IMAP login refused: {exc.text} (check with: bimmailctl account test)", attention=True
        ) from None
    except (ImapError, OSError) as exc:
        await conn.aclose()
        raise AccountUnavailable(f"IMAP login failed: {_describe(exc)}") from None
    return conn


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror})"
    return str(exc) or exc.__class__.__name__


class AccountSync:
    def __init__(
        self,
        db: Database,
        account: Account,
        secrets: SecretBackend,
        mail_root: Path,
        *,
        timeout: float,
        reconciled: set[int],
        confirm_removals: bool,
    ) -> None:
        self.db = db
        self.account = account
        self.secrets = secrets
        self.mail_root = mail_root
        self.timeout = timeout
        self.reconciled = reconciled
        self.confirm_removals = confirm_removals

    async def run(self) -> AccountResult:
        result = AccountResult(self.account.id, self.account.name)
        try:
            conn = await connect(self.account, self.secrets, self.timeout)
        except AccountUnavailable as exc:
            result.state = "needs-attention" if exc.attention else "error"
            result.error = exc.message
            return result
        try:
            await self._folders(conn, result)
        except (ImapError, ConnectionError, TimeoutError) as exc:
            result.state, result.error = "error", f"connection to the IMAP server failed: {_describe(exc)}"
        except OSError as exc:  # the local side: disk full, read-only data dir …
            result.state, result.error = "error", f"cannot write the local store: {_describe(exc)}"
        finally:
            await conn.logout()
        if result.state == "ok" and any(f.attention for f in result.folders):
            result.state = "needs-attention"
            result.error = "; ".join(f.attention for f in result.folders if f.attention)
        return result

    async def _folders(self, conn: ImapConnection, result: AccountResult) -> None:
        entries = await conn.list_entries()
        rows = folder_list.refresh(self.db, self.account.id, entries, self.account.trash_folder)
        for name in folder_list.gone(rows):
            result.notes.append(
                f"folder {name!r} is no longer on the server (renamed or deleted there); its local copies are kept"
            )
        account_dir = self.mail_root / str(self.account.id)
        for row in folder_list.to_sync(rows):
            sync = FolderSync(
                self.db, conn, self.account.id, row, account_dir / row["maildir"],
                reconcile=row["id"] not in self.reconciled, confirm_removals=self.confirm_removals,
            )  # fmt: skip
            try:
                result.folders.append(await sync.run())
            except CommandFailed as exc:  # this folder only (e.g. deleted meanwhile)
                log.warning("account %d, folder %s: %s", self.account.id, row["name"], exc)
                result.folders.append(FolderResult(row["name"], error=f"{exc.command}: {exc.result} {exc.text}"))
                continue
            except BaseException:
                result.folders.append(sync.result)  # what was done before the failure counts
                raise
            self.reconciled.add(row["id"])
