-- bimmail store at schema version 4 (user_version below), written by bimmail 0.1.0 (issue 6).
-- Kept forever: every later migration must upgrade it without losing data.
PRAGMA user_version = 4;
CREATE TABLE account_status (
        account_id    INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
        state         TEXT NOT NULL CHECK (state IN ('ok', 'error', 'needs-attention')),
        message       TEXT,
        last_fetch_at TEXT,
        last_result   TEXT
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
    , provider TEXT);
INSERT INTO "accounts" VALUES(1,'aaaa0000aaaa0000aaaa0000aaaa0000','Bureau','bureau@example.fr',NULL,0,'imap.example.fr',993,'ssl',NULL,'smtp.example.fr',587,'starttls',1,NULL,NULL,'BIMoffice',';',1,1,1,'2026-12-04T12:00:00+00:00','2026-12-04T12:00:00+00:00',NULL);
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
INSERT INTO "journal" VALUES(1,1,'move','{"row_id": 1, "uid": 7, "from_wire": "INBOX", "to_wire": "BIMoffice", "to_folder_id": 2, "message_id": "<a@b>"}','pending',2,'NO [SERVERBUG] try later','2026-12-01T10:00:00+00:00',NULL);
INSERT INTO "journal" VALUES(2,1,'create','{"wire_name": "BIMoffice"}','done',0,NULL,'2026-12-01T09:00:00+00:00','2026-12-01T09:00:01+00:00');
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
        filename      TEXT NOT NULL, origin_folder_id INTEGER REFERENCES folders (id) ON DELETE SET NULL, pending INTEGER,
        UNIQUE (folder_id, uid)
    );
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
CREATE TABLE projects (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL COLLATE NOCASE UNIQUE,
        created_at  TEXT NOT NULL
    );
CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
INSERT INTO "settings" VALUES('store_id','0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f');
INSERT INTO "settings" VALUES('secret_backend','file');
CREATE UNIQUE INDEX accounts_one_primary ON accounts (is_primary) WHERE is_primary = 1;
CREATE INDEX messages_by_message_id ON messages (account_id, message_id);
CREATE INDEX messages_by_date ON messages (folder_id, sent_at);
CREATE INDEX journal_by_state ON journal (account_id, state, id);
CREATE UNIQUE INDEX project_messages_once ON project_messages (project_id, source_id) WHERE source_id IS NOT NULL;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('accounts',1);
INSERT INTO "sqlite_sequence" VALUES('journal',2);
