"""Several GPUs and no launcher: train on one, and say the command that trains on all.

Plain `train` on a machine with two visible GPUs (Kaggle's 2×T4) would make transformers' Trainer wrap the model in
`torch.nn.DataParallel`, which does not suit 4-bit models and splits `num_items_in_batch` across devices. Data
parallel training needs one process per GPU, started by a launcher. So a run started without one restarts itself
on the first visible GPU, after printing the `accelerate launch` command that uses all of them.

>>> plan = one_gpu_restart(2, ["--config", "run.yaml"], {"CUDA_VISIBLE_DEVICES": "0,1"}, "/usr/bin/python3")
>>> plan.argv, plan.env["CUDA_VISIBLE_DEVICES"]
(['/usr/bin/python3', '-m', 'train', '--config', 'run.yaml'], '0')
>>> print(plan.message)
train: 2 GPUs are visible but no launcher started one process per GPU: training on GPU 0 only. To train on all \
2: accelerate launch --multi_gpu --num_processes 2 -m train --config run.yaml
>>> one_gpu_restart(1, [], {}, "python") is None, one_gpu_restart(2, [], {"WORLD_SIZE": "2"}, "python") is None
(True, True)
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass

RESTARTED = "LENGTHSCAN_ONE_GPU"  # set in the restarted process, so it never restarts again


@dataclass
class Restart:
    argv: list[str]
    env: dict[str, str]
    message: str
    all_gpus: str  # the command that trains on every visible GPU


def one_gpu_restart(gpus: int, args: list[str], env: dict[str, str], python: str) -> Restart | None:
    """How to restart `train ARGS` on one GPU when `gpus` > 1 are visible and no launcher is in charge; else None."""
    if gpus < 2 or "WORLD_SIZE" in env or RESTARTED in env:
        return None
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    first = visible.split(",")[0].strip() if visible.strip() else "0"
    command = shlex.join(["accelerate", "launch", "--multi_gpu", "--num_processes", str(gpus), "-m", "train", *args])
    message = (
        f"train: {gpus} GPUs are visible but no launcher started one process per GPU: training on GPU {first} only. "
        f"To train on all {gpus}: {command}"
    )
    # PYTHONSAFEPATH: `-m train` must find this package, not a train.py in the working folder (Python 3.11+)
    child_env = {**env, "CUDA_VISIBLE_DEVICES": first, RESTARTED: "1", "PYTHONSAFEPATH": "1"}
    return Restart([python, "-m", "train", *args], child_env, message, command)


def restart_on_one_gpu_if_needed(args: list[str]) -> None:
    """Called once the run is known to use CUDA: restart `train ARGS` on one GPU when several are visible. Only a
    command-line run restarts itself; called from Python (a notebook) it stops with the fix instead."""
    import torch

    from analyze.errors import UserError

    plan = one_gpu_restart(torch.cuda.device_count(), args, dict(os.environ), sys.executable)
    if plan is None:
        return
    if args != sys.argv[1:]:
        raise UserError(
            f"several GPUs are visible but no launcher started one process per GPU; set CUDA_VISIBLE_DEVICES="
            f"{plan.env['CUDA_VISIBLE_DEVICES']} before anything imports torch, or run: {plan.all_gpus}"
        )
    print(plan.message, file=sys.stderr, flush=True)
    os.execve(plan.argv[0], plan.argv, plan.env)
