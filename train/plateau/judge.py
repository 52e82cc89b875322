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
SPIKE_TRAIN = 1.1  # a loss spike: eval jumps by twice the significant change, the train loss by this factor


@dataclass
class Verdict:
    """`kind`: one of the verdicts above; `step`: the evaluation it was made at; `window`: the steps it looked at."""

    kind: str
    step: int
    window: tuple[int, int] | None = None
    evidence: list[str] = field(default_factory=list)
    strong: bool = False  # evidence beyond twice its threshold: the steady verdict takes it without confirming

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
    learning rate ((step, lr)); a plateau window spans at least `window_steps` optimizer steps. This is the evidence
    at one evaluation; `judge_all` gives the steady verdict at every evaluation (what the watch reports)."""
    if not evals:
        return Verdict("too_early", 0, evidence=["no evaluation yet"])
    step, latest = evals[-1]
    insane = _sanity(evals, train)
    if insane:
        return Verdict("sanity", step, evidence=insane)
    sig, noise, noise_text = _significance(evals, cfg)
    values = np.array([v for _, v in evals])
    level = float(np.median(values[-3:]))
    best_i = int(np.argmin(values))
    best_step, best = evals[best_i]

    rise = latest - best
    if best_i < len(evals) - 1 and rise > max(sig, SHARP_RISE * best) and _train_rising(train, best_step):
        return Verdict("unstable", step, (best_step, step), [
            f"eval loss rose sharply from its best {best:.3f} (step {best_step}) to {latest:.3f} at step {step} "
            f"({rise / best:+.0%})",
            "train loss rose with it: the run is diverging",
        ])  # fmt: skip
    spike = _last_spike(evals, train, sig)
    if spike is not None:
        spiked = _after_spike(evals, spike, sig, cfg.min_evals, window_steps)
        if isinstance(spiked, Verdict):
            return spiked
        evals, train = evals[spiked:], [p for p in train if p[0] > evals[spiked - 1][0]]
    # the gap moves with the eval's and the train loss's noise: each gap takes up to 3 train points
    train_noise = eval_noise(np.array([v for s, v in train if s <= step][-60:])) or 0.0
    gap_noise = math.sqrt((noise or 0.0) ** 2 + train_noise**2 / 3)
    gap_sig = max(sig, cfg.eval_tolerance * level, Z_GAP * math.sqrt(2) * gap_noise)
    overfit = _overfitting(evals, train, cfg, sig, gap_sig, noise, noise_text)
    if overfit is not None:
        return overfit
    return _over_the_window(evals, train, cfg, window_steps, lrs, sig, noise, noise_text)


def judge_all(
    evals: list[tuple[int, float]],
    train: list[tuple[int, float]],
    cfg: PlateauConfig,
    window_steps: int,
    lrs: list[tuple[int, float]] | None = None,
) -> list[Verdict]:
    """The steady verdict at each of `evals`, in order, from the history up to it (the same arguments as `judge`;
    each verdict depends only on the evaluations up to its own, so the live watch and a replay agree).

    `judge` at each evaluation is the evidence; the steady verdict changes only on evidence stronger than the
    noise that made it:
      - sanity and unstable are taken at once (their thresholds are far beyond the noise);
      - any other change needs the new verdict at 2 evaluations in a row (improving and converged count as one),
        except the first verdict after too_early that is not a warning, and a first warning whose evidence is
        beyond twice its threshold (`Verdict.strong`: an overfitting onset); `too_early` never replaces a verdict;
      - a warning (plateau, overfitting, unstable) gives way to improving or converged only when the eval loss at
        the last 2 evaluations is below its level at the warning by more than the noise (plateau to converged:
        the schedule ending is the evidence); overfitting never turns into a plateau.
    A held verdict's evidence gains a line saying why it holds.

    >>> evals = [(s, 2.0 - 0.01 * s / 100) for s in range(100, 2100, 100)]
    >>> train = [(s, e - 0.05) for s, e in evals]
    >>> [v.kind for v in judge_all(evals, train, PlateauConfig(), 1000)][9:12]
    ['too_early', 'improving', 'improving']
    """
    steady: list[Verdict] = []
    raw: list[Verdict] = []
    since = 0  # the evaluation at which the steady verdict was first given
    for i, (step, _) in enumerate(evals):
        upto = evals[: i + 1]
        now = judge(upto, [p for p in train if p[0] <= step], cfg, window_steps, [p for p in lrs or [] if p[0] <= step])
        raw.append(now)
        held = steady[-1] if steady else None
        kind = _steady_kind(held, raw, upto, evals[since][1], _significance(upto, cfg)[0])
        if held is None or kind != held.kind:
            since = i
        if held is None or kind == now.kind:
            steady.append(now)
        else:
            why = _why_held(held.kind, evals[since][0], now)
            steady.append(Verdict(kind, step, held.window, [*held.evidence[:_HELD_LINES], why]))
    return steady


_HELD_LINES = 6  # a held verdict keeps its first evidence lines, then says why it holds
_BENIGN = ("improving", "converged")  # one kind for confirming a change


def _steady_kind(held: Verdict | None, raw: list[Verdict], evals, level: float, sig: float) -> str:
    """The steady kind after `held`, given the verdicts of `judge` so far (`raw`) and the eval loss at the evaluation
    where `held` was first given (`level`)."""
    now = raw[-1]
    if held is None or now.kind == held.kind or now.kind in ("sanity", "unstable"):
        return now.kind
    before = raw[-2].kind if len(raw) > 1 else "too_early"
    confirmed = before == now.kind or (before in _BENIGN and now.kind in _BENIGN)
    if now.kind == "too_early" or (held.kind == "overfitting" and now.kind == "plateau"):
        return held.kind
    if held.kind == "too_early" and not now.found:  # the first judgement that is not a warning
        return now.kind
    if not confirmed and not (now.strong and not held.found):
        return held.kind
    # a warning is cleared only by an eval loss below its level at the warning (a plateau also by the schedule ending)
    cleared = max(v for _, v in evals[-2:]) < level - sig or (held.kind, now.kind) == ("plateau", "converged")
    return held.kind if held.found and not now.found and not cleared else now.kind


def _why_held(kind: str, since: int, now: Verdict) -> str:
    return (
        f"{kind} since step {since}, held: at step {now.step} the evaluation alone reads {now.kind}, not confirmed "
        "beyond the noise (a change needs it at 2 evaluations in a row, and clearing a warning an eval loss "
        "significantly below its level at the warning)"
    )


def _significance(evals, cfg: PlateauConfig) -> tuple[float, float | None, str]:
    """(the smallest significant change of the eval loss, its noise or None, a line saying which)."""
    values = np.array([v for _, v in evals])
    noise = eval_noise(values)
    level = float(np.median(values[-3:]))
    sig = max(Z * noise, MIN_SIGNIFICANT * level) if noise is not None else cfg.eval_tolerance * level
    noise_text = f"noise ±{noise:.4f} (from {len(values)} evaluations)" if noise is not None else (
        f"tolerance {cfg.eval_tolerance:.1%} of the loss until {NOISE_MIN_EVALS} evaluations give the noise"
    )  # fmt: skip
    return sig, noise, noise_text


def _last_spike(evals, train, sig: float) -> int | None:
    """Index of the last evaluation where the eval loss jumped by more than twice the significant change and the
    train loss since the evaluation before jumped too (its median over SPIKE_TRAIN× that of the interval before)."""
    for i in range(len(evals) - 1, 1, -1):
        (s0, _), (s1, e1), (s2, e2) = evals[i - 2], evals[i - 1], evals[i]
        if e2 - e1 <= 2 * sig:
            continue
        before = [v for t, v in train if s0 < t <= s1] or [v for t, v in train if t <= s1][-1:]
        during = [v for t, v in train if s1 < t <= s2]
        if before and during and float(np.median(during)) > SPIKE_TRAIN * float(np.median(before)):
            return i
    return None


def _after_spike(evals, i: int, sig: float, min_evals: int, window_steps: int) -> Verdict | int:
    """While the eval loss is not back within the noise of its level before the spike at `i`: unstable. Back, the
    run is improving until the evaluations from the one that recovered span a window, then judged on them alone
    (the index returned)."""
    (s0, e0), (s1, e1) = evals[i - 1], evals[i]
    step, latest = evals[-1]
    spike = f"eval loss jumped from {e0:.3f} (step {s0}) to {e1:.3f} (step {s1}) with the train loss: a loss spike"
    back = next((j for j in range(i + 1, len(evals)) if evals[j][1] <= e0 + sig), None)
    if back is None:
        return Verdict("unstable", step, (s0, step), [
            spike, f"eval loss {latest:.3f} at step {step} not yet back within {sig:.4f} of {e0:.3f}: the run is "
            "recovering from it (or diverging); a plateau is judged only after it recovers",
        ])  # fmt: skip
    if _window_start(evals[back:], min_evals, window_steps) is None:
        return Verdict("improving", step, (s1, step), [
            spike, f"eval loss back to {evals[back][1]:.3f} at step {evals[back][0]}: recovered; the plateau window "
            "restarts there",
        ])  # fmt: skip
    return back


def _over_the_window(evals, train, cfg: PlateauConfig, window_steps: int, lrs, sig, noise, noise_text) -> Verdict:
    """improving, converged, plateau or too_early: eval over the plateau window, then the train loss's band."""
    step, latest = evals[-1]
    start = _window_start(evals, cfg.min_evals, window_steps)
    if start is None:
        return Verdict("too_early", step, evidence=[
            f"need {cfg.min_evals}+ evaluations spanning {window_steps}+ steps; have {len(evals)} from step "
            f"{evals[0][0]} to {step}"
        ])  # fmt: skip
    window = evals[start:]
    first = window[0][1]
    smoothed = _rolling_median([v for _, v in window], 3)
    new_best = min(smoothed[1:]) if len(smoothed) > 1 else first
    gain = first - new_best
    span = (window[0][0], step)
    eval_line = (
        f"eval loss {first:.3f} at step {span[0]} → best {new_best:.3f} (smoothed) → latest {latest:.3f} at step "
        f"{step}, {len(window)} evaluations ({gain / first:+.1%}; significant means more than {sig:.4f}, "
        f"{noise_text})"
    )
    creeping, creep_line, fall = _creeping(window, noise, first)
    lines = [eval_line, creep_line] if creeping else [eval_line]
    if creeping:  # a trend beyond the noise is a significant gain, of its fitted size
        gain = max(gain, fall) if gain > sig else max(fall, sig * (1 + 1e-9))
    ending = _schedule_ending(lrs, step)
    if gain > sig and latest <= first and not (ending and gain < cfg.eval_tolerance * first):
        return Verdict("improving", step, span, lines)
    flat = "eval loss flat: no significant new best" if latest <= first else (
        "eval loss flat: the latest is worse than the window's start"
    )  # fmt: skip
    if gain > sig and latest <= first:
        flat = f"eval loss still improving, by less than {cfg.eval_tolerance:.0%} over the window"
    if ending:
        return Verdict("converged", step, span, [*lines, flat, ending])
    band, drop = train_band_and_drop(
        [loss for s, loss in train if span[0] <= s <= span[1]], [s for s, _ in train if span[0] <= s <= span[1]]
    )
    train_line = "too few train-loss points in the window to judge the train loss" if band is None else (
        f"train loss band {band:.1%} of its mean (the guide's tight band: under {cfg.train_band:.0%}), trend "
        f"{-drop:+.1%} over the window (no downward drift: a fall under {cfg.train_drift:.0%})"
    )  # fmt: skip
    return Verdict("plateau", step, span, [eval_line, flat, train_line])


