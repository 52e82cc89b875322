"""`PackedTrainer`: transformers' Trainer with the packed-row loss, token-exact eval loss and throughput numbers."""

from __future__ import annotations

import time

import torch
from transformers import Trainer

from analyze.errors import RunStopped
from analyze.memory import chunk_tokens
from train.loss import FULL, LossPath, check_window, fallback, loss_sum, unwrap
from train.rows import IGNORE

# relative difference allowed between the two losses of one row: (fp32, 16-bit compute) — the same 16-bit logits,
# rounded and summed in another order
LOSS_CHECK_TOLERANCE = (1e-5, 2e-3)
# why the check may not judge a path (it is then kept): neither is evidence against it
UNCHECKED = ("the check ran out of memory", "the model's own loss was not finite")


def is_out_of_memory(e: BaseException) -> bool:
    """A GPU (or CPU allocator) out-of-memory error, whatever type the kernel that ran out raised it as."""
    text = str(e)
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


class NonFiniteLoss(Exception):
    """The training or eval loss became nan or inf: stop before the step is applied or saved. `step` is the optimizer
    step being computed (training) or the last one applied (eval)."""

    def __init__(self, step: int, value: float, kind: str = "training"):
        super().__init__(f"{kind} loss {value} at step {step}")
        self.step, self.value, self.kind = step, value, kind


