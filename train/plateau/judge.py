"""The tuning guide's question — is this loss plateau real? — answered from a run's log: one verdict, with evidence.

The guide (../shared/seed/training-tuning-guide.md, "When to Worry"):
  - eval loss flat across 2+ eval checkpoints (1000+ steps);
  - train loss oscillating in a tight band with no downward drift;
  - train loss below eval loss with a widening gap is overfitting, not progress.

`judge` reads the history at one evaluation and gives one verdict, each with its evidence lines:

  sanity       the log cannot be read as it is: a non-finite eval loss, train and eval on different scales
               (a logging bug), an eval loss near zero (the eval split leaks training data)
  unstable     eval loss rising sharply from its best, and train loss with it: divergence
  overfitting  train below eval, eval no longer improving, and eval rising from its best or the gap widening
               by more than the noise: caught at its onset
  too_early    fewer than `plateau.min_evals` evaluations spanning the window
  improving    a significant new best in the window, and the latest eval no worse than the window's start
  converged    flat while the learning-rate schedule is ending (a finished run, not a capacity plateau)
  plateau      flat: no significant new best across the window

"Significant" is measured against the run's own eval noise: a robust estimate from the evaluations' second
differences (insensitive to a steady trend) once there are `NOISE_MIN_EVALS` of them, `plateau.eval_tolerance`
of the loss before that. The pure function is shared by the live watch and `train watch` (which replays a log).

>>> from analyze.schema import PlateauConfig
>>> evals = [(500, 2.9), (1000, 2.55), (1500, 2.50), (2000, 2.497), (2500, 2.495)]
>>> train = [(s, 2.45 + 0.03 * (-1) ** (s // 50)) for s in range(1000, 2501, 50)]
>>> v = judge(evals, train, PlateauConfig(), window_steps=1000)
>>> v.kind, v.window
('plateau', (1500, 2500))
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from analyze.schema import PlateauConfig

LOSS_FLOOR = (
    "A loss floor around 2.3–2.5 may be natural for dialogue data — next tokens in conversation are inherently "
    "unpredictable. If eval reaches ~2.4 and flattens, that's probably close to the best this config can do."
)
WARNINGS = ("plateau", "overfitting", "unstable", "sanity")  # verdicts that ask the user to act (or look)
NOISE_MIN_EVALS = 6  # evaluations before the run's own noise is trusted over the fixed tolerance
MIN_SIGNIFICANT = 0.002  # …but no change under 0.2% of the loss is significant (a noiseless log has zero noise)
Z = 2.0  # a change is significant when it is larger than Z noise standard deviations
Z_GAP = 3.0  # …and a widening gap than Z_GAP of the train loss's (a gap is checked at every evaluation)
TREND_EVALS = 4  # a run whose fitted eval trend over this many evaluations falls significantly is improving
SCALE_RATIO = 4.0  # train and eval losses further apart than this factor are not on one scale…
SCALE_EVALS = 2  # …a logging bug when so at the first evaluations too (a gap that grew is overfitting)
NEAR_ZERO = 0.01  # nats: an eval loss this low on dialogue data means the model has seen the eval set
SHARP_RISE = 0.25  # a rise of a quarter of the best eval loss (and Z noise) is a divergence, not overfitting
LR_ENDING = 0.2  # the schedule is ending when the learning rate is under this share of its peak


@dataclass
class Verdict:
    """`kind`: one of the verdicts above; `step`: the evaluation it was made at; `window`: the steps it looked at."""

    kind: str
    step: int
    window: tuple[int, int] | None = None
    evidence: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        """A verdict that asks the user to act: the watch writes advice for it."""
        return self.kind in WARNINGS


def judge(
    evals: list[tuple[int, float]],
    train: list[tuple[int, float]],
    cfg: PlateauConfig,
    window_steps: int,
    lrs: list[tuple[int, float]] | None = None,
) -> Verdict:
    """The verdict at the last of `evals` ((step, eval loss)), with `train` ((step, train loss)) and optionally the
    learning rate ((step, lr)); a plateau window spans at least `window_steps` optimizer steps."""
    if not evals:
        return Verdict("too_early", 0, evidence=["no evaluation yet"])
    step, latest = evals[-1]
    insane = _sanity(evals, train)
    if insane:
        return Verdict("sanity", step, evidence=insane)
    values = np.array([v for _, v in evals])
    noise = eval_noise(values)
    level = float(np.median(values[-3:]))
    sig = max(Z * noise, MIN_SIGNIFICANT * level) if noise is not None else cfg.eval_tolerance * level
    noise_text = f"noise ±{noise:.4f} (from {len(values)} evaluations)" if noise is not None else (
        f"tolerance {cfg.eval_tolerance:.1%} of the loss until {NOISE_MIN_EVALS} evaluations give the noise"
    )  # fmt: skip
    best_i = int(np.argmin(values))
    best_step, best = evals[best_i]

    rise = latest - best
    if best_i < len(evals) - 1 and rise > max(sig, SHARP_RISE * best) and _train_rising(train, best_step):
        return Verdict("unstable", step, (best_step, step), [
            f"eval loss rose sharply from its best {best:.3f} (step {best_step}) to {latest:.3f} ({rise / best:+.0%})",
            "train loss rose with it: the run is diverging",
        ])  # fmt: skip
    # the gap moves with the train loss's noise too: each gap takes up to 3 train points, two gaps are compared
    train_noise = eval_noise(np.array([v for s, v in train if s <= step][-60:])) or 0.0
    gap_sig = max(sig, cfg.eval_tolerance * level, Z_GAP * math.sqrt(2 / 3) * train_noise)
    overfit = _overfitting(evals, train, cfg, sig, gap_sig, noise_text)
    if overfit is not None:
        return overfit

    return _over_the_window(evals, train, cfg, window_steps, lrs, sig, noise_text)


def _over_the_window(evals, train, cfg: PlateauConfig, window_steps: int, lrs, sig: float, noise_text: str) -> Verdict:
    """improving, converged, plateau or too_early: eval over the plateau window, then the train loss's band."""
    step, latest = evals[-1]
    start = _window_start(evals, cfg.min_evals, window_steps)
    if start is None:
        return Verdict("too_early", step, evidence=[
            f"need {cfg.min_evals}+ evaluations spanning {window_steps}+ steps; have {len(evals)} up to step {step}"
        ])  # fmt: skip
    window = evals[start:]
    first = window[0][1]
    smoothed = _rolling_median([v for _, v in window], 3)
    new_best = min(smoothed[1:]) if len(smoothed) > 1 else first
    gain = first - new_best
    span = (window[0][0], step)
    eval_line = (
        f"eval loss {first:.3f} at step {span[0]} → best {new_best:.3f} (smoothed) → latest {latest:.3f} over "
        f"{len(window)} evaluations ({gain / first:+.1%}; significant means more than {sig:.4f}, {noise_text})"
    )
    ending = _schedule_ending(lrs, step)
    if gain > sig and latest <= first and not (ending and gain < cfg.eval_tolerance * first):
        return Verdict("improving", step, span, [eval_line])
    flat = "eval loss flat: no significant new best" if latest <= first else (
        "eval loss flat: the latest is worse than the window's start"
    )  # fmt: skip
    if gain > sig and latest <= first:
        flat = f"eval loss still improving, by less than {cfg.eval_tolerance:.0%} over the window"
    if ending:
        return Verdict("converged", step, span, [eval_line, flat, ending])
    band, drop = train_band_and_drop(
        [loss for s, loss in train if span[0] <= s <= span[1]], [s for s, _ in train if span[0] <= s <= span[1]]
    )
    train_line = "too few train-loss points in the window to judge the train loss" if band is None else (
        f"train loss band {band:.1%} of its mean (the guide's tight band: under {cfg.train_band:.0%}), trend "
        f"{-drop:+.1%} over the window (no downward drift: a fall under {cfg.train_drift:.0%})"
    )  # fmt: skip
    return Verdict("plateau", step, span, [eval_line, flat, train_line])


