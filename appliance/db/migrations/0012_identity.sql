-- Per-machine identity written into a restored system (issue 13): facts the appliance
-- makes once per machine and keeps, so a machine is the same machine after every
-- restore (a new machine-id at each boot churns DHCP leases and journal ids).
CREATE TABLE host_identity (
    mac         TEXT PRIMARY KEY REFERENCES hosts(mac) ON DELETE CASCADE,
    machine_id  TEXT NOT NULL,               -- 32 lower-case hex digits (systemd's form)
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
);

-- Per image: 0 = write no identity (sysprep or cloud-init handles it).  No row = on.
CREATE TABLE image_identity (
    image    TEXT PRIMARY KEY,
    enabled  INTEGER NOT NULL DEFAULT 1
);

-- SSH host keys kept per machine, handed to its restore client only over the pinned
-- TLS client channel (private keys are secrets; over clear HTTP the client makes fresh
-- ones).  One row per key type.
CREATE TABLE host_ssh_keys (
    mac         TEXT NOT NULL REFERENCES hosts(mac) ON DELETE CASCADE,
    kind        TEXT NOT NULL,               -- ed25519
    private     TEXT NOT NULL,               -- OpenSSH private key file
    public      TEXT NOT NULL,               -- its .pub line
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),
    PRIMARY KEY (mac, kind)
);
