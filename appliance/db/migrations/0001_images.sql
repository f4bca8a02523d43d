-- The image library index.  The store's files (manifests/, chunks/) are the truth;
-- these rows make listing and "which versions use chunk X" fast and are rebuilt by
-- `slate image verify --reindex` if lost.
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
    logical_size  INTEGER NOT NULL,
    stored_size   INTEGER NOT NULL,
    PRIMARY KEY (image, version)
);
