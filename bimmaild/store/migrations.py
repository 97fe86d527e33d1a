"""Schema migrations, in order.  Never edit a released entry: append a new one.

Entry N (1-based) brings the store from user_version N-1 to N.  Old stores are
kept as fixtures under ``tests/data/`` and a test upgrades each of them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

ACCOUNT_COLUMNS = (
    "id, secret_ref, name, email, login, separate_auth, imap_host, imap_port, imap_security, imap_login, "
    "smtp_host, smtp_port, smtp_security, smtp_auth, smtp_login, tls_ca_file, trash_folder, separator, "
    "auto_fetch, enabled, is_primary, created_at, updated_at, provider"
)


def _owners(conn: sqlite3.Connection) -> None:
    """6: users (R-L3).  Accounts get an owner (the uid the daemon runs as owns the existing
    ones: before this, a daemon served its own user only); names and the primary account
    become per owner, which needs the accounts table rebuilt (its id sequence kept: ids are
    never reused).  Project assignments get the owner of the assigning user."""
    uid = os.getuid()
    sequence = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'accounts'").fetchone()
    conn.execute(
        """
        CREATE TABLE accounts_v6 (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            secret_ref    TEXT NOT NULL UNIQUE,
            owner_uid     INTEGER NOT NULL,
            name          TEXT NOT NULL COLLATE NOCASE,
            email         TEXT NOT NULL,
            login         TEXT,
            separate_auth INTEGER NOT NULL DEFAULT 0 CHECK (separate_auth IN (0, 1)),
            imap_host     TEXT NOT NULL,
            imap_port     INTEGER NOT NULL CHECK (imap_port BETWEEN 1 AND 65535),
            imap_security TEXT NOT NULL CHECK (imap_security IN ('ssl', 'starttls', 'none')),
            imap_login    TEXT,
            smtp_host     TEXT NOT NULL,
            smtp_port     INTEGER NOT NULL CHECK (smtp_port BETWEEN 1 AND 65535),
            smtp_security TEXT NOT NULL CHECK (smtp_security IN ('ssl', 'starttls', 'none')),
            smtp_auth     INTEGER NOT NULL DEFAULT 1 CHECK (smtp_auth IN (0, 1)),
            smtp_login    TEXT,
            tls_ca_file   TEXT,
            trash_folder  TEXT NOT NULL DEFAULT 'BIMoffice',
            separator     TEXT NOT NULL DEFAULT ',' CHECK (separator IN (',', ';')),
            auto_fetch    INTEGER NOT NULL DEFAULT 1 CHECK (auto_fetch IN (0, 1)),
            enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
            is_primary    INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
            created_at    TEXT NOT NULL,
            updated_at    TEXT NOT NULL,
            provider      TEXT,
            UNIQUE (owner_uid, name)
        )
        """
    )
    conn.execute(
        f"INSERT INTO accounts_v6 ({ACCOUNT_COLUMNS}, owner_uid) SELECT {ACCOUNT_COLUMNS}, ? FROM accounts",  # noqa: S608
        (uid,),
    )
    conn.execute("DROP TABLE accounts")
    conn.execute("ALTER TABLE accounts_v6 RENAME TO accounts")
    if sequence is not None:
        conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'accounts'", (sequence[0],))
    # At most one primary account per user (R-E2), enforced by the store itself.
    conn.execute("CREATE UNIQUE INDEX accounts_one_primary ON accounts (owner_uid) WHERE is_primary = 1")
    conn.execute("CREATE INDEX accounts_by_owner ON accounts (owner_uid, id)")
    conn.execute(
        """
        CREATE TABLE users (
            uid           INTEGER PRIMARY KEY,
            name          TEXT NOT NULL,
            -- NULL: the daemon's default right applies; 0/1: an administrator's decision (R-L3).
            may_configure INTEGER CHECK (may_configure IN (0, 1)),
            first_seen_at TEXT NOT NULL,
            last_seen_at  TEXT NOT NULL
        )
        """
    )
    conn.execute("ALTER TABLE project_messages ADD COLUMN owner_uid INTEGER")
    conn.execute("UPDATE project_messages SET owner_uid = ?", (uid,))


Migration = str | Callable[[sqlite3.Connection], None]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: accounts and daemon settings.
    """
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE accounts (
        -- AUTOINCREMENT: an id is never reused, so nothing of a deleted account
        -- (Maildir, secrets) can ever be mistaken for a new one's (R-X2).
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        -- Random token naming this account's secrets; written before the row,
        -- so a crash in between leaves only an orphan the start-up sweep removes.
        secret_ref    TEXT NOT NULL UNIQUE,
        name          TEXT NOT NULL COLLATE NOCASE UNIQUE,
        email         TEXT NOT NULL,
        login         TEXT,
        separate_auth INTEGER NOT NULL DEFAULT 0 CHECK (separate_auth IN (0, 1)),
        imap_host     TEXT NOT NULL,
        imap_port     INTEGER NOT NULL CHECK (imap_port BETWEEN 1 AND 65535),
        imap_security TEXT NOT NULL CHECK (imap_security IN ('ssl', 'starttls', 'none')),
        imap_login    TEXT,
        smtp_host     TEXT NOT NULL,
        smtp_port     INTEGER NOT NULL CHECK (smtp_port BETWEEN 1 AND 65535),
        smtp_security TEXT NOT NULL CHECK (smtp_security IN ('ssl', 'starttls', 'none')),
        smtp_auth     INTEGER NOT NULL DEFAULT 1 CHECK (smtp_auth IN (0, 1)),
        smtp_login    TEXT,
        tls_ca_file   TEXT,
        trash_folder  TEXT NOT NULL DEFAULT 'BIMoffice',
        separator     TEXT NOT NULL DEFAULT ',' CHECK (separator IN (',', ';')),
        auto_fetch    INTEGER NOT NULL DEFAULT 1 CHECK (auto_fetch IN (0, 1)),
        enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        is_primary    INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL
    );
    -- At most one primary account (R-E2), enforced by the store itself.
    CREATE UNIQUE INDEX accounts_one_primary ON accounts (is_primary) WHERE is_primary = 1;
    """,
    # 2: the provider preset an account was set up from (hints, Sent-copy behaviour, OAuth2).
    """
    ALTER TABLE accounts ADD COLUMN provider TEXT;
    """,
    # 3: synchronisation: server folders, the message index, the state of each account's fetch.
    """
    CREATE TABLE folders (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        wire_name     TEXT NOT NULL,
        name          TEXT NOT NULL,
        delimiter     TEXT,
        attributes    TEXT NOT NULL DEFAULT '',
        role          TEXT,
        -- NULL: the default of its role; 0/1: the user's choice (R-C1).
        selected      INTEGER CHECK (selected IN (0, 1)),
        maildir       TEXT NOT NULL,
        uidvalidity   INTEGER,
        -- Every message with a smaller UID that exists on the server is stored.
        uidnext       INTEGER,
        highestmodseq INTEGER,
        message_count INTEGER,
        state         TEXT NOT NULL DEFAULT 'present' CHECK (state IN ('present', 'gone')),
        synced_at     TEXT,
        UNIQUE (account_id, wire_name),
        UNIQUE (account_id, maildir)
    );
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        folder_id     INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
        uid           INTEGER NOT NULL,
        message_id    TEXT,
        sent_at       TEXT,
        sender        TEXT,
        recipients    TEXT,
        subject       TEXT,
        size          INTEGER NOT NULL,
        flags         TEXT NOT NULL DEFAULT '',
        internal_date TEXT,
        filename      TEXT NOT NULL,
        UNIQUE (folder_id, uid)
    );
    CREATE INDEX messages_by_message_id ON messages (account_id, message_id);
    CREATE INDEX messages_by_date ON messages (folder_id, sent_at);
    CREATE TABLE account_status (
        account_id    INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        state         TEXT NOT NULL CHECK (state IN ('ok', 'error', 'needs-attention')),
        message       TEXT,
        last_fetch_at TEXT,
        last_result   TEXT
    );
    """,
    # 4: the server trash mirror (R-C3..C6), the journal of server operations (R-C7), projects.
    """
    -- For a message in the account's trash folder: the folder it was deleted from (restore).
    ALTER TABLE messages ADD COLUMN origin_folder_id INTEGER REFERENCES folders (id) ON DELETE SET NULL;
    -- The journal entry of a server operation on this message not yet confirmed (its UID is then
    -- a placeholder, and no sync may remove the row).
    ALTER TABLE messages ADD COLUMN pending INTEGER;
    CREATE TABLE journal (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('create', 'move', 'expunge')),
        params      TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        created_at  TEXT NOT NULL,
        done_at     TEXT
    );
    CREATE INDEX journal_by_state ON journal (account_id, state, id);
    CREATE TABLE projects (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL COLLATE NOCASE UNIQUE,
        created_at  TEXT NOT NULL
    );
    -- A project's own copy of a message: it outlives the server copy and the account (R-C6, R-X2).
    CREATE TABLE project_messages (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        project_id    INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
        source_id     INTEGER REFERENCES messages (id) ON DELETE SET NULL,
        account_name  TEXT,
        account_email TEXT,
        folder        TEXT,
        message_id    TEXT,
        sent_at       TEXT,
        sender        TEXT,
        recipients    TEXT,
        subject       TEXT,
        size          INTEGER NOT NULL,
        filename      TEXT NOT NULL,
        assigned_at   TEXT NOT NULL
    );
    CREATE UNIQUE INDEX project_messages_once ON project_messages (project_id, source_id) WHERE source_id IS NOT NULL;
    """,
    # 5: sending: signatures (R-F1, R-F2), the outbox, and 'append' (the Sent copy) in the journal.
    """
    CREATE TABLE journal_v5 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('create', 'move', 'expunge', 'append')),
        params      TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT,
        created_at  TEXT NOT NULL,
        done_at     TEXT
    );
    INSERT INTO journal_v5 SELECT * FROM journal;
    DROP TABLE journal;
    ALTER TABLE journal_v5 RENAME TO journal;
    CREATE INDEX journal_by_state ON journal (account_id, state, id);
    CREATE TABLE signatures (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        name        TEXT NOT NULL COLLATE NOCASE,
        kind        TEXT NOT NULL CHECK (kind IN ('text', 'html')),
        body        TEXT NOT NULL,
        position    INTEGER NOT NULL,
        is_default  INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        UNIQUE (account_id, name)
    );
    CREATE UNIQUE INDEX signatures_one_default ON signatures (account_id) WHERE is_default = 1;
    CREATE TABLE signature_images (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        signature_id  INTEGER NOT NULL REFERENCES signatures (id) ON DELETE CASCADE,
        filename      TEXT NOT NULL,
        content_type  TEXT NOT NULL,
        data          BLOB NOT NULL,
        UNIQUE (signature_id, filename)
    );
    -- Messages handed to SMTP: kept until every recipient is settled (R-D1, never lost).
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id      INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        message_id      TEXT NOT NULL,
        subject         TEXT,
        sender          TEXT NOT NULL,
        recipients      TEXT NOT NULL,
        filename        TEXT NOT NULL,
        state           TEXT NOT NULL
                        CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'uncertain', 'cancelled')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error      TEXT,
        result          TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX outbox_by_state ON outbox (state, next_attempt_at);
    """,
    _owners,
    # 7: OAuth2 sign-in.  An account logs in with a password or with OAuth2 tokens from an
    # issuer (its refresh token is a secret, like a password).  Client registrations are per
    # user; owner_uid -1 is one an administrator made for every user.  A preset issuer
    # (google, microsoft) has its endpoints in code; another one carries them here.
    """
    ALTER TABLE accounts ADD COLUMN auth TEXT NOT NULL DEFAULT 'password' CHECK (auth IN ('password', 'oauth2'));
    ALTER TABLE accounts ADD COLUMN oauth_issuer TEXT;
    CREATE TABLE oauth_clients (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        owner_uid   INTEGER NOT NULL,
        issuer      TEXT NOT NULL,
        client_id   TEXT NOT NULL,
        secret_ref  TEXT,
        auth_url    TEXT,
        token_url   TEXT,
        device_url  TEXT,
        scopes      TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        UNIQUE (owner_uid, issuer)
    );
    """,
    # 8: a server operation the server refused is tried again later, never given up on: when.
    """
    ALTER TABLE journal ADD COLUMN next_attempt_at TEXT;
    UPDATE journal SET state = 'pending' WHERE state = 'failed';
    """,
)
