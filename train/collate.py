"""Stack packed rows into a batch: pad to a common width with a pad "conversation" of its own, no attention mask.

Padding tokens get position_ids 0, 1, 2, … so transformers treats them as one more packed sequence (nothing real
attends to them, and they attend only to each other) and labels -100 so the loss never sees them. There is
deliberately no `attention_mask`: any 2D mask, even all ones, turns off transformers' packed-sequence detection
and lets conversations in a row attend to each other.

>>> import torch
>>> c = PackedCollator(pad_id=0, max_length=8, multiple_of=4)
>>> b = c([{"input_ids": torch.tensor([5, 6, 7]), "position_ids": torch.tensor([0, 1, 2]),
...         "labels": torch.tensor([-100, 6, 7])},
...        {"input_ids": torch.tensor([8, 9]), "position_ids": torch.tensor([0, 1]),
...         "labels": torch.tensor([-100, 9])}])
>>> b["input_ids"].tolist(), b["position_ids"].tolist()
([[5, 6, 7, 0], [8, 9, 0, 0]], [[0, 1, 2, 0], [0, 1, 0, 1]])
>>> b["labels"].tolist(), b["real_tokens"].tolist(), sorted(b)
([[-100, 6, 7, -100], [-100, 9, -100, -100]], [3, 2], ['input_ids', 'labels', 'position_ids', 'real_tokens'])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from train.rows import IGNORE


@dataclass
class PackedCollator:
    """Pad to the longest row of the batch rounded up to `multiple_of` (tensor-core friendly), at most max_length."""

    pad_id: int
    max_length: int
    multiple_of: int = 8

    def __call__(self, rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        longest = max(max(len(r["input_ids"]) for r in rows), 1)  # an all-empty batch still has one column
        width = min(-(-longest // self.multiple_of) * self.multiple_of, self.max_length)
        if longest > self.max_length:
            raise ValueError(f"a packed row has {longest} tokens, more than max_length {self.max_length}")
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)  # (B, L)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = r["input_ids"]
            pos[i, :n] = r["position_ids"]
            labels[i, :n] = r["labels"]
            pos[i, n:] = torch.arange(width - n)  # the padding is a sequence of its own
        real = torch.tensor([len(r["input_ids"]) for r in rows], dtype=torch.long)
        return {"input_ids": ids, "position_ids": pos, "labels": labels, "real_tokens": real}