def _creeping(window, noise: float | None, level: float) -> tuple[bool, str, float]:
    """Eval still creeping down across the window: its fitted trend falls by more than MIN_SIGNIFICANT of the loss
    and by more than Z standard errors (with the noise unknown: it fell at each of 4+ evaluations)."""
    fall = -_fitted_change(window, 0.0)[0]
    if fall <= MIN_SIGNIFICANT * level or len(window) < 3:
        return False, "", 0.0
    if noise is not None:
        se = _fitted_change(window, noise)[1]
        ok, why = fall > Z * se, f"more than {Z:g} standard errors ({se:.4f})"
    else:
        ok = len(window) >= 4 and all(b < a for (_, a), (_, b) in itertools.pairwise(window))
        why = "falling at every evaluation"
    line = (f"eval loss still creeping down: the fitted trend over steps {window[0][0]}–{window[-1][0]} falls "
            f"{fall:.4f} ({fall / level:.1%}), {why}")  # fmt: skip
    return ok, line, fall


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


def _overfitting(evals, train, cfg: PlateauConfig, sig, gap_sig, noise, noise_text: str) -> Verdict | None:
    """Train below eval at the latest evaluation, eval not improving over the last `overfit_evals` evaluations,
    and eval risen from its (smoothed) best by more than the noise (`sig`) with its trend after the best rising by
    more than Z_GAP standard errors, or the gap (eval − train) widened at each evaluation by more than `gap_sig`,
    or train and eval now more than SCALE_RATIO apart after starting on one scale."""
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
    # risen from the best: smoothed on both ends (the minimum of noisy evaluations is always low), and a rising
    # trend after the best beyond the noise (the best itself, picked as the lowest, would tilt the fit upward)
    smoothed = _rolling_median(values, 3)
    best_i = int(np.argmin(smoothed))
    risen = smoothed[-1] - smoothed[best_i] > sig and _rise_beyond_noise(evals[best_i + 1 :], noise)
    widened = all(b > a for a, b in itertools.pairwise(gaps)) and gaps[-1] - gaps[0] > gap_sig
    first, now = _first_ratios(evals, train), _latest_ratio(evals, train)
    grew = bool(first) and now is not None and now < 1 / SCALE_RATIO and not any(_off_scale(r) for _, r in first)
    if gaps[-1] <= 0 or improving or not (risen or widened or grew):
        return None
    gap_text = " → ".join(f"{g:+.3f}" for g in gaps)
    how = "with the gap widening" if widened else "and eval loss rising from its best" if risen else (
        "far apart: the gap grew"
    )  # fmt: skip
    lines = [
        f"train loss below eval loss {how}: {gap_text} over steps {recent[0][0]}–{recent[-1][0]}",
        f"eval loss {recent[0][1]:.3f} → {recent[-1][1]:.3f} (best so far {min(values):.3f} at step "
        f"{evals[int(np.argmin(values))][0]}, before the window {best_before:.3f}): not improving by more than "
        f"{sig:.4f}, {noise_text}",
    ]
    if grew:
        at = ", ".join(f"{r:.2f}× at step {s}" for s, r in first)
        lines.append(f"train loss {now:.3g}× the eval loss at step {recent[-1][0]}, on one scale at the first "
                     f"evaluations ({at}): a gap that grew is overfitting, not a logging bug")  # fmt: skip
    lines.append("the guide: don't chase train loss below eval loss — that gap is overfitting, not progress")
    strong = (widened and gaps[-1] - gaps[0] > 2 * gap_sig) or (risen and smoothed[-1] - smoothed[best_i] > 2 * sig)
    return Verdict("overfitting", recent[-1][0], (recent[0][0], recent[-1][0]), lines, strong)


def _rise_beyond_noise(points, noise: float | None) -> bool:
    """The fitted trend over `points` rises by more than Z_GAP standard errors (with the noise unknown: it rises)."""
    if len(points) < 3:
        return noise is None
    change, se = _fitted_change(points, noise or 0.0)
    return change > (Z_GAP * se if noise is not None else 0.0)


def _fitted_change(points, noise: float) -> tuple[float, float]:
    """Change of the least-squares line over `points` from the first step to the last, and its standard error for
    evaluations with independent noise of standard deviation `noise`."""
    x = np.array([s for s, _ in points], float)
    y = np.array([v for _, v in points], float)
    sxx = float(((x - x.mean()) ** 2).sum())
    if sxx <= 0:
        return 0.0, 0.0
    slope = float(((x - x.mean()) * (y - y.mean())).sum()) / sxx
    span = float(x[-1] - x[0])
    return slope * span, noise / math.sqrt(sxx) * span


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
