"""Errors a user can fix. The command-line layer prints them as one line and exits 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, files or settings; the message says what and how to fix it."""

    exit_code = 2


class SkipRecord(Exception):
    """One record cannot be used; it is counted under `reason` and the analysis goes on."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
