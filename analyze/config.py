"""The run's YAML config: one typed dataclass per concern, shared by `lengthscan` and `train`.

Defaults are the tuning guide's run (LoRA r=16, alpha=16, dropout 0.05 on all linear layers, 4 × 4 batch,
lr 2e-4 cosine, 200 warmup steps, 3 epochs, max_length 512, T4). Each field's help text lives here once; the
default YAML file and its comments are generated from it (`default_yaml`).
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from analyze.errors import UserError

DEFAULT_CONFIG_NAME = "lengthscan.yaml"
OVERLONG_POLICIES = ("cut_turns", "truncate", "drop")


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class DataConfig:
    train: list[str] = _f([], "training files (.jsonl / .json, optionally .gz); lengthscan uses them when given none")
    format: str = _f("auto", "record format: auto, messages, sharegpt, alpaca, prompt_completion or text")
    eval: list[str] = _f([], "train: held-out eval files; empty = hold out eval_fraction of the packed rows")
    eval_fraction: float = _f(0.05, "train: share of packed rows held out for eval without eval files (0 = none)")


@dataclass
class LoraConfig:
    r: int = _f(16, "LoRA rank: adapter capacity (the guide's first lever is r=32 with alpha=32)")
    alpha: int = _f(16, "LoRA alpha; the adapter's scale is alpha / r")
    dropout: float = _f(0.05, "dropout on the LoRA path")
    target_modules: str | list[str] = _f("all-linear", "layers that get adapters: all-linear or a list of names")


@dataclass
class OptimConfig:
    micro_batch_size: int = _f(4, "rows per forward pass on the GPU")
    grad_accum_steps: int = _f(4, "micro-batches per optimizer step (effective batch = micro_batch_size × this)")
    learning_rate: float = _f(2e-4, "peak learning rate")
    lr_scheduler: str = _f("cosine", "learning-rate schedule: cosine, cosine_with_restarts, linear, constant…")
    warmup_steps: int = _f(200, "optimizer steps of linear warm-up")
    epochs: float = _f(3.0, "passes over the training data (the guide: not more than 3 for dialogue)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    seed: int = _f(42, "seed for shuffling, the data split and LoRA initialisation")


@dataclass
class RunConfig:
    output_dir: str = _f("runs/lengthscan", "train: folder for checkpoints, logs, the adapter and the resolved config")
    device: str = _f("auto", "train: auto (CUDA when present), cuda, or cpu (slow; for checks, not real runs)")
    max_steps: int = _f(-1, "train: stop after this many optimizer steps (-1 = all epochs)")
    eval_steps: int = _f(200, "train: evaluate every N optimizer steps")
    save_steps: int = _f(200, "train: save a checkpoint every N optimizer steps (--resume continues from the last)")
    save_total_limit: int = _f(3, "train: keep at most this many checkpoints")
    logging_steps: int = _f(10, "train: log loss, learning rate and throughput every N optimizer steps")
    gradient_checkpointing: bool = _f(
        True, "train: recompute activations in the backward pass: far less memory, ~30% slower"
    )


RUN_DEVICES = ("auto", "cuda", "cpu")


@dataclass
class PlateauConfig:
    action: str = _f("warn", "plateau watch: on a real plateau, warn (write the advice and go on) or stop the run")
    min_evals: int = _f(2, "plateau watch: eval loss must be flat across at least this many evaluations…")
    min_steps: int = _f(
        1000, "plateau watch: …spanning at least this many optimizer steps (the guide: 2+ evals, 1000+)"
    )
    eval_tolerance: float = _f(
        0.01, "plateau watch: 'flat' = eval loss improved by less than this share over the window"
    )
    train_band: float = _f(0.1, "plateau watch: 'tight band' = train loss p10–p90 spread under this share of its mean")
    train_drift: float = _f(
        0.02, "plateau watch: 'no downward drift' = the trend fell less than this share over the window"
    )
    overfit_evals: int = _f(
        3, "plateau watch: overfitting = train below eval with the gap widening over this many evals"
    )


PLATEAU_ACTIONS = ("warn", "stop")


@dataclass
class Config:
    model: str = _f("Qwen/Qwen3-1.7B", "base model: Hugging Face hub id or local folder (4-bit QLoRA fits a T4)")
    tokenizer: str | None = _f(
        None, "tokenizer: hub id or folder; empty = the model's own (bundled for Qwen3, so it works offline)"
    )
    chat_template: str | None = _f(None, "a Jinja chat template file to use instead of the tokenizer's")
    max_length: int = _f(512, "tokens per training row; `lengthscan --write-config` sets it from the data")
    max_length_source: dict | None = _f(None, "where max_length came from (written by lengthscan; informational)")
    overlong: str = _f(
        "cut_turns",
        "records longer than max_length: cut_turns (keep the whole turns that fit), truncate (cut at max_length) "
        "or drop",
    )
    gpu: str = _f("T4", "the GPU the run is planned for (16 GB, fp16, no FlashAttention-2)")
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "training data"})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA adapter"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimisation"})
    run: RunConfig = field(default_factory=RunConfig, metadata={"help": "the training run (used by `train` only)"})
    plateau: PlateauConfig = field(
        default_factory=PlateauConfig,
        metadata={"help": "plateau watch: the tuning guide's signs, checked at each eval"},
    )

    def __post_init__(self):
        check(self)

    @property
    def effective_batch(self) -> int:
        return self.optim.micro_batch_size * self.optim.grad_accum_steps


def check(cfg: Config) -> None:
    """Cross-field checks, in one place."""
    if cfg.overlong not in OVERLONG_POLICIES:
        raise UserError(f"overlong: {cfg.overlong!r} is not a policy; choose one of {', '.join(OVERLONG_POLICIES)}")
    if cfg.max_length < 1:
        raise UserError(f"max_length: {cfg.max_length} must be at least 1")
    if cfg.optim.micro_batch_size < 1 or cfg.optim.grad_accum_steps < 1:
        raise UserError("optim.micro_batch_size and optim.grad_accum_steps must be at least 1")
    if cfg.plateau.action not in PLATEAU_ACTIONS:
        raise UserError(f"plateau.action: {cfg.plateau.action!r}; choose warn or stop")
    if cfg.plateau.min_evals < 2 or cfg.plateau.overfit_evals < 2:
        raise UserError("plateau.min_evals and plateau.overfit_evals must be at least 2 (a trend needs two points)")
    if not 0 <= cfg.data.eval_fraction < 1:
        raise UserError(f"data.eval_fraction: {cfg.data.eval_fraction} must be in [0, 1), e.g. 0.05")
    if cfg.run.device not in RUN_DEVICES:
        raise UserError(f"run.device: {cfg.run.device!r} is not a device; choose one of {', '.join(RUN_DEVICES)}")
    for key in ("eval_steps", "save_steps", "logging_steps", "save_total_limit"):
        if getattr(cfg.run, key) < 1:
            raise UserError(f"run.{key}: {getattr(cfg.run, key)} must be at least 1")
    if cfg.run.max_steps == 0 or cfg.run.max_steps < -1:
        raise UserError(f"run.max_steps: {cfg.run.max_steps} must be -1 (all epochs) or a positive number of steps")


def load_config(path: str | Path | None) -> Config:
    """The config at `path` (defaults filled in), or the defaults when `path` is None."""
    if path is None:
        return Config()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config not found; create one with `lengthscan --write-config {path}`")
    return from_dict(read_yaml(path), where=str(path))


def read_yaml(path: Path) -> dict:
    from ruamel.yaml import YAML, YAMLError

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f":{line + 1}" if line is not None else ""
        raise UserError(f"{path}{at}: not valid YAML ({str(e).splitlines()[0]}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the config must be a YAML mapping of keys to values")
    return data


def from_dict(data: dict, cls: type = Config, where: str = "config", prefix: str = "") -> Any:
    """Build `cls` from a mapping; unknown keys are an error that names the nearest valid key.

    >>> from_dict({"lora": {"r": 32}}).lora.r
    32
    >>> from_dict({"max_lenght": 1024})
    Traceback (most recent call last):
    analyze.errors.UserError: config: unknown key 'max_lenght'; did you mean 'max_length'?
    """
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = nearest(str(key), names)
            hint = f"; did you mean '{prefix}{close}'?" if close else f"; valid keys: {', '.join(names)}"
            raise UserError(f"{where}: unknown key '{prefix}{key}'{hint}")
        kwargs[key] = _coerce(value, hints[key], where, prefix + key)
    return cls(**kwargs)


def nearest(key: str, names: list[str]) -> str | None:
    """The valid name a mistyped key most likely meant, or None.

    >>> nearest("learnig_rate", ["learning_rate", "seed"]), nearest("rank", ["r", "alpha"]), nearest("zz", ["r"])
    ('learning_rate', 'r', None)
    """
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return close[0]
    prefixed = [n for n in names if key.startswith(n) or n.startswith(key)]
    return prefixed[0] if prefixed else None


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    if is_dataclass(hint):
        if not isinstance(value, dict):
            raise UserError(f"{where}: '{key}' must be a mapping")
        return from_dict(value, hint, where, prefix=key + ".")
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise UserError(f"{where}: '{key}' needs a value")
    for t in allowed:
        origin = typing.get_origin(t) or t
        if origin is bool:
            if isinstance(value, bool):
                return value
            continue
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is list and isinstance(value, list):
            return list(value)
        if origin in (int, str, dict) and isinstance(value, origin) and not (origin is int and isinstance(value, bool)):
            return value
    names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed if t is not type(None))
    raise UserError(f"{where}: '{key}' is {value!r}; expected {names}")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config dict → dotted keys; the provenance record `max_length_source` stays one value.

    >>> flatten({"max_length": 512, "lora": {"r": 16}, "max_length_source": {"set_by": "x"}})
    {'max_length': 512, 'lora.r': 16, 'max_length_source': {'set_by': 'x'}}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "max_length_source":
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config (for JSON / saving beside outputs)."""
    return {f.name: to_dict(v) if is_dataclass(v := getattr(cfg, f.name)) else v for f in fields(cfg)}


def default_yaml() -> str:
    """The default config as commented YAML, generated from the dataclasses so each help text is written once."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    def build(obj: Any) -> CommentedMap:
        m = CommentedMap()
        for f in fields(obj):
            value = getattr(obj, f.name)
            m[f.name] = build(value) if is_dataclass(value) else value
            m.yaml_add_eol_comment(f.metadata["help"], f.name)
        return m

    root = build(Config())
    root.yaml_set_start_comment(
        "lengthscan / train config. `lengthscan DATA --write-config` sets max_length from your data;\n"
        "`train --config lengthscan.yaml` reads this file. Defaults: the tuning guide's T4 QLoRA run."
    )
    out = io.StringIO()
    yaml = YAML()
    yaml.width = 4096  # keep each help comment on its key's line
    yaml.dump(root, out)
    return out.getvalue()