def eval_noise(values: np.ndarray) -> float | None:
    """Standard deviation of the eval loss around its trend, from the median absolute second difference (a steady
    trend has none; one outlier barely moves it); None with fewer than NOISE_MIN_EVALS values.

    >>> rng = np.random.default_rng(0)
    >>> round(eval_noise(np.linspace(2.0, 1.5, 500) + rng.normal(0, 0.01, 500)), 3)   # a falling run, noise 0.01
    0.01
    """
    if len(values) < NOISE_MIN_EVALS:
        return None
    d2 = values[2:] - 2 * values[1:-1] + values[:-2]  # white noise: variance 6σ²
    mad = float(np.median(np.abs(d2 - np.median(d2))))
    return max(1.4826 * mad / math.sqrt(6), 1e-6)


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


def _sanity(evals, train) -> list[str]:
    bad = [(s, v) for s, v in evals if not math.isfinite(v)]
    if bad:
        return [f"eval loss is {bad[0][1]} at step {bad[0][0]}: check the eval set (empty, or no assistant token) "
                "and the run (a diverged model gives nan)"]  # fmt: skip
    latest = evals[-1][1]
    if latest < NEAR_ZERO:
        return [f"eval loss {latest:.2g} nats at step {evals[-1][0]}: nearly perfect prediction of held-out dialogue "
                "means the eval set overlaps the training data (or is trivial); check the split"]  # fmt: skip
    first = _first_ratios(evals, train)
    now = _latest_ratio(evals, train)
    if len(first) == SCALE_EVALS and now is not None and all(_off_scale(r) for _, r in [*first, (0, now)]):
        at = ", ".join(f"{r:.3g}× at step {s}" for s, r in first)
        return [f"train loss is {now:.3g}× the eval loss at step {evals[-1][0]}, and was from the first evaluations "
                f"({at}): they are not on one scale (a logging bug, e.g. a loss summed over tokens or "
                "gradient-accumulation steps); fix the logging before judging"]  # fmt: skip
    return []


