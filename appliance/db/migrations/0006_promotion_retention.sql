-- Per image: promotion and retention.  Whether a version is a candidate or marked
-- "keep" is a file of the store beside its manifest (<version>.candidate, .keep), so a
-- copied store carries it; a version without a .candidate file is promoted, which is
-- what every version made before this migration, and every import, is.
CREATE TABLE image_policy (
    image         TEXT PRIMARY KEY,
    auto_promote  INTEGER NOT NULL DEFAULT 0,   -- 1: a capture is promoted at commit (FOG)
    keep_last     INTEGER,                      -- retention; NULL = no such rule
    keep_daily    INTEGER,
    keep_weekly   INTEGER,
    keep_monthly  INTEGER,
    pruned_at     TEXT                          -- last automatic prune (UTC)
);
