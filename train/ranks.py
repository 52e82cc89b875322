"""Several processes are one run: decisions and file writes are made once, by the main process, for all of them.

Under `accelerate launch` (or torchrun) every process runs `train` from the top. Checks that read the same files
give the same answer everywhere, but anything that writes (the smoke folder, the tiny model, the resolved config,
`--auto-maxlen`'s write-back) or decides (a plateau stop) must happen once: the main process does it and tells the
others the result — or its error, so that no process is left waiting in a collective that the others never reach.
With one process these are plain calls.
"""

from __future__ import annotations

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
    from accelerate import PartialState

    state = PartialState()  # joins the process group the launcher set up (Trainer would do the same later)
    box: list = [None]
    if state.is_main_process:
        try:
            box = [("ok", action())]
        except UserError as e:
            box = [("error", str(e))]
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise RunStopped(value)
    return value


def from_main(value: T) -> T:
    """`value` as the main process has it, on every process (itself when there is one process, or no process group
    yet)."""
    import torch.distributed as dist

    if world_size() == 1 or not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
