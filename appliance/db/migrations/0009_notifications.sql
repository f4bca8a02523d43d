-- Notifications (appliance/notify): where events go, what is waiting to go, what went.
-- An outbox row is written in the same transaction as the job transition that caused
-- it; a background thread delivers it (never the HTTP threads, never a job's move).
CREATE TABLE notify_targets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL CHECK (kind IN ('webhook','email')),
    address     TEXT NOT NULL,              -- webhook URL, or the mail recipient
    secret      TEXT NOT NULL DEFAULT '',   -- webhook HMAC secret, or the SMTP password
    smtp        TEXT NOT NULL DEFAULT '',   -- HOST:PORT (email)
    smtp_user   TEXT NOT NULL DEFAULT '',
    starttls    INTEGER NOT NULL DEFAULT 0,
    events      TEXT NOT NULL,              -- comma-separated kinds
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
CREATE TABLE notify_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    target      INTEGER NOT NULL REFERENCES notify_targets(id) ON DELETE CASCADE,
    event       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        BLOB NOT NULL,              -- the JSON payload, as signed
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     REAL NOT NULL,              -- unix time of the next attempt
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','sent','gave-up')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
CREATE INDEX notify_outbox_due ON notify_outbox(state, next_at);
CREATE TABLE notify_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox      INTEGER NOT NULL,
    target      INTEGER NOT NULL,
    event       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
