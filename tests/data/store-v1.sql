-- bimmail store at schema version 1 (user_version below), written by bimmail 0.1.0.
-- Kept forever: every later migration must upgrade it without losing data.
PRAGMA user_version = 1;
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
INSERT INTO "accounts" VALUES(1,'aaaa0000aaaa0000aaaa0000aaaa0000','Bureau','bureau@example.fr',NULL,0,'imap.example.fr',993,'ssl',NULL,'smtp.example.fr',587,'starttls',1,NULL,NULL,'BIMoffice',';',1,1,1,'2026-12-04T12:00:00+00:00','2026-12-04T12:00:00+00:00');
CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
INSERT INTO "settings" VALUES('store_id','0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f');
INSERT INTO "settings" VALUES('secret_backend','file');
CREATE UNIQUE INDEX accounts_one_primary ON accounts (is_primary) WHERE is_primary = 1;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('accounts',1);
