-- A school's own area of a library (issue 30): 's3://BUCKET[/PREFIX]' where this
-- appliance writes its status and its state backups ('' = none).  The library itself
-- is read-only to a school; its area is the one place its credentials may write
-- (SeaweedFS grants per bucket, hence a bucket per school there).
ALTER TABLE libraries ADD COLUMN area TEXT NOT NULL DEFAULT '';
