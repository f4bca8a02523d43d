-- After the restore (issue 13): post-restore hook scripts and kept-partition rules.
-- A hook runs in the boot environment after the write, ordered image -> room -> host
-- (then by id); a kept partition is left as it is on the disk when its layout matches.
CREATE TABLE hooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    scope       TEXT NOT NULL CHECK (scope IN ('image','room','host')),
    target      TEXT NOT NULL,              -- image name, room name, or host MAC
    name        TEXT NOT NULL,              -- the script's file name, as the job log names it
    script      BLOB NOT NULL,
    timeout     INTEGER NOT NULL DEFAULT 300 CHECK (timeout BETWEEN 1 AND 86400),
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    UNIQUE (scope, target, name)
);
CREATE TABLE keep_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    scope       TEXT NOT NULL CHECK (scope IN ('image','room')),
    target      TEXT NOT NULL,              -- image name or room name
    partition   INTEGER NOT NULL CHECK (partition BETWEEN 1 AND 128),
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    UNIQUE (scope, target, partition)
);
