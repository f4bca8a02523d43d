-- Machines, rooms, machines seen booting, and jobs.
CREATE TABLE rooms (
    name          TEXT PRIMARY KEY,
    note          TEXT NOT NULL DEFAULT '',
    -- standing rule "restore IMAGE[@VERSION] at every network boot" (NULL = none)
    auto_restore  TEXT
);

CREATE TABLE hosts (
    mac           TEXT PRIMARY KEY,          -- lower-case aa:bb:cc:dd:ee:ff
    name          TEXT NOT NULL UNIQUE,
    room          TEXT REFERENCES rooms(name) ON DELETE SET NULL,
    ip            TEXT,                       -- static reservation in full DHCP mode
    disk_hint     TEXT NOT NULL DEFAULT '',   -- serial=…, wwn=…, size=…
    auto_restore  TEXT,                       -- per-host standing rule, overrides the room's
    firmware      TEXT NOT NULL DEFAULT '',   -- last seen: bios, uefi, uefi-http, ipxe
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);

-- Machines that network-booted but are not registered: never written to.
CREATE TABLE seen (
    mac         TEXT PRIMARY KEY,
    firmware    TEXT NOT NULL DEFAULT '',
    arch        INTEGER,
    uuid        TEXT NOT NULL DEFAULT '',
    ip          TEXT NOT NULL DEFAULT '',
    first_seen  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    last_seen   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    boots       INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    host          TEXT NOT NULL REFERENCES hosts(mac) ON DELETE CASCADE,
    action        TEXT NOT NULL CHECK (action IN ('restore','capture','register','wipe')),
    image         TEXT,
    version       TEXT,                       -- resolved at creation for restore
    options       TEXT NOT NULL DEFAULT '{}', -- JSON
    state         TEXT NOT NULL DEFAULT 'pending',
    token_hash    TEXT NOT NULL,              -- sha256 of the per-job secret
    created_by    TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    not_before    TEXT,                       -- scheduled start (UTC), NULL = now
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    finished_at   TEXT,
    reason        TEXT NOT NULL DEFAULT '',   -- failure / cancel reason
    phase         TEXT NOT NULL DEFAULT '',
    bytes_done    INTEGER NOT NULL DEFAULT 0,
    bytes_total   INTEGER NOT NULL DEFAULT 0,
    rate          REAL NOT NULL DEFAULT 0,    -- bytes/s
    eta           REAL,                        -- seconds
    verified_bytes INTEGER NOT NULL DEFAULT 0,
    result_version TEXT                        -- capture: the version it committed
);
CREATE INDEX jobs_by_host_state ON jobs(host, state);

CREATE TABLE job_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    line    TEXT NOT NULL
);
CREATE INDEX job_log_by_job ON job_log(job, id);

-- Who started, cancelled, deleted or changed what (CLI actor = "cli:<unix user>").
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,      -- e.g. job.restore, job.cancel, image.rm, host.add
    target  TEXT NOT NULL DEFAULT '',
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_time ON audit(at);
