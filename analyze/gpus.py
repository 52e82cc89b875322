"""The GPUs a memory plan is made for: their names and the memory each gives PyTorch (GiB), and what a plan leaves
outside its tensors. Imports nothing of the project: the config checks `gpu` against it, the plan divides by it.
"""

from __future__ import annotations

import math

# Memory of each GPU as torch reports it (total_memory, GiB): what the CUDA context and PyTorch's allocator share.
GPUS = {
    "T4": 14.74,  # "16 GB"; ECC and the driver keep the rest
    "L4": 22.03,
    "A10G": 22.06,
    "A100-40GB": 39.39,
    "A100-80GB": 79.15,
    "H100": 79.10,
}
GPU_ALIASES = {"A100": "A100-40GB", "A100-40": "A100-40GB", "A100-80": "A100-80GB", "H100-80GB": "H100"}
CONTEXT_GIB = 0.6  # the CUDA context, cuBLAS workspaces and allocator slack: outside the tensors a plan counts
NO_BF16 = {"T4"}  # train computes architectures that overflow fp16 in fp32 there (`train.model.pick_precision`)


def gpu_budget(gpu: str | float | int) -> float:
    """GiB of a named GPU (`GPUS`, case-insensitive, 'A100' = the 40 GB one) or a number of GiB.

    >>> gpu_budget("t4"), gpu_budget("A100"), gpu_budget(12), gpu_budget("24")
    (14.74, 39.39, 12.0, 24.0)
    """
    name = str(gpu).strip()
    try:
        value = float(name)
    except ValueError:
        key = gpu_name(name)
        if key is None:
            raise ValueError(f"unknown GPU {gpu!r}") from None
        return GPUS[key]
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"GPU memory {gpu!r} must be a positive number of GiB")
    return value


def gpu_name(gpu: str | float | int) -> str | None:
    """The `GPUS` name a value stands for (case-insensitive, aliases resolved), or None (a number, or unknown).

    >>> gpu_name("a100"), gpu_name("T4"), gpu_name(12)
    ('A100-40GB', 'T4', None)
    """
    key = {k.lower(): k for k in [*GPUS, *GPU_ALIASES]}.get(str(gpu).strip().lower())
    return GPU_ALIASES.get(key, key)
