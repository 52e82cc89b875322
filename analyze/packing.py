"""Pack whole conversations into rows of max_length tokens: best-fit decreasing over the whole data set.

Each conversation goes, longest first, into the row whose free space is the smallest that still holds it,
so rows fill up nearly to the bound ceil(total tokens / max_length). Conversations are never split.

>>> pack([3, 4, 1], 4)          # lengths of [[1,2,3], [4,5,6,7], [8]]
[[1], [0, 2]]
>>> pack([2, 2, 2, 2, 1], 5)
[[0, 1], [2, 3, 4]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pack(lengths: Sequence[int] | np.ndarray, max_length: int) -> list[list[int]]:
    """Rows of indices into `lengths`, each row's lengths summing to at most `max_length`."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) and (lengths.max() > max_length or lengths.min() < 1):
        raise ValueError(f"every length must be in 1..{max_length} (apply the overlong policy first)")
    order = np.argsort(-lengths, kind="stable").tolist()
    sizes = lengths.tolist()
    rows: list[list[int]] = []
    by_space: list[list[int]] = [[] for _ in range(max_length + 1)]  # free space → rows with exactly that space
    has_space = 0  # bit s is set when some row has exactly s free slots: the best fit is one bit scan away
    for i in order:
        n = sizes[i]
        fit = has_space >> n
        if fit:
            space = n + (fit & -fit).bit_length() - 1
            bucket = by_space[space]
            row = bucket.pop()
            if not bucket:
                has_space &= ~(1 << space)
            rows[row].append(i)
        else:
            space, row = max_length, len(rows)
            rows.append([i])
        left = space - n
        if left:
            by_space[left].append(row)
            has_space |= 1 << left
    return rows
