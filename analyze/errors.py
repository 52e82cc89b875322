"""Errors a user can fix. The command-line layer prints them as one line and exits 2, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with the user's input, files or settings; the message says what and how to fix it."""

    exit_code = 2


class RunStopped(UserError):
    """A stop every process of a run raises at the same step (non-finite loss, out of memory): one message, printed
    by the main process, and the same exit status everywhere."""


class SkipRecord(Exception):
    """One record cannot be used; it is counted under `reason` and the analysis goes on."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def raised_in(e: BaseException, where) -> bool:
    """Whether a frame of `e`'s traceback is in code whose file name `where` accepts (a predicate on the name)."""
    tb = e.__traceback__
    while tb is not None:
        if where(tb.tb_frame.f_code.co_filename):
            return True
        tb = tb.tb_next
    return False


def run_command(prog: str, body: Callable[[], int], on_interrupt: str) -> int:
    """Run a command's body: a `UserError` is one line on stderr and its exit code, Ctrl-C is 130, never a traceback."""
    try:
        return body()
    except UserError as e:
        if not isinstance(e, RunStopped) or int(os.environ.get("RANK", 0)) == 0:
            print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {on_interrupt}", file=sys.stderr)
        return 130
