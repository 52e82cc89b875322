"""GPU memory of a run: the budget it plans for (a T4's when emulating one) and the peak it measures, for the
end-of-run line that sets the memory plan against what the step really took.

The peak is reset after the first optimizer step, so it measures training steps (and the evaluations between them),
not loading the model or the first-step loss check; both allocated memory (live tensors) and reserved memory (what
PyTorch's caching allocator holds, which is what runs out) are reported.
"""

from __future__ import annotations

import os

import torch
from transformers import TrainerCallback

from analyze.gpus import CONTEXT_GIB, GPUS
from analyze.memory import GIB

# Set to 1 to train on a larger GPU as on a T4: the fp16 path and memory capped at the T4's (`emulate_t4`). For
# checking a T4 config, and the memory plan, on an A100 or H100.
EMULATE_T4 = "LENGTHSCAN_EMULATE_T4"


def emulating_t4() -> bool:
    return os.environ.get(EMULATE_T4, "") not in ("", "0")


def emulate_t4(total_gib: float) -> float:
    """Cap this process's CUDA allocator as a T4 would be capped, on a GPU of `total_gib`; return the T4's GiB.

    A T4 reports 14.74 GiB, and its CUDA context comes out of those: the allocator is capped at 14.74 less the
    context the memory plan allows for (`CONTEXT_GIB`), since this larger GPU's context lies outside the cap.
    """
    torch.cuda.set_per_process_memory_fraction(min(1.0, (GPUS["T4"] - CONTEXT_GIB) / total_gib))
    return GPUS["T4"]


def gpu_memory_gib() -> float:
    """Memory of the GPU this process trains on, in GiB (as the memory plan's budgets count it); a T4's, capped,
    when emulating one (`EMULATE_T4`)."""
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / GIB
    return emulate_t4(total) if emulating_t4() else total


class PeakAfterFirstStep(TrainerCallback):
    """Resets CUDA's peak counters after this process's first optimizer step and reads them at the end."""

    def __init__(self):
        self.first_step: int | None = None
        self.allocated_gib = self.reserved_gib = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.first_step is None and torch.cuda.is_available():
            self.first_step = state.global_step
            torch.cuda.reset_peak_memory_stats()

    def on_train_end(self, args, state, control, **kwargs):
        if self.first_step is not None and state.global_step > self.first_step:
            self.allocated_gib = torch.cuda.max_memory_allocated() / GIB
            self.reserved_gib = torch.cuda.max_memory_reserved() / GIB

    def line(self, plan: dict | None) -> str:
        """The end-of-run line: measured peaks (+ the plan's context allowance) against the plan's peak."""
        if self.allocated_gib is None:
            return "GPU memory: not measured (the run took no step after its first)"
        allocated, reserved = self.allocated_gib + CONTEXT_GIB, self.reserved_gib + CONTEXT_GIB
        predicted = (plan or {}).get("peak_gib")
        vs = (
            f"; the memory plan predicted {predicted:.2f} ({predicted / reserved - 1:+.0%} of reserved, "
            f"{predicted / allocated - 1:+.0%} of allocated)"
            if predicted
            else ""
        )
        return (
            f"GPU memory after step {self.first_step}: peak {allocated:.2f} GiB allocated, {reserved:.2f} GiB "
            f"reserved (each + {CONTEXT_GIB} GiB context){vs}"
        )
