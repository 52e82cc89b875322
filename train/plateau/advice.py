"""The guide's levers as concrete changes to this run's config, and its "what NOT to do" as start-up checks.

Levers, in the guide's order (impact/ease); the first is the guide's decision: "The first thing to try would be
r=32 with alpha=32" (rank doubled, alpha/r kept).

>>> from analyze.schema import Config
>>> for lever in levers(Config(), None)[:4]:
...     print(lever.number, lever.change)
1 {'lora.r': 32, 'lora.alpha': 32}
2 {'lora.alpha': 32}
3 {'optim.learning_rate': 0.0003, 'optim.epochs': 2.0}
4 {'optim.lr_scheduler': 'cosine_with_restarts'}
>>> start_warnings(Config())
[]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from analyze.schema import Config


@dataclass
class Lever:
    number: int
    title: str
    impact: str
    change: dict[str, Any]
    why: str


def levers(cfg: Config, analysis=None) -> list[Lever]:
    """The six levers for this config; lever 5 carries this run's own length numbers when `analysis` is given."""
    r, alpha, lr, epochs = cfg.lora.r, cfg.lora.alpha, cfg.optim.learning_rate, cfg.optim.epochs
    out = [
        Lever(
            1,
            "Increase LoRA rank",
            "High",
            {"lora.r": 2 * r, "lora.alpha": 2 * alpha},
            f"more adapter capacity: r {r} → {2 * r}, alpha {alpha} → {2 * alpha} (alpha/r kept at {alpha / r:g}); "
            "about 2× adapter memory, slightly slower, still fits a T4 at r=32",
        ),
        Lever(
            2,
            "Increase alpha/rank ratio",
            "Medium",
            {"lora.alpha": 2 * alpha},
            f"alpha/r {alpha / r:g} → {2 * alpha / r:g}: a stronger adapter signal with no more parameters",
        ),
        Lever(
            3,
            "Fewer epochs, higher learning rate",
            "Medium",
            {"optim.learning_rate": round(lr * 1.5, 10), "optim.epochs": float(min(epochs, 2))},
            "if the plateau comes early in epoch 1: learn faster, stop before overfitting; watch eval loss",
        ),
        Lever(
            4,
            "Cosine with warm restarts",
            "Medium",
            {"optim.lr_scheduler": "cosine_with_restarts"},
            "learning-rate restarts can escape a minimum a monotonically decaying schedule is stuck in",
        ),
        _length_lever(cfg, analysis),
        Lever(
            6,
            "Weight decay",
            "Low",
            {"optim.weight_decay": 0.01},
            f"weight decay {cfg.optim.weight_decay:g} → 0.01: may generalise slightly better; unlikely to break a "
            "plateau",
        ),
    ]
    return out


def _length_lever(cfg: Config, analysis) -> Lever:
    if analysis is None:
        return Lever(
            5,
            "Check max length against the data",
            "Low-Medium",
            {},
            "run `lengthscan` on the training data to see truncation and padding at this max_length",
        )
    s, g = analysis.at_max_length, analysis.suggestion
    numbers = (
        f"at max_length {s.max_length}: {s.truncation_rate:.1%} of conversations are longer "
        f"({s.supervised_tokens_lost_rate:.1%} of assistant tokens lost), packed rows are "
        f"{s.padding_waste_packed:.1%} padding (padding each conversation to max_length would waste "
        f"{s.padding_waste_pad_to_max:.1%})"
    )
    if g.max_length == s.max_length:
        return Lever(5, "Check max length against the data", "Low-Medium", {}, f"{numbers}; it already fits the data")
    return Lever(
        5,
        "Check max length against the data",
        "Low-Medium",
        {"max_length": g.max_length},
        f"{numbers}; lengthscan suggests {g.max_length}: {g.reason}",
    )


GUIDE_EPOCHS = (
    "Don't increase epochs past 3 without evidence that eval loss is still declining at epoch boundary — "
    "dialogue data overfits fast"
)
GUIDE_BATCH = "Don't reduce batch size below 8 — too noisy for stable convergence on this data size"


