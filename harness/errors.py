"""Errors that are the user's to fix. Entry points print them as one line and exit non-zero."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad option, missing or corrupt file, unreadable counter).

    The message is one line that names the thing and the fix; no traceback is shown."""

    exit_code = 2


class DataError(UserError):
    """A dataset is missing, corrupt, or of the wrong shape."""


class MeterError(UserError):
    """An energy meter was asked for but cannot be read."""


class StoreError(UserError):
    """Results cannot be read or written (corrupt record, full disk, unwritable folder)."""
