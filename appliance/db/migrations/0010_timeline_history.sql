-- The per-machine timeline (appliance/machines/timeline.py): the last events of each
-- machine's boots, by MAC, bounded per machine by the code that writes it (KEEP newest
-- rows).
-- Not a foreign key: a machine that is not (yet) in the inventory has a timeline too.
CREATE TABLE host_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    mac     TEXT NOT NULL,
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    kind    TEXT NOT NULL,              -- dhcp-offer, tftp, boot-script, bootenv, client-call, …
    job     INTEGER,                    -- the job it belongs to, when there is one
    detail  TEXT NOT NULL DEFAULT '',   -- one line a technician reads
    facts   TEXT NOT NULL DEFAULT '{}'  -- JSON: firmware, address, file, decision, phase, reason
);
CREATE INDEX host_events_by_mac ON host_events(mac, id);
-- The per-machine history (appliance/machines/history.py): when a job started to run, so
-- its duration is the run's, not the time it waited for the machine to boot.
ALTER TABLE jobs ADD COLUMN started_at TEXT;