def start_warnings(cfg: Config, conversations_per_row: float | None = None, world_size: int = 1) -> list[str]:
    """The guide's "what NOT to do", checked against the config before training starts; the batch counts every
    process (each takes micro_batch_size rows per micro-step).

    >>> from analyze.config import with_values
    >>> len(start_warnings(with_values(Config(), {"optim.grad_accum_steps": 1}))), start_warnings(
    ...     with_values(Config(), {"optim.grad_accum_steps": 1}), world_size=2)
    (1, [])
    """
    out = []
    if cfg.optim.epochs > 3:
        out.append(f"optim.epochs = {cfg.optim.epochs:g} is more than 3. The guide: “{GUIDE_EPOCHS}.”")
    batch = cfg.effective_batch * world_size
    if batch < 8:
        packed = (
            f" (packed, a step holds about {batch * conversations_per_row:.0f} conversations)"
            if conversations_per_row
            else ""
        )
        processes = f" × {world_size} processes" if world_size > 1 else ""
        out.append(
            f"effective batch = {cfg.optim.micro_batch_size} × {cfg.optim.grad_accum_steps}{processes} = {batch} "
            f"rows{packed} is below 8. The guide: “{GUIDE_BATCH}.”"
        )
    return out


def advice_for(kind: str, cfg: Config, analysis=None, best_step: int | None = None, steps_per_epoch: int = 0):
    """The levers that fit a verdict, first the one next_config.yaml applies (an empty change: no next run).

    plateau → the guide's six levers in its order; overfitting → keep the best checkpoint, fewer epochs, more
    dropout and weight decay, more data — never more capacity; unstable → go back to the last good checkpoint with a
    lower learning rate and no restarts; converged → nothing to do; sanity → what to check.

    >>> advice_for("overfitting", Config(), best_step=100, steps_per_epoch=100)[0].change
    {'optim.epochs': 1.0, 'lora.dropout': 0.1, 'optim.weight_decay': 0.01}
    >>> advice_for("unstable", Config())[0].change
    {'optim.learning_rate': 0.0001, 'optim.lr_scheduler': 'cosine'}
    >>> advice_for("converged", Config())[0].change
    {}
    """
    o, lora = cfg.optim, cfg.lora
    if kind == "plateau":
        return levers(cfg, analysis)
    if kind == "overfitting":
        epochs = float(max(1, math.ceil(best_step / steps_per_epoch))) if best_step and steps_per_epoch else o.epochs
        epochs = min(epochs, o.epochs)
        dropout = round(max(0.1, 2 * lora.dropout), 3)
        decay = max(o.weight_decay, 0.01)
        return [
            Lever(1, "Stop at the best eval, regularise", "High",
                  {"optim.epochs": epochs, "lora.dropout": dropout, "optim.weight_decay": decay},
                  f"keep the checkpoint nearest step {best_step} (the best eval loss) as this run's result; the next "
                  "run trains only as long as eval improved, with more dropout and weight decay"),
            Lever(2, "Fewer epochs", "High", {"optim.epochs": epochs},
                  f"eval loss was best at step {best_step}: {epochs:g} epoch(s) reach it; the guide: dialogue data "
                  "overfits fast"),
            Lever(3, "More LoRA dropout", "Medium", {"lora.dropout": dropout},
                  f"dropout {lora.dropout:g} → {dropout:g}"),
            Lever(4, "Weight decay", "Low", {"optim.weight_decay": decay},
                  f"weight decay {o.weight_decay:g} → {decay:g}"),
            Lever(5, "More data", "High", {}, "more (and more varied) conversations; never more rank or alpha: more "
                  "capacity memorises faster"),
        ]  # fmt: skip
    if kind == "unstable":
        lr = round(o.learning_rate / 2, 10)
        return [
            Lever(1, "Lower the learning rate, no restarts", "High",
                  {"optim.learning_rate": lr, "optim.lr_scheduler": "cosine"},
                  f"go back to the last checkpoint before the rise (--resume from it, or start anew) with learning "
                  f"rate {o.learning_rate:g} → {lr:g} and a plain cosine schedule (restarts jolt the weights)"),
            Lever(2, "Longer warm-up", "Medium", {"schedule.warmup": cfg.schedule.warmup * 2},
                  "a longer warm-up keeps the first large updates small"),
        ]  # fmt: skip
    if kind == "sanity":
        return [Lever(1, "Check the log and the eval set", "—", {}, "see the evidence: fix the cause, then judge")]
    return [Lever(1, "Nothing to do", "—", {}, "the run is fine as it is")]
