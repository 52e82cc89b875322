"""`--sample N`: analyse a seeded random sample of a large data set exactly, with a confidence interval for each
reported share and percentile and for the suggested max_length.

A count keeps N records by reservoir sampling over the stream (one pass, N records in memory); a fraction keeps
each record with that probability. Either is seeded and kept in input order, so places (`file:line`) stay right.
The intervals are percentile-bootstrap intervals: the analysis itself (`analyze.analysis.analyze`) rerun on
`BOOTSTRAP` resamples of the sample's records, so every number has an interval from the same code that computes it.

>>> spec = SampleSpec.parse("3")
>>> picked, seen = sample_records(iter(range(10)), spec, seed=0)
>>> len(picked), seen, picked == sorted(picked)
(3, 10, True)
>>> SampleSpec.parse("0.25").fraction, SampleSpec.parse("1000").count
(0.25, 1000)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from analyze.errors import UserError

BOOTSTRAP = 100  # resamples: enough for 95% percentile intervals at a few seconds on 10k records
LEVEL = 0.95


@dataclass(frozen=True)
class SampleSpec:
    count: int | None = None
    fraction: float | None = None

    @classmethod
    def parse(cls, text: str) -> SampleSpec:
        """A whole number of records, or a fraction in (0, 1)."""
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 1 and value == int(value):
            return cls(count=int(value))
        if 0 < value < 1:
            return cls(fraction=value)
        raise UserError(f"--sample {text}: give a number of records (e.g. 10000) or a fraction in (0, 1) (e.g. 0.05)")


@dataclass(frozen=True)
class SampleInfo:
    """What was analysed: `size` records drawn from `population` (every record read, skipped ones too)."""

    size: int
    population: int
    seed: int
    method: str  # "reservoir" or "bernoulli"


def sample_records(records: Iterable, spec: SampleSpec, seed: int) -> tuple[list, int]:
    """The sampled records in input order, and how many records were read."""
    rng = np.random.default_rng(seed)
    if spec.fraction is not None:
        picked, seen = [], 0
        for seen, record in enumerate(records, 1):
            if rng.random() < spec.fraction:
                picked.append((seen, record))
        return [r for _, r in picked], seen
    k, reservoir, seen = spec.count, [], 0
    for seen, record in enumerate(records, 1):
        if len(reservoir) < k:
            reservoir.append((seen, record))
        else:
            j = int(rng.integers(seen))  # Algorithm R: keep the new record with probability k / seen
            if j < k:
                reservoir[j] = (seen, record)
    reservoir.sort(key=lambda p: p[0])
    return [r for _, r in reservoir], seen


def intervals(analyse, table, seed: int, resamples: int = BOOTSTRAP) -> dict[str, tuple[float, float]]:
    """`name → (low, high)` for every number `analyse(table)` reports (a flat dict), from `resamples` bootstrap
    resamples of the table's rows."""
    rng = np.random.default_rng(seed)
    runs: dict[str, list[float]] = {}
    n = len(table)
    for _ in range(resamples):
        for name, value in analyse(table.take(rng.integers(0, n, n))).items():
            runs.setdefault(name, []).append(value)
    tail = (1 - LEVEL) / 2 * 100
    return {k: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for k, v in runs.items()}
