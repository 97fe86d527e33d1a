"""The account's server folders in the store: refreshed from LIST, chosen by the user (R-C1).

A folder's ``selected`` column is NULL until the user chooses; then the
default of its role applies (inbox, sent, archive and the account's trash
folder are synchronised; Gmail's All Mail never by default).  A folder that
disappears from LIST is marked ``gone``, never deleted with its messages: a
server mishap must not lose the local copies.

A folder renamed on the server is recognised (``find_renames``): when a
synchronised folder vanished from LIST while new folders appeared, each new
one is asked its STATUS, and one with the vanished folder's UIDVALIDITY (and
its message count, when known) — the only one either way — is that folder.
Its row keeps its id, Maildir, messages and whether it is synchronised; only
its names (and the role its new name gives it) change, so it goes on syncing
from the stored state, nothing downloaded again.  The STATUS cost falls only
on folders that appeared in the same listing as a synchronised one vanished.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bimmaild.imap import folders as roles
from bimmaild.imap.connection import CommandFailed, ImapConnection
from bimmaild.imap.parse import ListEntry, quote_mailbox
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


async def refresh_from_server(
    db: Database, conn: ImapConnection, account_id: int, entries: Sequence[ListEntry], account_trash: str
) -> tuple[list[sqlite3.Row], list[str]]:
    """``refresh`` with the renames ``find_renames`` recognises; the rows, and notes for the user."""
    entries = usable(account_id, entries)
    renames = await find_renames(db, conn, account_id, entries)
    rows = refresh(db, account_id, entries, account_trash, renames=renames)
    by_id = {row["id"]: row for row in rows}
    notes = [
        f"folder {old!r} was renamed {by_id[folder_id]['name']!r} on the server; its local copies follow it"
        for old, folder_id in renames.values()
    ]
    return rows, notes


async def find_renames(
    db: Database, conn: ImapConnection, account_id: int, entries: Sequence[ListEntry]
) -> dict[str, tuple[str, int]]:
    """New folder's wire name -> (old name, folder id) of the vanished folder it is (see the module docstring)."""
    rows = folder_q.for_account(db.conn, account_id)
    listed = {entry.wire_name for entry in entries}
    known = {row["wire_name"] for row in rows}
    vanished = [
        r for r in rows if r["wire_name"] not in listed and r["state"] == "present" and r["uidvalidity"] is not None
    ]
    appeared = [e for e in entries if e.wire_name not in known and not _unselectable(e.attributes)]
    if not vanished or not appeared:
        return {}
    statuses: dict[str, dict[str, int]] = {}
    for entry in appeared:
        try:
            statuses[entry.wire_name] = await conn.status(quote_mailbox(entry.wire_name), "(MESSAGES UIDVALIDITY)")
        except CommandFailed as exc:  # listed but refused: not one we can take for another
            log.info("account %d: STATUS of new folder %r refused: %s", account_id, entry.wire_name, exc)
    matches = match_renames([(r["id"], r["uidvalidity"], r["message_count"]) for r in vanished], statuses)
    names = {r["id"]: r["name"] for r in vanished}
    for wire_name, folder_id in matches.items():
        log.info("account %d: folder %r renamed %r on the server", account_id, names[folder_id], wire_name)
    return {wire_name: (names[folder_id], folder_id) for wire_name, folder_id in matches.items()}


def match_renames(
    vanished: Sequence[tuple[int, int, int | None]], statuses: dict[str, dict[str, int]]
) -> dict[str, int]:
    """New folder's wire name -> id of the vanished folder it is.

    ``vanished``: (folder id, stored UIDVALIDITY, stored message count or None).  A pair
    needs the same UIDVALIDITY and, when the count is known, the same count, and must be
    the only candidate on both sides: an ambiguous pair is no rename (the vanished folder
    stays ``gone`` with its copies, the new one is a new folder).
    """
    candidates = {
        wire_name: [
            folder_id
            for folder_id, uidvalidity, count in vanished
            if uidvalidity == status.get("UIDVALIDITY") and (count is None or count == status.get("MESSAGES"))
        ]
        for wire_name, status in statuses.items()
    }
    claims: dict[int, int] = {}
    for ids in candidates.values():
        for folder_id in ids:
            claims[folder_id] = claims.get(folder_id, 0) + 1
    return {wire: ids[0] for wire, ids in candidates.items() if len(ids) == 1 and claims[ids[0]] == 1}


def refresh(
    db: Database,
    account_id: int,
    entries: Sequence[ListEntry],
    account_trash: str,
    *,
    renames: Mapping[str, tuple[str, int]] | None = None,
) -> list[sqlite3.Row]:
    """Store the server's folder list; ``renames`` (from ``find_renames``): new wire name ->
    (old name, id of the row that follows it)."""
    entries = usable(account_id, entries)
    renames = renames or {}
    with db.transaction() as conn:
        existing = {row["wire_name"]: row for row in folder_q.for_account(conn, account_id)}
        by_id = {row["id"]: row for row in existing.values()}
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
            if row is None and entry.wire_name in renames and renames[entry.wire_name][1] in by_id:
                row = by_id[renames[entry.wire_name][1]]
                seen.add(row["wire_name"])
                values["wire_name"] = entry.wire_name  # the Maildir keeps its name: no file moves
                was_selected = selected(row)
                if was_selected != _selected(values["role"], row["selected"]):
                    values["selected"] = int(was_selected)  # the new name's role would change it
                folder_q.update(conn, row["id"], values)
            elif row is None:
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
    return _selected(row["role"], row["selected"])


def _selected(role: str | None, choice: int | None) -> bool:
    if role == "account_trash":
        return True  # the account's trash folder is always synchronised (R-C3)
    if choice is not None:
        return bool(choice)
    return bool(roles.selected_by_default(role))


def selectable(row: sqlite3.Row) -> bool:
    return not _unselectable(row["attributes"].split())


def _unselectable(attributes: Iterable[str]) -> bool:
    return bool({a.lower() for a in attributes} & NOT_SELECTABLE)


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
