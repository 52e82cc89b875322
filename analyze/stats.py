"""Numbers of the analysis: the length distribution, and what a max_length does to the data and the batches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyze.lengths import LengthTable
from analyze.plan import Plan, make_plan

PERCENTILES = (50, 90, 95, 99)


@dataclass
class LengthStats:
    min: int
    mean: float
    p50: int
    p90: int
    p95: int
    p99: int
    max: int


def percentile(values: np.ndarray, q: float) -> int:
    """Nearest-rank percentile: the smallest value with at least q% of values at or below it.

    >>> percentile(np.array([5, 1, 3, 2, 4]), 50), percentile(np.array([5, 1, 3, 2, 4]), 90)
    (3, 5)
    """
    return int(np.percentile(values, q, method="inverted_cdf"))


def length_stats(tokens: np.ndarray) -> LengthStats:
    """Min, mean, nearest-rank percentiles and max of the record lengths.

    >>> length_stats(np.array([10, 20, 30, 40])).mean
    25.0
    """
    p = {f"p{q}": percentile(tokens, q) for q in PERCENTILES}
    return LengthStats(min=int(tokens.min()), mean=round(float(tokens.mean()), 1), max=int(tokens.max()), **p)


@dataclass
class PlanStats:
    """What training at `max_length` with the overlong `policy` does to all records (truncation), and the padding
    each batching wastes on the records of the plan (the train split) and the optimizer steps it takes."""

    max_length: int
    policy: str
    records_truncated: int  # records longer than max_length: the policy acted on them
    truncation_rate: float
    records_dropped: int  # of those, records that keep nothing
    tokens_lost: int
    tokens_lost_rate: float
    supervised_tokens_lost: int
    supervised_tokens_lost_rate: float
    records_without_supervised: int  # records that train on nothing (dropped, or no assistant token left)
    records_trained: int  # records of the plan (the train split) that train
    padding_waste_pad_to_max: float  # share of token slots that are padding
    padding_waste_dynamic: float
    padding_waste_packed: float
    packed_rows: int
    steps_per_epoch_unpacked: int  # optimizer steps per epoch with one record per row
    steps_per_epoch_packed: int


def plan_stats(table: LengthTable, plan: Plan, micro_batch: int, grad_accum: int, seed: int) -> PlanStats:
    n, L = table.tokens, plan.max_length
    kept = plan.kept
    total, sup_total = int(n.sum()), int(table.supervised.sum())
    truncated = int((n > L).sum())
    tokens_lost = total - int(kept.tokens.sum())
    sup_lost = sup_total - int(kept.supervised.sum())
    lengths = plan.lengths
    real = int(lengths.sum())
    trained = len(lengths)
    rows = len(plan.rows)
    return PlanStats(
        max_length=L,
        policy=plan.policy,
        records_truncated=truncated,
        truncation_rate=_rate(truncated, len(n)),
        records_dropped=int(((n > L) & (kept.tokens == 0)).sum()),
        tokens_lost=tokens_lost,
        tokens_lost_rate=_rate(tokens_lost, total),
        supervised_tokens_lost=sup_lost,
        supervised_tokens_lost_rate=_rate(sup_lost, sup_total),
        records_without_supervised=int((~kept.trained).sum()),
        records_trained=trained,
        padding_waste_pad_to_max=1 - _rate(real, trained * L) if trained else 0.0,
        padding_waste_dynamic=dynamic_padding_waste(lengths, micro_batch, seed),
        padding_waste_packed=1 - _rate(real, rows * L) if rows else 0.0,
        packed_rows=rows,
        steps_per_epoch_unpacked=optimizer_steps(trained, micro_batch, grad_accum),
        steps_per_epoch_packed=optimizer_steps(rows, micro_batch, grad_accum),
    )


def dynamic_padding_waste(lengths: np.ndarray, micro_batch: int, seed: int) -> float:
    """Padding share when each shuffled micro-batch is padded to its own longest record.

    >>> round(dynamic_padding_waste(np.array([4, 4, 2, 2]), 4, seed=0), 3)  # one batch padded to 4: 4 of 16 slots
    0.25
    """
    if not len(lengths):
        return 0.0
    shuffled = np.random.default_rng(seed).permutation(lengths)
    pad = (-len(shuffled)) % micro_batch
    batches = np.concatenate([shuffled, np.zeros(pad, shuffled.dtype)]).reshape(-1, micro_batch)
    width = batches.max(axis=1)
    slots = int((width * micro_batch).sum()) - int(width[-1]) * pad  # the last batch only has its own records
    return 1 - _rate(int(lengths.sum()), slots)


def optimizer_steps(rows: int, micro_batch: int, grad_accum: int) -> int:
    """Optimizer steps per epoch as transformers' Trainer counts them (partial batches round up).

    >>> optimizer_steps(100, 4, 4)
    7
    """
    return max(math.ceil(math.ceil(rows / micro_batch) / grad_accum), 1) if rows else 0


def candidates(
    table: LengthTable,
    lengths: list[int],
    policy: str,
    micro_batch: int,
    grad_accum: int,
    seed: int,
    include: np.ndarray | None = None,
) -> list[PlanStats]:
    """`plan_stats` at each of `lengths`, batching the records in `include` (the train split)."""
    return [plan_stats(table, make_plan(table, L, policy, include), micro_batch, grad_accum, seed) for L in lengths]


def candidate_lengths(tokens: np.ndarray, extra: list[int], limit: int | None) -> list[int]:
    """A ladder of round max_lengths around the data (from its median up to its longest record) plus `extra`.

    >>> candidate_lengths(np.array([100, 300, 900]), [512], None)
    [256, 384, 512, 768, 1024]
    """
    ladder = [128] + [x for k in range(8, 18) for x in (2**k, 3 * 2 ** (k - 1))]  # 128, 256, 384, 512, 768, …
    lo, hi = percentile(tokens, 50), int(tokens.max())
    below = [x for x in ladder if x <= lo][-1:]  # one step under the median shows the cost of going short
    picked = below + [x for x in ladder if lo < x < hi] + [x for x in ladder if x >= hi][:1]
    return sorted({x for x in picked + extra if limit is None or x <= limit})


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
