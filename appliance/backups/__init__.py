"""Backups: retention of an image's versions, recurring schedules of captures and
restores.  The decisions (``retention.plan``, ``recurrence.plan``) are pure functions;
``prune`` and ``schedules`` apply them to the store and the database."""
