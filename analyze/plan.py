"""The training plan at one max_length: the overlong policy, then packing — the same for both commands.

The train and eval conversations are packed apart (`include` selects one side), so a row never mixes the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analyze.lengths import LengthTable
from analyze.overlong import Kept, apply_overlong
from analyze.packing import pack


@dataclass
class Plan:
    """Which records are used (`records`, in table order), how long each is kept, and the packed rows.

    `rows[j]` lists positions in `records`; row j holds those records end to end, at most `max_length` tokens.
    """

    max_length: int
    policy: str
    kept: Kept
    records: np.ndarray
    rows: list[list[int]]

    @property
    def lengths(self) -> np.ndarray:
        """Kept length of each trained record, aligned with `records`."""
        return self.kept.tokens[self.records]


def make_plan(table: LengthTable, max_length: int, policy: str, include: np.ndarray | None = None) -> Plan:
    """The overlong policy on every record, then the records in `include` (a mask; default all) that keep a
    supervised token, packed."""
    kept = apply_overlong(table, max_length, policy)
    used = kept.trained if include is None else kept.trained & include
    records = np.flatnonzero(used)
    return Plan(max_length, policy, kept, records, pack(kept.tokens[records], max_length))
