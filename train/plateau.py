"""The tuning guide's signs of a real plateau and of overfitting, checked on a run's loss history.

The guide (../shared/seed/training-tuning-guide.md, "When to Worry"):
  - eval loss flat across 2+ eval checkpoints (1000+ steps);
  - train loss oscillating in a tight band with no downward drift;
  - train loss below eval loss with a widening gap is overfitting, not progress.
Thresholds are the config's `plateau` section; this module is pure: histories in, a verdict out.

>>> from analyze.config import PlateauConfig
>>> evals = [(500, 2.9), (1000, 2.55), (1500, 2.50), (2000, 2.497), (2500, 2.495)]
>>> train = [(s, 2.45 + 0.03 * (-1) ** (s // 50)) for s in range(1000, 2501, 50)]
>>> v = check(evals, train, PlateauConfig(), min_steps=1000)
>>> v.kind, v.window
('plateau', (1500, 2500))
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from analyze.config import PlateauConfig

LOSS_FLOOR = (
    "A loss floor around 2.3–2.5 may be natural for dialogue data — next tokens in conversation are inherently "
    "unpredictable. If eval reaches ~2.4 and flattens, that's probably close to the best this config can do."
)


@dataclass
class Verdict:
    """`kind`: plateau, overfitting, improving, or too_early (not enough evaluations or steps yet)."""

    kind: str
    step: int
    window: tuple[int, int] | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.kind in ("plateau", "overfitting")


def check(
    evals: list[tuple[int, float]], train: list[tuple[int, float]], cfg: PlateauConfig, min_steps: int
) -> Verdict:
    """Judge a history of (step, eval loss) and (step, train loss) points by the guide's signs; a plateau window
    spans at least `min_steps` optimizer steps (the schedule's conversion of the guide's 1000+)."""
    if not evals:
        return Verdict("too_early", 0, evidence=["no evaluation yet"])
    step = evals[-1][0]
    overfit = _overfitting(evals, train, cfg)
    if overfit is not None:
        return overfit
    start = _window_start(evals, cfg, min_steps)
    if start is None:
        return Verdict(
            "too_early",
            step,
            evidence=[f"need {cfg.min_evals}+ evaluations spanning {min_steps}+ steps; have {len(evals)} up to {step}"],
        )
    window = evals[start:]
    first, best = window[0][1], min(loss for _, loss in window[1:])
    gain = (first - best) / first
    span = (window[0][0], step)
    eval_line = (
        f"eval loss {first:.3f} → best {best:.3f} over {len(window)} evaluations, steps {span[0]}–{span[1]} "
        f"({gain:+.1%} gain; flat means under {cfg.eval_tolerance:.1%})"
    )
    if gain >= cfg.eval_tolerance:
        return Verdict("improving", step, span, [eval_line])
    band, drop = train_band_and_drop(
        [loss for s, loss in train if span[0] <= s <= span[1]], [s for s, _ in train if span[0] <= s <= span[1]]
    )
    if band is None:
        return Verdict("improving", step, span, [eval_line, "too few train-loss points in the window to judge"])
    train_line = (
        f"train loss band {band:.1%} of its mean (tight means under {cfg.train_band:.0%}), trend {-drop:+.1%} "
        f"over the window (no downward drift means a fall under {cfg.train_drift:.0%})"
    )
    if band < cfg.train_band and drop < cfg.train_drift:
        return Verdict("plateau", step, span, [eval_line, train_line])
    return Verdict("improving", step, span, [eval_line, train_line + ": train loss is still moving"])


def train_band_and_drop(losses: list[float], steps: list[int]) -> tuple[float | None, float]:
    """Spread (p90 − p10) and fitted fall of the train loss over the window, both as shares of its mean.

    >>> band, drop = train_band_and_drop([3.0, 2.8, 2.6, 2.4], [0, 100, 200, 300])
    >>> round(band, 3), round(drop, 3)
    (0.178, 0.222)
    """
    if len(losses) < 3:
        return None, 0.0
    y, x = np.asarray(losses, float), np.asarray(steps, float)
    mean = float(y.mean())
    band = float(np.percentile(y, 90) - np.percentile(y, 10)) / mean
    slope = float(np.polyfit(x, y, 1)[0]) if np.ptp(x) > 0 else 0.0
    return band, -slope * float(np.ptp(x)) / mean


def _window_start(evals: list[tuple[int, float]], cfg: PlateauConfig, min_steps: int) -> int | None:
    """Index of the latest evaluation that opens a window of min_evals+ evaluations over min_steps+ steps."""
    last = evals[-1][0]
    for i in range(len(evals) - cfg.min_evals, -1, -1):
        if last - evals[i][0] >= min_steps:
            return i
    return None


def _overfitting(evals, train, cfg: PlateauConfig) -> Verdict | None:
    """Train loss below eval loss, the gap widening at each of the last `overfit_evals` evaluations, eval not better."""
    if len(evals) < cfg.overfit_evals:
        return None
    recent = evals[-cfg.overfit_evals :]
    gaps = []
    prev = evals[-cfg.overfit_evals - 1][0] if len(evals) > cfg.overfit_evals else -1
    for step, eval_loss in recent:
        near = [loss for s, loss in train if prev < s <= step]
        if not near:
            return None
        gaps.append(eval_loss - float(np.mean(near)))
        prev = step
    widening = all(b > a for a, b in itertools.pairwise(gaps))
    eval_not_better = recent[-1][1] >= recent[0][1] * (1 - cfg.eval_tolerance)
    if gaps[0] > 0 and widening and eval_not_better:
        gap_text = " → ".join(f"{g:.3f}" for g in gaps)
        return Verdict(
            "overfitting",
            recent[-1][0],
            (recent[0][0], recent[-1][0]),
            [
                f"train loss below eval loss with the gap widening: {gap_text} "
                f"over steps {recent[0][0]}–{recent[-1][0]}",
                f"eval loss {recent[0][1]:.3f} → {recent[-1][1]:.3f}: no better",
            ],
        )
    return None
