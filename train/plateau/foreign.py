"""Any Hugging Face Trainer's run, read without torch: its loss history, the plateau window for it, and its own
values as this project's config — what `train watch` replays from a trainer_state.json and what `PlateauCallback`
reads from a live Trainer.

The levers start from the run's own values where the log (or the Trainer) has them; the others are this project's
defaults, and the report says which:

>>> cfg, values = config_from_state({"num_train_epochs": 2, "train_batch_size": 8}, [(10, 2e-4), (20, 3e-4)],
...                                 {"r": 32, "lora_alpha": 64})
>>> cfg.optim.learning_rate, cfg.optim.epochs, cfg.optim.micro_batch_size, cfg.lora.r, cfg.lora.alpha
(0.0003, 2.0, 8, 32, 64)
>>> sorted(k for k, where in values.items() if where is None)
['lora.dropout', 'optim.grad_accum_steps', 'optim.lr_scheduler', 'optim.weight_decay']
"""

from __future__ import annotations

import math
from typing import Any

from analyze.config import with_values
from analyze.errors import UserError
from analyze.schema import Config

Points = list[tuple[int, float]]

# the config values the levers start from (advice.py): each is the run's own or, when unknown, this project's default
LEVER_KEYS = ("lora.r", "lora.alpha", "lora.dropout", "optim.learning_rate", "optim.epochs", "optim.micro_batch_size",
              "optim.grad_accum_steps", "optim.weight_decay", "optim.lr_scheduler")  # fmt: skip


def history(log_history: list[dict]) -> tuple[Points, Points, Points]:
    """(step, train loss), (step, eval loss) and (step, learning rate) points of a Trainer log history (as in
    `TrainerState.log_history` and trainer_state.json), one per step (the last logged).

    >>> history([{"step": 10, "loss": 3.0, "learning_rate": 1e-4}, {"step": 10, "eval_loss": 3.2},
    ...          {"step": 10, "eval_loss": 3.1}, {"step": 20, "train_runtime": 1.0}])
    ([(10, 3.0)], [(10, 3.1)], [(10, 0.0001)])
    """

    def points(key: str) -> Points:
        found = {h["step"]: float(h[key]) for h in log_history if h.get(key) is not None and "step" in h}
        return sorted(found.items())

    return points("loss"), points("eval_loss"), points("learning_rate")


def foreign_window(cfg: Config, total: int | None, eval_steps: int | None) -> int:
    """The guide's window read as the run's own steps, at most schedule.plateau_max of the run, and never shorter
    than the evaluations it needs.

    >>> foreign_window(Config(), total=3000, eval_steps=250), foreign_window(Config(), total=40, eval_steps=5)
    (750, 10)
    """
    window = int(cfg.schedule.plateau_window)
    if total:
        window = min(window, math.ceil(cfg.schedule.plateau_max * total))
    if eval_steps:
        window = max(window, (cfg.plateau.min_evals - 1) * int(eval_steps))
    return max(window, 1)


def config_from_state(state: dict, lrs: Points, adapter: dict | None = None) -> tuple[Config, dict[str, str | None]]:
    """A trainer_state.json (and the adapter_config.json beside it, if any) as this project's config: the learning
    rate is the log's largest (the schedule's peak), epochs `num_train_epochs`, the batch `train_batch_size`, LoRA
    rank, alpha and dropout the adapter's. Returns the config and, for each of `LEVER_KEYS`, where its value came
    from (None: unknown, this project's default)."""
    adapter = adapter or {}
    found = {
        "optim.learning_rate": (max((lr for _, lr in lrs), default=None), "the log's largest learning_rate"),
        "optim.epochs": (_number(state.get("num_train_epochs"), float), "num_train_epochs"),
        "optim.micro_batch_size": (_number(state.get("train_batch_size"), int), "train_batch_size"),
        "lora.r": (_number(adapter.get("r"), int), "adapter_config.json r"),
        "lora.alpha": (_number(adapter.get("lora_alpha"), int), "adapter_config.json lora_alpha"),
        "lora.dropout": (_number(adapter.get("lora_dropout"), float), "adapter_config.json lora_dropout"),
    }
    return _known(found)


def config_from_args(args, state, model=None) -> tuple[Config, dict[str, str | None]]:
    """A live Trainer's `TrainingArguments` (and the LoRA config of a PEFT `model`) as this project's config, like
    `config_from_state`; epochs are the state's (what `max_steps` makes of them)."""
    lora = _peft_lora(model)
    found = {
        "optim.learning_rate": (getattr(args, "learning_rate", None), "learning_rate"),
        "optim.epochs": (_number(getattr(state, "num_train_epochs", None), float), "num_train_epochs"),
        "optim.micro_batch_size": (getattr(args, "per_device_train_batch_size", None), "per_device_train_batch_size"),
        "optim.grad_accum_steps": (getattr(args, "gradient_accumulation_steps", None), "gradient_accumulation_steps"),
        "optim.weight_decay": (getattr(args, "weight_decay", None), "weight_decay"),
        "optim.lr_scheduler": (_scheduler_name(getattr(args, "lr_scheduler_type", None)), "lr_scheduler_type"),
        "lora.r": (_number(getattr(lora, "r", None), int), "the model's LoraConfig r"),
        "lora.alpha": (_number(getattr(lora, "lora_alpha", None), int), "the model's LoraConfig lora_alpha"),
        "lora.dropout": (_number(getattr(lora, "lora_dropout", None), float), "the model's LoraConfig lora_dropout"),
    }
    return _known(found)


def values_lines(values: dict[str, str | None], cfg: Config) -> list[str]:
    """Where the levers' starting values came from, for `train watch` and plateau.md.

    >>> values_lines({"lora.r": "adapter_config.json r", "optim.weight_decay": None}, Config())
    ['from the run: lora.r=16 (adapter_config.json r)', "unknown, this project's defaults: optim.weight_decay=0"]
    """
    known = [f"{k}={_show(_value(cfg, k))} ({where})" for k, where in values.items() if where]
    unknown = [f"{k}={_show(_value(cfg, k))}" for k, where in values.items() if not where]
    out = []
    if known:
        out.append("from the run: " + ", ".join(known))
    if unknown:
        out.append("unknown, this project's defaults: " + ", ".join(unknown))
    return out


def _known(found: dict[str, tuple[Any, str]]) -> tuple[Config, dict[str, str | None]]:
    """Config() with each found value set that the schema accepts (one it refuses counts as unknown)."""
    cfg, where = Config(), dict.fromkeys(LEVER_KEYS)
    for key, (value, source) in found.items():
        if value is None:
            continue
        try:
            cfg = with_values(cfg, {key: value})
        except UserError:  # out of this project's limits (e.g. a scheduler it does not name): keep the default
            continue
        where[key] = source
    return cfg, where


def _number(value, kind):
    """`value` as an int or float, None when it is missing or not that number (alpha 16.0 → 16; 0.5 → None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    if kind is int:
        return int(value) if float(value).is_integer() else None
    return float(value)


def _scheduler_name(value) -> str | None:
    return None if value is None else str(getattr(value, "value", value))  # an enum in TrainingArguments


def _peft_lora(model):
    """The LoraConfig of a PEFT model (its active adapter), or None."""
    configs = getattr(model, "peft_config", None)
    if not isinstance(configs, dict) or not configs:
        return None
    return configs.get(getattr(model, "active_adapter", None)) or next(iter(configs.values()))


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _value(cfg: Config, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj
