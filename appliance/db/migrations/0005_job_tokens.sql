-- Per-job tokens: the token itself is never stored.  token = HMAC-SHA256(server secret,
-- "slate-job:<id>:<nonce>"), so the boot script can be rendered again at every boot of
-- that job while a copy of the database alone reveals no token (see appliance/jobs.py).
ALTER TABLE jobs ADD COLUMN token_nonce TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX jobs_by_token ON jobs(token_hash);
