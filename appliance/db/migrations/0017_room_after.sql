-- A room's standing "when done" for the restore jobs of its machines: 'reboot' or
-- 'poweroff'; NULL = no setting (a job reboots unless it says otherwise). A job's own
-- --after wins (docs/operations.md, Power).
ALTER TABLE rooms ADD COLUMN when_done TEXT;
