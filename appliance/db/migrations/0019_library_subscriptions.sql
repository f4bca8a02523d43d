-- A school's standing order (issue 30): fetch new versions of IMAGE from LIBRARY ahead
-- of time, only inside window ('' = any time; 'HH:MM-HH:MM', may wrap midnight, the
-- appliance's local time) and at most cap bit/s (0 = no cap).
CREATE TABLE library_subscriptions (
    library TEXT NOT NULL REFERENCES libraries(name) ON DELETE CASCADE,
    image TEXT NOT NULL,
    window TEXT NOT NULL DEFAULT '',
    cap INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (library, image)
);
