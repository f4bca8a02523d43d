-- Address leases of the DHCP server in full mode (isolated imaging network).
-- Offers live only in memory; bound, released and declined addresses are kept here so
-- that leases survive a restart.  Static reservations are hosts.ip (0002_inventory).
CREATE TABLE leases (
    ip          TEXT PRIMARY KEY,            -- dotted quad
    mac         TEXT NOT NULL,               -- lower-case aa:bb:cc:dd:ee:ff
    state       TEXT NOT NULL CHECK (state IN ('bound','released','declined')),
    expires     REAL NOT NULL,               -- unix time; declined = end of quarantine
    hostname    TEXT NOT NULL DEFAULT '',
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);
CREATE INDEX leases_by_mac ON leases(mac);
