-- What a job token may do beyond "be this job" (appliance/jobscope.py, docs/security.md).
--
-- Bound at first use: the address of the first client call; calls from elsewhere are
-- refused, counted, and shown on the console.
ALTER TABLE jobs ADD COLUMN client_addr TEXT;
ALTER TABLE jobs ADD COLUMN refused_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN refused_from TEXT NOT NULL DEFAULT '';

-- A capture names only chunks it uploaded (content verified on arrival) ...
CREATE TABLE capture_uploads (
    job     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    digest  TEXT NOT NULL,
    PRIMARY KEY (job, digest)
) WITHOUT ROWID;

-- ... or chunks of versions of its image committed before the job was created: the
-- versions the index held at that moment, taken in the same statement as the job's row.
CREATE TABLE capture_bases (
    job      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    version  TEXT NOT NULL,
    PRIMARY KEY (job, version)
) WITHOUT ROWID;

CREATE TRIGGER capture_bases_at_creation AFTER INSERT ON jobs
WHEN NEW.action = 'capture' AND NEW.image IS NOT NULL
BEGIN
    INSERT INTO capture_bases(job, version)
        SELECT NEW.id, version FROM versions WHERE image = NEW.image;
END;

-- Capture jobs still open at upgrade: the versions whose id (their commit time) is
-- before the job's creation second.
INSERT INTO capture_bases(job, version)
    SELECT j.id, v.version FROM jobs j JOIN versions v ON v.image = j.image
    WHERE j.action = 'capture' AND j.finished_at IS NULL
      AND v.version < replace(replace(j.created_at, '-', ''), ':', '');

-- Machines seen network-booting that are not hosts: anyone can make up MACs, so the
-- table keeps the 5000 most recently seen (registered ones are never dropped).
CREATE TRIGGER seen_cap AFTER INSERT ON seen
WHEN (SELECT COUNT(*) FROM seen) > 5000
BEGIN
    DELETE FROM seen WHERE mac IN (
        SELECT mac FROM seen WHERE mac NOT IN (SELECT mac FROM hosts) AND mac <> NEW.mac
        ORDER BY last_seen, first_seen LIMIT (SELECT COUNT(*) - 5000 FROM seen)
    );
END;
