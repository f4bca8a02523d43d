-- The image library index.  The store's files (manifests/, chunks/) are the truth;
-- these rows make listing fast and are brought back in line with the files by
-- appliance.store.index.sync (run by `slate image list`) whenever they drift.
CREATE TABLE images (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);

CREATE TABLE versions (
    image         TEXT NOT NULL REFERENCES images(name) ON DELETE CASCADE,
    version       TEXT NOT NULL,             -- UTC timestamp, e.g. 20261125T162431Z
    created_at    TEXT NOT NULL,
    note          TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL DEFAULT '',  -- source machine or file, informational
    disks         INTEGER NOT NULL DEFAULT 1,
    logical_size  INTEGER NOT NULL,          -- bytes of all disks
    data_size     INTEGER NOT NULL DEFAULT 0, -- bytes in data (hash) chunks
    stored_size   INTEGER NOT NULL,          -- compressed bytes of its distinct chunks
    PRIMARY KEY (image, version)
);