def _off_scale(ratio: float) -> bool:
    return not 1 / SCALE_RATIO <= ratio <= SCALE_RATIO


def _first_ratios(evals, train) -> list[tuple[int, float]]:
    """(step, train ÷ eval) at the first SCALE_EVALS evaluations with a train loss logged at or before them."""
    out = []
    for s, e in evals:
        near = [v for t, v in train if t <= s and math.isfinite(v)][-5:]
        if near and e > 0:
            out.append((s, float(np.median(near)) / e))
        if len(out) == SCALE_EVALS:
            break
    return out


def _latest_ratio(evals, train) -> float | None:
    recent = [v for s, v in train if math.isfinite(v) and s <= evals[-1][0]][-20:]
    if not recent or len(evals) < 2:
        return None
    return float(np.median(recent)) / float(np.median([v for _, v in evals[-5:]]))


def _train_rising(train, since: int) -> bool:
    """Train loss after `since` clearly above its level up to then."""
    before = [v for s, v in train if s <= since][-10:]
    after = [v for s, v in train if s > since]
    return bool(before and after) and float(np.median(after[-10:])) > 1.1 * float(np.median(before))


def _overfitting(evals, train, cfg: PlateauConfig, sig: float, gap_sig: float, noise_text: str) -> Verdict | None:
    """Train below eval at the latest evaluation, eval not improving over the last `overfit_evals` evaluations,
    and eval risen from its best by more than the noise (`sig`), or the gap (eval − train) widened by more than
    `gap_sig` (the train loss has its own noise: at least `plateau.eval_tolerance` of the loss)."""
    m = cfg.overfit_evals
    if len(evals) < m:
        return None
    recent = evals[-m:]
    gaps = []
    prev = evals[-m - 1][0] if len(evals) > m else -1
    for s, e in recent:
        near = [v for t, v in train if prev < t <= s][-3:]  # the train loss at the evaluation, not before it
        if not near:
            return None
        gaps.append(e - float(np.mean(near)))
        prev = s
    values = [v for _, v in evals]
    best_before = min(values[: len(values) - m + 1])  # the best up to the window's first evaluation
    trend = values[-TREND_EVALS:]
    falling = len(trend) >= 3 and -np.polyfit(np.arange(len(trend)), trend, 1)[0] * (len(trend) - 1) > sig
    improving = falling or min(v for _, v in recent[1:]) < recent[0][1] - sig
    # risen from the best: smoothed on both ends, since the minimum of noisy evaluations is always low
    smoothed = _rolling_median(values, 3)
    risen = smoothed[-1] - min(smoothed) > sig
    widened = all(b > a for a, b in itertools.pairwise(gaps)) and gaps[-1] - gaps[0] > gap_sig
    if gaps[-1] <= 0 or improving or not (risen or widened):
        return None
    gap_text = " → ".join(f"{g:+.3f}" for g in gaps)
    how = "with the gap widening" if widened else "and eval loss rising from its best"
    return Verdict("overfitting", recent[-1][0], (recent[0][0], recent[-1][0]), [
        f"train loss below eval loss {how}: {gap_text} over steps {recent[0][0]}–{recent[-1][0]}",
        f"eval loss {recent[0][1]:.3f} → {recent[-1][1]:.3f} (best so far {min(values):.3f}, before the window "
        f"{best_before:.3f}): not improving by more than {sig:.4f}, {noise_text}",
        "the guide: don't chase train loss below eval loss — that gap is overfitting, not progress",
    ])  # fmt: skip


def _window_start(evals: list[tuple[int, float]], min_evals: int, window_steps: int) -> int | None:
    """Index of the latest evaluation that opens a window of min_evals+ evaluations over window_steps+ steps."""
    last = evals[-1][0]
    for i in range(len(evals) - min_evals, -1, -1):
        if last - evals[i][0] >= window_steps:
            return i
    return None


def _schedule_ending(lrs, step: int) -> str | None:
    if not lrs:
        return None
    seen = [lr for s, lr in lrs if s <= step and math.isfinite(lr)]
    if len(seen) < 2:
        return None
    peak, now = max(seen), seen[-1]
    if peak > 0 and now < LR_ENDING * peak:
        return (
            f"the learning rate is {now:.3g}, {now / peak:.0%} of its peak {peak:.3g}: the schedule is ending and the "
            "run has converged (the guide worries about a plateau before the midpoint, not at the end)"
        )
    return None


def _rolling_median(values: list[float], width: int) -> list[float]:
    half = width // 2
    return [float(np.median(values[max(0, i - half) : i + half + 1])) for i in range(len(values))]