class PackedTrainer(Trainer):
    """Loss = sum of token losses / supervised tokens of the whole accumulated batch (all ranks).

    transformers counts the labelled tokens of all micro-batches of an optimizer step (gathered across ranks when
    `average_tokens_across_devices`) and passes the count as `num_items_in_batch`; each micro-batch's summed loss
    is divided by it, so the accumulated gradient is that of the step's token mean. The batch goes to the model
    as input_ids + position_ids only: no attention_mask and no cache, so packed conversations stay isolated.
    """

    loss_is_scaled_for_ga = True  # compute_loss already divides by the whole step's token count

    def __init__(
        self, *args, loss_path: LossPath | None = None, full_logits_refusal: str | None = None, say=print, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.loss_path = loss_path or LossPath(FULL, "no path chosen")
        self.full_logits_refusal = full_logits_refusal  # why the full logits will not fit, if the plan says so
        self._checked = False  # the loss path is checked against the model's own logits on the first batch
        self._say = say
        self.model_accepts_loss_kwargs = True  # makes Trainer count num_items_in_batch for every step
        self._tokens = torch.zeros(2, dtype=torch.float64)  # real tokens, token slots since the last log
        self._since = time.perf_counter()
        self._eval = torch.zeros(2, dtype=torch.float64)  # eval loss sum, eval supervised tokens

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        real = inputs.pop("real_tokens", None)
        labels = inputs["labels"]
        if not self._checked:
            self._check_loss_path(model, inputs)
        try:
            total, count, outputs = loss_sum(model, inputs["input_ids"], inputs["position_ids"], labels, self.loss_path)
        except torch.cuda.OutOfMemoryError:
            if not model.training or self.args.world_size == 1:
                raise
            outputs, total, count = None, None, None  # tell the other processes before anyone goes on
        if model.training:
            self._stop_together(total)  # before backward: the weights and the last checkpoint are still good
        if model.training:
            if real is not None:
                self._tokens += torch.tensor([float(real.sum()), float(labels.numel())], dtype=torch.float64)
            if num_items_in_batch is None:
                loss = total / count.clamp(min=1)
            else:
                loss = total / max(num_items_in_batch, 1)  # a step of empty rows only: loss 0, not nan
                if self.args.average_tokens_across_devices and self.args.world_size > 1:
                    loss = loss * self.args.world_size  # DDP averages gradients over ranks; undo it
        else:
            self._eval += torch.tensor([total.item(), count.item()], dtype=torch.float64)
            loss = total / count.clamp(min=1)
        return (loss, outputs) if return_outputs else loss

    def _check_loss_path(self, model, inputs) -> None:
        """Compare the chosen loss with the model's own logits on a window of the first row that has supervised
        tokens (no dropout, no gradient), deciding for every process at once.

        The reference costs no more than the step it checks: at most `chunk_tokens(vocabulary)` positions, the
        logits the chunked loss holds at a time. A numeric mismatch or a kernel error on any process moves every
        process one path down (Liger → chunked → full); running out of memory in the check says nothing against the
        path, so the path is kept, unchecked. The full logits are the largest path: where the memory plan says they
        will not fit (`full_logits_refusal`), the run stops with that message instead of running out of memory.
        """
        if self.loss_path.name == FULL:
            self._checked = True
            self._say(self.loss_path.describe())
            return
        rows = (inputs["labels"][:, 1:] != IGNORE).any(dim=1).nonzero()
        if self._reduce(torch.tensor([float(not len(rows))], dtype=torch.float64))[0] > 0:
            return  # a process has no supervised token in this batch: all check on the next one
        self._checked = True
        r = int(rows[0])
        window = check_window(inputs["labels"][r], chunk_tokens(unwrap(model).get_output_embeddings().weight.shape[0]))
        ids, pos, labels = (inputs[k][r : r + 1, window] for k in ("input_ids", "position_ids", "labels"))
        while True:
            error, failure, unchecked = self._loss_error(model, ids, pos, labels)
            tolerance = LOSS_CHECK_TOLERANCE[self.loss_path.dtype in (torch.float16, torch.bfloat16)]
            bad = unchecked is None and (failure is not None or not error <= tolerance)
            flags = [float(bad)] + [float(unchecked == reason) for reason in UNCHECKED]
            status = self._reduce(torch.tensor(flags, dtype=torch.float64))
            if status[0] == 0 and status[1:].any():
                reason = UNCHECKED[int(status[1:].argmax())]
                self._say(f"{self.loss_path.describe()}; unchecked: {reason} on a process, the path is kept")
                return
            if status[0] == 0:
                self._say(f"{self.loss_path.describe()}; equal to the full-logits loss within {error:.0e}")
                return
            why = failure or f"differed from the model's own logits by {error:.1e}"
            self.loss_path = fallback(self.loss_path, f"the {self.loss_path.name} loss {why} on a process")
            if self.loss_path.name == FULL:
                if self.full_logits_refusal:
                    raise RunStopped(f"{self.loss_path.why}; {self.full_logits_refusal}")
                self._say(f"{self.loss_path.describe()}; the memory plan assumed the chunked loss: this may not fit")
                return

    def _loss_error(self, model, ids, pos, labels) -> tuple[float, str | None, str | None]:
        """(relative difference of the current path's loss from the full logits' on one window, what failed, why
        the check could not judge: one of UNCHECKED)."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), self.accelerator.autocast():
                want, _, _ = loss_sum(model, ids, pos, labels, LossPath(FULL, "check"))
                if not torch.isfinite(want):  # the forward itself overflowed: the non-finite guard will say so
                    return float("nan"), None, UNCHECKED[1]
                got, _, _ = loss_sum(model, ids, pos, labels, self.loss_path)
            return abs(float(got) - float(want)) / max(abs(float(want)), 1e-6), None, None
        except Exception as e:  # a kernel that does not run on this GPU: fall back, do not stop the run
            if is_out_of_memory(e):
                return float("nan"), None, UNCHECKED[0]
            return float("inf"), f"failed ({type(e).__name__}: {str(e).strip()[:120]})", None
        finally:
            model.train(was_training)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # what the check held goes back before the first step

    def _stop_together(self, total: torch.Tensor | None) -> None:
        """Raise on every process when any of them ran out of memory (`total` None) or has a non-finite loss.

        All processes reach this point in the same micro-step, so one small all-reduce decides for all: a process
        that stopped alone would leave the others waiting in the gradient all-reduce until the timeout.
        """
        status = torch.tensor(
            [float(total is None), 0.0 if total is None else float(total.detach())], dtype=torch.float64
        )
        if self.args.world_size > 1:
            status = self.accelerator.reduce(status.to(self.args.device), reduction="sum").cpu()
        step = self.state.global_step + 1
        if status[0] > 0:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory in a process at step {step}")
        if not torch.isfinite(status[1]):
            raise NonFiniteLoss(step, float(status[1]))

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        """Replace the mean of per-batch losses by the exact token mean over the whole eval set (all ranks)."""
        self._eval.zero_()
        output = super().evaluation_loop(dataloader, description, True, ignore_keys, metric_key_prefix)
        prefix = metric_key_prefix
        sums = self._reduce(self._eval)
        if not torch.isfinite(sums[0]):  # the same sums on every process: all stop together
            raise NonFiniteLoss(self.state.global_step, float(sums[0]), "eval")
        if sums[1] > 0:
            output.metrics[f"{prefix}_loss"] = float(sums[0] / sums[1])
        self._since = time.perf_counter()  # tokens per second measure training, not evaluation
        return output

    def log(self, logs: dict, *args, **kwargs) -> None:
        """Add tokens per second and the share of real (non-padding) tokens to each training log."""
        if "loss" in logs:
            now = time.perf_counter()
            real, slots = self._reduce(self._tokens).tolist()
            elapsed = max(now - self._since, 1e-9)
            if slots:
                logs["tokens_per_second"] = round(real / elapsed, 1)
                logs["real_token_share"] = round(real / slots, 4)
            self._tokens.zero_()
            self._since = now
        super().log(logs, *args, **kwargs)

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        if self.args.world_size > 1:
            return self.accelerator.reduce(t.to(self.args.device), reduction="sum").cpu()
        return t.clone()
