"""The one error hierarchy of Slate.

Every error a user can see is a :class:`SlateError` worded as a sentence a person can
act on, optionally with a ``hint`` saying what to do.  Errors raised by libraries at
our boundaries (tftpy, dnslib, zstandard, sqlite3, HTTP) are translated into these.
Only the CLI turns them into exit codes; tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations


class SlateError(Exception):
    """Base of every error Slate reports to a user."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(SlateError):
    """The user asked for something malformed (bad name, bad flag value)."""


class NotFound(SlateError):
    """A named thing (image, version, host, job, file) does not exist."""


class Conflict(SlateError):
    """The request clashes with the current state (name taken, job running...)."""


class IntegrityError(SlateError):
    """Stored or transferred data failed verification (hash mismatch, missing chunk)."""


class IllegalTransition(SlateError):
    """A job was asked to move between states the state table does not allow."""


class DiskRefused(SlateError):
    """A target disk failed a safety check; nothing was written to it."""


class PeerError(SlateError):
    """The other side (a client, a server, a packet) did something wrong."""
