"""The loss over packed rows: summed over supervised tokens, divided by the supervised tokens of the whole step.

Averaging per micro-batch would weight a token of a short micro-batch more than one of a long one; with packed
rows and gradient accumulation the honest number is sum(token losses) / (supervised tokens in the accumulated
batch), which is what `PackedTrainer.compute_loss` returns per micro-batch so the accumulated gradients add up to it.

>>> import torch
>>> logits = torch.zeros(1, 3, 4)                      # uniform over 4 tokens: each token costs ln 4
>>> labels = torch.tensor([[-100, 2, -100]])           # one supervised token (position 1, predicted at 0)
>>> total, count = token_loss_sum(logits, labels)
>>> round(total.item(), 4), count.item()
(1.3863, 1)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from train.rows import IGNORE


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of next-token cross-entropies over labelled positions, and their count.

    logits: (B, L, V); labels: (B, L), unshifted (position t predicts labels[t + 1]).
    """
    shift_logits = logits[:, :-1, :].float()  # (B, L-1, V), fp32 so fp16 logits do not overflow the softmax
    shift_labels = labels[:, 1:]  # (B, L-1)
    total = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return total, (shift_labels != IGNORE).sum()
