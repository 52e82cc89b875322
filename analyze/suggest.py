"""Suggest a max_length by a named policy, with the reason spelled out.

Policies:
  coverage    (default) the smallest multiple of `round_to` that holds at least `target` of the records whole:
              the nearest-rank percentile `target` of the lengths, rounded up. Few records are cut, and rows are
              not longer than the data needs (attention cost and activation memory grow with max_length).
  supervised  the smallest multiple of `round_to` at which the overlong policy keeps at least `target` of the
              supervised (assistant) tokens: for data where a few long records carry much of the signal.

Either is capped by the model's maximum positions when known.

>>> import numpy as np
>>> from analyze.lengths import LengthTable
>>> n = np.array([100] * 98 + [700, 3000])
>>> t = LengthTable(np.zeros(100, np.int32), np.arange(100), n, n // 2, np.arange(100), n // 2, n)
>>> suggest(t, "coverage", 0.98, 64, None, "cut_turns").max_length   # p98 = 100 → 128
128
>>> suggest(t, "coverage", 0.99, 64, None, "cut_turns").max_length   # p99 = 700 → 704
704
>>> suggest(t, "coverage", 1.0, 64, 2048, "cut_turns").max_length    # p100 = 3000, capped
2048
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analyze.lengths import LengthTable
from analyze.overlong import apply_overlong
from analyze.schema import SUGGEST_POLICIES
from analyze.stats import percentile


@dataclass
class Suggestion:
    max_length: int
    policy: str
    reason: str
    # set when the memory plan needs another batch split at this max_length (same effective batch)
    micro_batch_size: int | None = None
    grad_accum_steps: int | None = None


def suggest(
    table: LengthTable, policy: str, target: float, round_to: int, limit: int | None, overlong: str
) -> Suggestion:
    if not 0 < target <= 1:
        raise ValueError("target must be in (0, 1]")
    if policy == "coverage":
        q = percentile(table.tokens, target * 100)
        value = round_up(q, round_to)
        reason = (
            f"p{target * 100:g} of record lengths is {q} tokens ({target:.1%} of records fit whole); "
            f"rounded up to a multiple of {round_to}"
        )
    elif policy == "supervised":
        value = _smallest_keeping(table, target, round_to, overlong)
        reason = (
            f"the smallest multiple of {round_to} at which '{overlong}' keeps at least {target:.1%} of the "
            "supervised (assistant) tokens"
        )
    else:
        raise ValueError(f"unknown suggestion policy {policy!r}; choose one of {', '.join(SUGGEST_POLICIES)}")
    value, reason = within_limit(value, reason, limit, round_to)
    return Suggestion(value, policy, reason)


def round_up(x: int, step: int) -> int:
    """The smallest multiple of `step` (at least `step`) that holds `x`.

    >>> round_up(130, 64), round_up(0, 64)
    (192, 64)
    """
    return max(math.ceil(x / step) * step, step)


def within_limit(value: int, reason: str, limit: int | None, step: int) -> tuple[int, str]:
    """`value` capped at a model's `limit` of positions (the largest multiple of `step` within it, or the limit itself
    when under `step`), and the reason saying so.

    >>> within_limit(4096, "p99", 2050, 64)
    (2048, "p99; capped at the model's limit of 2050 positions")
    >>> within_limit(128, "p99", 40, 64)[0], within_limit(128, "p99", None, 64)
    (40, (128, 'p99'))
    """
    if limit is None or value <= limit:
        return value, reason
    value = max(limit // step * step, 1) if limit >= step else limit
    return value, f"{reason}; capped at the model's limit of {limit} positions"


def _smallest_keeping(table: LengthTable, target: float, step: int, overlong: str) -> int:
    """Binary search over multiples of `step`: kept supervised tokens only grow with max_length."""
    total = int(table.supervised.sum())
    lo, hi = 1, math.ceil(int(table.tokens.max()) / step)
    while lo < hi:
        mid = (lo + hi) // 2
        if apply_overlong(table, mid * step, overlong).supervised.sum() >= target * total:
            hi = mid
        else:
            lo = mid + 1
    return lo * step
