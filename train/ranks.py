"""Several processes are one run: decisions and file writes are made once, by the main process, for all of them.

Under `accelerate launch` (or torchrun) every process runs `train` from the top. Checks that read the same files
give the same answer everywhere, but anything that writes (the smoke folder, the tiny model, the resolved config,
`--auto-maxlen`'s write-back) or decides (a plateau stop) must happen once: the main process does it and tells the
others the result — or its error, so that no process is left waiting in a collective that the others never reach.
With one process these are plain calls.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TypeVar

from analyze.errors import RunStopped, UserError

T = TypeVar("T")


def world_size() -> int:
    return max(int(os.environ.get("WORLD_SIZE", 1)), 1)


def decided_by_main(action: Callable[[], T]) -> T:
    """`action()` run by the main process only; its result, or its error, on every process."""
    if world_size() == 1:
        return action()
    import torch.distributed as dist

    _join_process_group()
    box: list = [None]
    failure: BaseException | None = None
    if dist.get_rank() == 0:
        try:
            box = [("ok", action())]
        except Exception as e:  # any error: the others must not wait for a result that never comes
            failure = e
            box = [("error", str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}")]
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if failure is not None and not isinstance(failure, UserError):
        raise failure  # the main process shows the real error, with its traceback
    if kind == "error":
        raise RunStopped(value)
    return value


def main_first(action: Callable[[], T]) -> T:
    """`action()` on the main process first, then on the others (e.g. tokenizing: the main process fills the cache
    the others then read, instead of every process writing the same entry at once)."""
    if world_size() == 1:
        return action()
    import torch.distributed as dist

    _join_process_group()
    mine: list = []
    decided_by_main(lambda: mine.append(action()))
    return mine[0] if dist.get_rank() == 0 else action()


def _join_process_group() -> None:
    """Join the process group the launcher set up, as Trainer would later (accelerate picks gloo on a CPU).

    accelerate's `PartialState` calls every CPU process "main" (DistributedType.NO), so ranks are read from the
    process group itself.
    """
    import atexit

    import torch.distributed as dist
    from accelerate import PartialState

    if not dist.is_initialized():
        PartialState()
        # leave the group cleanly at exit, also after an error before Trainer takes over: a process that exits
        # with gloo's threads still running can abort (SIGABRT) instead of returning its own exit status
        atexit.register(_leave_process_group)


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):  # already torn down by accelerate: nothing left to leave
            dist.destroy_process_group()


def from_main(value: T) -> T:
    """`value` as the main process has it, on every process (itself when there is one process, or no process group
    yet)."""
    import torch.distributed as dist

    if world_size() == 1 or not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
