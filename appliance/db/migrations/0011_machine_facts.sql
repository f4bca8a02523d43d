-- Hardware facts, identity by SMBIOS UUID, disk health and power requests (issue 14).

-- The last facts a machine reported (register job, every restore and capture), and the
-- SMBIOS UUID that identifies it besides its MAC: a MAC that arrives with another
-- machine's UUID is refused before anything is written (docs/operations.md).
CREATE TABLE host_facts (
    mac         TEXT PRIMARY KEY REFERENCES hosts(mac) ON DELETE CASCADE,
    uuid        TEXT NOT NULL DEFAULT '',   -- SMBIOS system UUID, lower case; '' = none
    serial      TEXT NOT NULL DEFAULT '',   -- SMBIOS system serial
    facts       TEXT NOT NULL DEFAULT '{}', -- JSON: system, board, CPU, memory, disks, NICs
    search      TEXT NOT NULL DEFAULT '',   -- lower-case words the search box matches
    job         INTEGER,                    -- the job that reported them
    reported_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
CREATE INDEX host_facts_by_uuid ON host_facts(uuid);

-- What each job's client read about its disks' health, and the verdict.
CREATE TABLE disk_health (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    job      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    path     TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('ok','unknown','refused','ignored')),
    facts    TEXT NOT NULL DEFAULT '{}',    -- JSON: SMART kind, passed, counts, model, serial
    at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
CREATE INDEX disk_health_by_job ON disk_health(job);

-- "Reboot" / "power off" for a machine sitting in the boot environment after its job
-- (register, refused disk, failed): its client polls and takes the request.
CREATE TABLE power_requests (
    job        INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    command    TEXT NOT NULL CHECK (command IN ('reboot','poweroff')),
    actor      TEXT NOT NULL,
    at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    taken_at   TEXT
);

-- When a job's client last asked for a power request (it is waiting in the boot
-- environment while this is recent).
CREATE TABLE power_polls (
    job      INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    at       TEXT NOT NULL
);
