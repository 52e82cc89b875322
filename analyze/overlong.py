"""What happens to a record longer than max_length, by a named policy, for every record at once.

Policies (the config's `overlong`):
  cut_turns  keep the record up to the end of its last assistant turn that fits; drop it if none fits
  truncate   keep the first max_length tokens (a reply may be cut in the middle)
  drop       drop the record

Records that fit are kept whole by every policy. A kept record with no supervised token is left out of
training (it would cost compute and teach nothing) and counted.

>>> import numpy as np
>>> from analyze.lengths import LengthTable
>>> t = LengthTable(file_index=np.zeros(2, np.int32), line=np.array([1, 2]), tokens=np.array([6, 12]),
...     supervised=np.array([3, 7]), span_record=np.array([0, 1, 1]), span_start=np.array([3, 3, 8]),
...     span_end=np.array([6, 6, 12]))
>>> k = apply_overlong(t, 8, "cut_turns")     # record 1: turn [3, 6) fits, turn [8, 12) does not
>>> k.tokens.tolist(), k.supervised.tolist()
([6, 6], [3, 3])
>>> k = apply_overlong(t, 8, "truncate")
>>> k.tokens.tolist(), k.supervised.tolist()
([6, 8], [3, 3])
>>> apply_overlong(t, 8, "drop").tokens.tolist()
[6, 0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyze.lengths import LengthTable
from analyze.schema import OVERLONG_POLICIES


@dataclass
class Kept:
    """Per record: tokens and supervised tokens that go into training (0 tokens = dropped)."""

    tokens: np.ndarray
    supervised: np.ndarray

    @property
    def trained(self) -> np.ndarray:
        """Mask of records that take part in training."""
        return (self.tokens > 0) & (self.supervised > 0)


def apply_overlong(table: LengthTable, max_length: int, policy: str) -> Kept:
    n = table.tokens
    fits = n <= max_length
    span_len = table.span_end - table.span_start
    rows = len(n)
    if policy == "truncate":
        kept = np.minimum(n, max_length)
        part = np.clip(np.minimum(table.span_end, max_length) - table.span_start, 0, None)
        sup = np.bincount(table.span_record, weights=part, minlength=rows).astype(np.int64)
    elif policy == "drop":
        kept = np.where(fits, n, 0)
        sup = np.where(fits, table.supervised, 0)
    elif policy == "cut_turns":
        inside = table.span_end <= max_length
        last_end = np.zeros(rows, dtype=np.int64)
        np.maximum.at(last_end, table.span_record[inside], table.span_end[inside])
        kept = np.where(fits, n, last_end)
        sup_inside = np.bincount(table.span_record[inside], weights=span_len[inside], minlength=rows)
        sup = np.where(fits, table.supervised, sup_inside.astype(np.int64))
    else:
        raise ValueError(f"unknown overlong policy {policy!r}; choose one of {', '.join(OVERLONG_POLICIES)}")
    return Kept(kept.astype(np.int64), sup.astype(np.int64))
