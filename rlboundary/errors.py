"""User mistakes as one exception family: the CLI prints their message on one line and exits 2.

Raise a :class:`UserError` (or a subclass) for anything the user can fix by changing a setting,
a path or an input file; let real bugs raise anything else, so they keep their traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in settings, paths or inputs; the message says what and how to fix it."""


class MissingPath(UserError, FileNotFoundError):
    """A path the user named does not exist."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM (what SLURM sends before the kill) ended a command; the
    message says where it stopped and how to go on. The CLI prints it on one line and exits
    128 + the signal's number (130, 143)."""

    def __init__(self, message: str = "", signum: int = 2):
        super().__init__(message)
        self.signum = signum
