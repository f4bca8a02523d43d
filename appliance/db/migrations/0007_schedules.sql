-- Recurring captures and restores (appliance/backups/schedules.py).  A due job is
-- created once per occurrence: last_occurrence is written in the same transaction as
-- the job, so a restart never creates it twice.
CREATE TABLE schedules (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    host             TEXT REFERENCES hosts(mac) ON DELETE CASCADE,
    room             TEXT REFERENCES rooms(name) ON DELETE CASCADE,
    action           TEXT NOT NULL CHECK (action IN ('capture','restore')),
    image            TEXT NOT NULL,              -- capture: NAME; restore: NAME[@V|@DATE|@-3d]
    every            TEXT NOT NULL,              -- "daily 02:00", "mon,thu 18:30", ...
    wake             INTEGER NOT NULL DEFAULT 0, -- send Wake-on-LAN at the time
    paused           INTEGER NOT NULL DEFAULT 0,
    note             TEXT NOT NULL DEFAULT '',
    created_by       TEXT NOT NULL DEFAULT '',
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    since            TEXT NOT NULL,              -- no occurrence before this (creation, resume)
    last_occurrence  TEXT,                       -- newest occurrence handled (run or skipped)
    last_result      TEXT NOT NULL DEFAULT '',
    CHECK ((host IS NULL) != (room IS NULL))
);
