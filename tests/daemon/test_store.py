"""The store: schema version, upgrades from every released schema, refusal of newer ones."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from bimmaild.accounts.model import Account
from bimmaild.control.server import StartupError
from bimmaild.store import accounts as q
from bimmaild.store.db import DB_NAME, Database
from bimmaild.store.migrations import MIGRATIONS
from tests.helpers import daemon_config, start_daemon

DATA = Path(__file__).resolve().parents[1] / "data"


def test_fresh_store_is_at_latest_version(tmp_path: Path) -> None:
    db = Database.open(tmp_path)
    try:
        assert db.schema_version == len(MIGRATIONS)
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        db.close()


@pytest.mark.parametrize("fixture", sorted(DATA.glob("store-v*.sql")), ids=lambda p: p.stem)
def test_old_stores_upgrade_without_losing_accounts(tmp_path: Path, fixture: Path) -> None:
    raw = sqlite3.connect(tmp_path / DB_NAME)
    raw.executescript(fixture.read_text())
    raw.close()
    db = Database.open(tmp_path)
    try:
        assert db.schema_version == len(MIGRATIONS)
        accounts = [Account.from_row(r) for r in q.all_rows(db.conn)]
        assert [(a.name, a.email, a.separator, a.primary) for a in accounts] == [
            ("Bureau", "bureau@example.fr", ";", True)
        ]
        # R-L3: accounts made before users existed belong to the user the daemon runs as.
        assert [a.owner_uid for a in accounts] == [os.getuid()]
        assert db.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'accounts'").fetchone()[0] >= 1
    finally:
        db.close()


def test_one_primary_is_enforced_by_the_store(tmp_path: Path) -> None:
    raw = sqlite3.connect(tmp_path / DB_NAME)
    raw.executescript((DATA / "store-v1.sql").read_text())
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute(
            "INSERT INTO accounts (secret_ref, name, email, imap_host, imap_port, imap_security, smtp_host, smtp_port,"
            " smtp_security, is_primary, created_at, updated_at)"
            " VALUES ('b', 'Second', 'x@y.fr', 'h', 993, 'ssl', 'h', 465, 'ssl', 1, 'now', 'now')"
        )
    raw.close()


async def test_newer_store_is_refused(short_dir: Path, tmp_path: Path) -> None:
    config = daemon_config(short_dir, tmp_path)
    config.data_dir.mkdir(mode=0o700)
    raw = sqlite3.connect(config.data_dir / DB_NAME)
    raw.execute("PRAGMA user_version = 999")
    raw.close()
    with pytest.raises(StartupError, match="schema version 999"):
        await start_daemon(config)


def test_v4_journal_survives_the_v5_rebuild(tmp_path: Path) -> None:
    """Migration 5 rebuilds the journal (a new kind, 'append'): pending server operations must
    come through unchanged, or a delete made before the upgrade would never reach the server."""
    raw = sqlite3.connect(tmp_path / DB_NAME)
    raw.executescript((DATA / "store-v4.sql").read_text())
    raw.close()
    db = Database.open(tmp_path)
    try:
        rows = db.conn.execute("SELECT kind, state, attempts, last_error, params FROM journal ORDER BY id").fetchall()
        assert [tuple(r)[:4] for r in rows] == [
            ("move", "pending", 2, "NO [SERVERBUG] try later"),
            ("create", "done", 0, None),
        ]
        assert '"uid": 7' in rows[0]["params"]
        db.conn.execute("INSERT INTO journal (account_id, kind, params, created_at) VALUES (1, 'append', '{}', 'now')")
        next_id = db.conn.execute("SELECT max(id) FROM journal").fetchone()[0]
        assert next_id == 3  # ids are not reused after the rebuild
    finally:
        db.close()
