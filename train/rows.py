"""Packed rows as the model sees them: token ids, position ids that restart per conversation, and labels.

The plan (`analyze.plan.make_plan`) decides which records train, how many tokens of each are kept (the overlong
policy) and which records share a row (best-fit decreasing over the whole data set). This module only lays those
records end to end. Row `j` of a plan whose `rows[j]` holds conversations A (3 tokens) and B (4 tokens), with
assistant tokens marked `*`, at max_length 8:

    token        a0  a1  a2* b0  b1  b2* b3*  pad
    position_ids  0   1   2   0   1   2   3    0     restart at 0: transformers builds a block-diagonal mask
    labels       -100 -100 a2 -100 -100 b2 b3 -100   b0 is -100: never predicted from A's last token

    attention (1 = may attend), derived by transformers from position_ids when attention_mask is None:
          a0 a1 a2 b0 b1 b2 b3 pad
    a0     1
    a1     1  1
    a2     1  1  1
    b0              1
    b1              1  1
    b2              1  1  1
    b3              1  1  1  1
    pad                         1

Labels are not shifted here: the model predicts token t+1 from position t and compares with `labels[t + 1]`.
Padding (added by `train.collate`) continues as a sequence of its own with labels -100.

>>> import numpy as np
>>> from analyze.lengths import LengthTable
>>> from analyze.plan import make_plan
>>> table = LengthTable(file_index=np.zeros(2, np.int32), line=np.array([1, 2]), tokens=np.array([3, 4]),
...     supervised=np.array([1, 2]), span_record=np.array([0, 1]), span_start=np.array([2, 2]),
...     span_end=np.array([3, 4]), ids=np.array([10, 11, 12, 20, 21, 22, 23], np.int32))
>>> rows = PackedRows(table, make_plan(table, 8, "cut_turns"))
>>> len(rows), rows.real_tokens, rows.supervised_tokens
(1, 7, 3)
>>> row = rows[0]
>>> row["input_ids"].tolist()           # longest first: B then A
[20, 21, 22, 23, 10, 11, 12]
>>> row["position_ids"].tolist()
[0, 1, 2, 3, 0, 1, 2]
>>> row["labels"].tolist()
[-100, -100, 22, 23, -100, -100, 12]
"""

from __future__ import annotations

import numpy as np
import torch

from analyze.lengths import LengthTable
from analyze.plan import Plan

IGNORE = -100  # the label transformers' loss skips


class PackedRows(torch.utils.data.Dataset):
    """The rows of a plan as a map-style dataset; each item is built on demand (memory stays at the token table)."""

    def __init__(self, table: LengthTable, plan: Plan, rows: list[int] | None = None):
        if table.ids is None:
            raise ValueError("the table has no token ids; tokenize with keep_ids=True")
        self.table, self.plan = table, plan
        self.row_index = list(range(len(plan.rows))) if rows is None else list(rows)

    def __len__(self) -> int:
        return len(self.row_index)

    def records_of(self, i: int) -> list[int]:
        """Table rows (records) packed into item `i`, in row order."""
        return [int(self.plan.records[p]) for p in self.plan.rows[self.row_index[i]]]

    def conversation(self, record: int) -> tuple[np.ndarray, np.ndarray]:
        """A record's kept token ids and labels (non-supervised tokens and the first token are IGNORE)."""
        n = int(self.plan.kept.tokens[record])  # the overlong policy keeps a prefix
        ids = self.table.row_ids(record)[:n].astype(np.int64)
        labels = np.where(self.table.supervised_mask(record)[:n], ids, IGNORE)
        labels[0] = IGNORE  # in a packed row this token would be predicted from the previous conversation
        return ids, labels

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids, labels, pos = [], [], []
        for r in self.records_of(i):
            a, b = self.conversation(r)
            ids.append(a)
            labels.append(b)
            pos.append(np.arange(len(a), dtype=np.int64))
        return {
            "input_ids": torch.from_numpy(np.concatenate(ids)),
            "position_ids": torch.from_numpy(np.concatenate(pos)),
            "labels": torch.from_numpy(np.concatenate(labels)),
        }

    @property
    def _records(self) -> np.ndarray:
        pos = [p for j in self.row_index for p in self.plan.rows[j]]
        return self.plan.records[np.asarray(pos, dtype=np.int64)] if pos else np.zeros(0, np.int64)

    @property
    def conversations(self) -> int:
        return sum(len(self.plan.rows[j]) for j in self.row_index)

    @property
    def real_tokens(self) -> int:
        return int(self.plan.kept.tokens[self._records].sum())

    @property
    def supervised_tokens(self) -> int:
        """Tokens that carry a label: kept assistant tokens, less each conversation's first token if supervised."""
        recs = self._records
        first_sup = sum(1 for r in recs.tolist() if self._first_supervised(r))
        return int(self.plan.kept.supervised[recs].sum()) - first_sup

    def _first_supervised(self, r: int) -> bool:
        starts, _ = self.table.spans(r)
        return len(starts) > 0 and int(starts[0]) == 0


class EmptyPadded(torch.utils.data.Dataset):
    """`rows` followed by `extra` empty rows (one pad position, no label), so processes get equal batch counts."""

    def __init__(self, rows: PackedRows, extra: int):
        self.rows, self.extra = rows, extra

    def __len__(self) -> int:
        return len(self.rows) + self.extra

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i < len(self.rows):
            return self.rows[i]
        empty = torch.zeros(0, dtype=torch.long)
        return {"input_ids": empty, "position_ids": empty, "labels": empty}
