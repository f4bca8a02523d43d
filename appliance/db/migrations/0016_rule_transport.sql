-- How a restore-every-boot rule's jobs get their chunks (auto | multicast | unicast), as
-- `slate job restore --transport` (docs/roomcast.md).
ALTER TABLE hosts ADD COLUMN auto_transport TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE rooms ADD COLUMN auto_transport TEXT NOT NULL DEFAULT 'auto';
