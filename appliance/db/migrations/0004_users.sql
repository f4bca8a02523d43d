-- People who use the web console and the JSON API, and their API tokens.
-- Passwords are stored only as werkzeug scrypt hashes; tokens only as sha256 hex.
CREATE TABLE users (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('admin','technician','viewer')),
    password_hash  TEXT NOT NULL,
    -- bumped on password/role change: sessions issued before are no longer accepted
    epoch          INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    last_used   TEXT
);
CREATE INDEX api_tokens_by_user ON api_tokens(user);
