"""The account's server folders in the store: refreshed from LIST, chosen by the user (R-C1).

A folder's ``selected`` column is NULL until the user chooses; then the
default of its role applies (inbox, sent, archive and the account's trash
folder are synchronised; Gmail's All Mail never by default).  A folder that
disappears from LIST is marked ``gone``, never deleted with its messages: a
rename or a server mishap must not lose the local copies.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from bimmaild.imap import folders as roles
from bimmaild.imap.parse import ListEntry
from bimmaild.protocol.errors import InvalidParams, NotFound
from bimmaild.store import folders as folder_q
from bimmaild.store.db import Database

log = logging.getLogger(__name__)

NOT_SELECTABLE = {"\\noselect", "\\nonexistent"}


def unusable(wire_name: str) -> str | None:
    """Why a listed folder name cannot be kept, or None.

    A name must be stored (SQLite wants valid UTF-8), shown, and sent back in
    STATUS and SELECT.  An honest server sends modified UTF-7, or UTF-8 with
    UTF8=ACCEPT; raw 8-bit bytes arrive as lone surrogates (``tokens.astring``),
    and CR, LF or NUL (possible in a literal) cannot be sent in any command.
    """
    if any(ch in wire_name for ch in "\r\n\x00"):
        return "it contains CR, LF or NUL, which no IMAP command can carry"
    try:
        wire_name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is raw 8-bit bytes, neither modified UTF-7 nor UTF-8"
    return None


def usable(account_id: int, entries: Sequence[ListEntry]) -> list[ListEntry]:
    """The entries that can be kept: the first of each wire name, and none that ``unusable`` refuses.

    A server that lists a folder twice, or one whose name is not text, must not fail
    every fetch of the account: such entries are skipped with a warning in the log.
    """
    kept: dict[str, ListEntry] = {}
    for entry in entries:
        reason = unusable(entry.wire_name)
        if reason is not None:
            log.warning("account %d: folder %r skipped: %s", account_id, entry.wire_name, reason)
        elif entry.wire_name in kept:
            log.warning("account %d: folder %r listed twice by the server; the first kept", account_id, entry.wire_name)
        else:
            kept[entry.wire_name] = entry
    return list(kept.values())


def refresh(db: Database, account_id: int, entries: Sequence[ListEntry], account_trash: str) -> list[sqlite3.Row]:
    entries = usable(account_id, entries)
    with db.transaction() as conn:
        existing = {row["wire_name"]: row for row in folder_q.for_account(conn, account_id)}
        taken = {row["maildir"] for row in existing.values()}
        seen = set()
        # One folder per role by attribute: a Gmail label named "Sent" stays a label.
        assigned = roles.assign_roles(entries, account_trash=account_trash)
        for entry in entries:
            seen.add(entry.wire_name)
            values: dict[str, Any] = {
                "name": entry.name,
                "delimiter": entry.delimiter,
                "attributes": " ".join(sorted(entry.attributes)),
                "role": assigned.get(entry.wire_name),
                "state": "present",
            }
            row = existing.get(entry.wire_name)
            if row is None:
                maildir = roles.maildir_name(entry.name, entry.delimiter, taken)
                taken.add(maildir)
                folder_q.insert(conn, account_id, {**values, "wire_name": entry.wire_name, "maildir": maildir})
            else:
                folder_q.update(conn, row["id"], values)
        for wire_name, row in existing.items():
            if wire_name not in seen and row["state"] != "gone":
                folder_q.update(conn, row["id"], {"state": "gone"})
        return folder_q.for_account(conn, account_id)


def gone(rows: Sequence[sqlite3.Row]) -> list[str]:
    """Synchronised folders the server no longer lists (renamed or deleted there)."""
    return [r["name"] for r in rows if r["state"] == "gone" and r["synced_at"] is not None]


def selected(row: sqlite3.Row) -> bool:
    if row["role"] == "account_trash":
        return True  # the account's trash folder is always synchronised (R-C3)
    if row["selected"] is not None:
        return bool(row["selected"])
    return bool(roles.selected_by_default(row["role"]))


def selectable(row: sqlite3.Row) -> bool:
    return not ({a.lower() for a in row["attributes"].split()} & NOT_SELECTABLE)


def to_sync(rows: Sequence[sqlite3.Row]) -> list[sqlite3.Row]:
    """Folders a fetch synchronises: present on the server, selectable, selected; INBOX first."""
    chosen = [r for r in rows if r["state"] == "present" and selectable(r) and selected(r)]
    # The trash first: what other clients moved there is adopted before the source folder's
    # sync removes its copy (a move, not a delete and a second download; R-C5).
    order = {"account_trash": 0, "inbox": 1}
    return sorted(chosen, key=lambda r: (order.get(r["role"], 2), r["id"]))


def public(row: sqlite3.Row, local_count: int) -> dict[str, Any]:
    return {
        "name": row["name"],
        "wire_name": row["wire_name"],
        "role": row["role"],
        "selected": selected(row),
        "selectable": selectable(row),
        "chosen_by_user": row["selected"] is not None,
        "state": row["state"],
        "messages": local_count,
        "synced_at": row["synced_at"],
        "attributes": row["attributes"].split(),
    }


def choose(db: Database, account_id: int, select: Sequence[str], unselect: Sequence[str]) -> None:
    """Record the user's choice; names are folder names (INBOX in any case) or wire names."""
    with db.transaction() as conn:
        rows = folder_q.for_account(conn, account_id)
        for key, names, value in (("select", select, 1), ("unselect", unselect, 0)):
            for i, name in enumerate(names):
                row = _find(rows, name)
                if row is None:
                    known = ", ".join(r["name"] for r in rows) or "none yet: fetch or refresh first"
                    raise NotFound(f"no folder {name!r} (folders: {known})", field=f"{key}[{i}]")
                if value == 0 and row["role"] == "account_trash":
                    raise InvalidParams(
                        f"{row['name']!r} is the account's trash folder; it is always synchronised", field=f"{key}[{i}]"
                    )
                folder_q.update(conn, row["id"], {"selected": value})


def _find(rows: Sequence[sqlite3.Row], name: str) -> sqlite3.Row | None:
    for row in rows:
        if name in (row["name"], row["wire_name"]) or (name.upper() == "INBOX" and row["wire_name"] == "INBOX"):
            return row
    return None
