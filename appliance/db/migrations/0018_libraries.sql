-- District libraries (issue 30): an S3 bucket/prefix this appliance publishes to or
-- fetches from.  publisher_key: the pinned Ed25519 public key (hex) whose signature a
-- manifest from this library must carry; '' = this appliance's own key (it publishes).
-- The credentials are a file in the data directory (0600), never in the database.
CREATE TABLE libraries (
    name TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    prefix TEXT NOT NULL DEFAULT '',
    endpoint TEXT NOT NULL DEFAULT '',
    region TEXT NOT NULL DEFAULT 'us-east-1',
    publisher_key TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
