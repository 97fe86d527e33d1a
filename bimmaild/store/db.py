"""The SQLite connection: pragmas, transactions and numbered migrations.

The daemon is the only writer.  One connection, used from the event-loop
thread; statements are short, so they run inline rather than in a thread.
WAL with ``synchronous=FULL`` makes a committed transaction survive a power
cut, which the journal of server operations relies on.

Migrations are numbered SQL scripts applied in order, each in its own
transaction, with ``PRAGMA user_version`` as the schema number.  A store
written by a newer bimmail is refused rather than misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bimmaild.store.migrations import MIGRATIONS

DB_NAME = "bimmail.sqlite3"


class SchemaTooNew(Exception):
    """The store was written by a newer bimmail."""


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=5000")

    @classmethod
    def open(cls, data_dir: Path) -> Database:
        path = data_dir / DB_NAME
        fresh = not path.exists()
        db = cls(path)
        if fresh:
            path.chmod(0o600)
        db.migrate()
        return db

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Foreign keys are off while migrating (a table rebuild drops and recreates a parent
        table, SQLite's documented way) and checked before each migration commits."""
        current = self.schema_version
        latest = len(MIGRATIONS)
        if current > latest:
            raise SchemaTooNew(f"{self.path} has schema version {current}; this bimmail knows up to {latest}")
        if current == latest:
            return
        self.conn.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set before
        try:
            for number, migration in enumerate(MIGRATIONS[current:], start=current + 1):
                with self.transaction():
                    if isinstance(migration, str):
                        for statement in _statements(migration):
                            self.conn.execute(statement)
                    else:
                        migration(self.conn)
                    broken = self.conn.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise sqlite3.IntegrityError(f"migration {number} broke foreign keys: {broken[:5]}")
                    self.conn.execute(f"PRAGMA user_version = {number}")
        finally:
            self.conn.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def _statements(script: str) -> list[str]:
    """Split a migration script on ';' at line ends (our scripts hold no such literal)."""
    return [s.strip() for s in script.split(";\n") if s.strip()]
