"""The run's YAML config: one typed dataclass per concern, shared by `lengthscan` and `train`.

Defaults are the tuning guide's run (LoRA r=16, alpha=16, dropout 0.05 on all linear layers, 4 × 4 batch,
lr 2e-4 cosine, 200 warmup steps, 3 epochs, max_length 512, T4). Each field's help text lives here once; the
default YAML file and its comments are generated from it (`default_yaml`).
"""

from __future__ import annotations

import contextlib
import difflib
import math
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from analyze.errors import UserError
from analyze.formats import AUTO, FORMATS
from analyze.memory import GPUS, gpu_budget
from analyze.sources import DEFAULT_SPLIT, is_hub_id
from analyze.yaml_text import commented, dump, read_yaml

DEFAULT_CONFIG_NAME = "lengthscan.yaml"
SMOKE_DIR_SUFFIX = "-smoke"  # `train --smoke` writes into run.output_dir + this: never the real run's folder
OVERLONG_POLICIES = ("cut_turns", "truncate", "drop")
SUGGEST_POLICIES = ("coverage", "supervised")
RUN_DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32")
PLATEAU_ACTIONS = ("warn", "stop")
# transformers schedules that need no extra arguments (a test checks each is a transformers SchedulerType)
LR_SCHEDULERS = (
    "cosine", "cosine_with_restarts", "linear", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt"
)  # fmt: skip
# Keys whose values are file paths: in a config file they are relative to the file's own folder.
PATH_KEYS = ("data.train", "data.eval", "data.tools", "chat_template", "run.output_dir")
# Keys that name a hub id or a local folder: relative to the config file when such a folder exists there.
PATH_OR_ID_KEYS = ("model", "tokenizer")


def _f(default, help: str, *, choices: tuple | None = None, ge=None, gt=None, le=None, lt=None):
    """A config field: its default, its help text, and what values it takes (checked by `check`)."""
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    train: list[str] = _f(
        [],
        "training data: files (.jsonl, .ndjson, .json, optionally .gz or .zst; .parquet, .arrow), folders, globs, or "
        "Hugging Face dataset ids; lengthscan uses them when given none",
    )
    split: str = _f(
        DEFAULT_SPLIT, "the split read from a Hugging Face dataset (a hub id or a dataset repository folder)"
    )
    subset: str | None = _f(None, "the subset (configuration) of a Hugging Face dataset, if it has several")
    format: str = _f(AUTO, f"record format: {', '.join(FORMATS[:-1])} or {FORMATS[-1]}", choices=FORMATS)
    eval: list[str] = _f([], "train: held-out eval files; empty = hold out eval_fraction of the conversations")
    eval_fraction: float = _f(
        0.05,
        "share of conversations held out for eval when there are no eval files, chosen by a hash of each "
        "conversation's content (the same ones at any max_length); 0 = none",
        ge=0.0,
        lt=0.5,
    )
    eval_max: int = _f(
        2000, "…and at most this many conversations (the lowest hashes), so evaluating stays cheap on big data", ge=1
    )
    tools: str | None = _f(
        None, "a JSON file with a list of tool schemas, given to the template for records that have no 'tools'"
    )
    fix_roles: bool = _f(
        False,
        "when the chat template refuses a conversation's roles: merge consecutive turns of one role, then fold tool "
        "turns into user and assistant text; each change is counted in the report (off: such records are skipped)",
    )
    max_skip: float = _f(
        0.05,
        "stop (exit 2) when more than this share of the records is skipped (malformed, unknown format, refused by "
        "the template…), naming the top reasons; 1 = never",
        ge=0.0,
        le=1.0,
    )


@dataclass
class LoraConfig:
    r: int = _f(16, "LoRA rank: adapter capacity (the guide's first lever is r=32 with alpha=32)", ge=1)
    alpha: int = _f(16, "LoRA alpha; the adapter's scale is alpha / r", ge=1)
    dropout: float = _f(0.05, "dropout on the LoRA path", ge=0.0, lt=1.0)
    target_modules: str | list[str] = _f("all-linear", "layers that get adapters: all-linear or a list of names")


@dataclass
class OptimConfig:
    micro_batch_size: int = _f(4, "rows per forward pass on the GPU", ge=1)
    grad_accum_steps: int = _f(4, "micro-batches per optimizer step (effective batch = micro_batch_size × this)", ge=1)
    learning_rate: float = _f(2e-4, "peak learning rate", gt=0.0, le=1.0)
    lr_scheduler: str = _f("cosine", f"learning-rate schedule: {', '.join(LR_SCHEDULERS)}", choices=LR_SCHEDULERS)
    epochs: float = _f(
        3.0, "passes over the training data (the guide: not more than 3 for dialogue)", gt=0.0, le=1000.0
    )
    weight_decay: float = _f(0.0, "AdamW weight decay", ge=0.0, lt=1.0)
    seed: int = _f(42, "seed for shuffling, the eval hold-out and LoRA initialisation", ge=0, le=2**32 - 1)


@dataclass
class RunConfig:
    output_dir: str = _f(
        "runs/lengthscan",
        "train: folder for checkpoints, logs, the adapter and the resolved config (--smoke uses this name + "
        f"'{SMOKE_DIR_SUFFIX}')",
    )
    device: str = _f(
        "auto", "train: auto (CUDA when present), cuda, or cpu (slow; for checks, not real runs)", choices=RUN_DEVICES
    )
    precision: str = _f(
        "auto",
        "train: auto (bf16 autocast where the GPU has bf16, fp16 on a T4, fp32 for architectures that overflow fp16 "
        "there) or fp32 (no autocast: slower; attention and the adapters' inputs take twice the bytes, the memory "
        "plan counts it)",
        choices=PRECISIONS,
    )
    max_steps: int = _f(-1, "train: stop after this many optimizer steps (-1 = all epochs)", ge=-1)
    save_total_limit: int = _f(3, "train: keep at most this many checkpoints", ge=1)
    logging_steps: int = _f(10, "train: log loss, learning rate and throughput every N optimizer steps", ge=1)
    gradient_checkpointing: bool = _f(
        True, "train: recompute activations in the backward pass: far less memory, ~30% slower"
    )
    memory_check: bool = _f(
        True, "train: refuse, before loading the model, a config the memory plan predicts will not fit the GPU"
    )


@dataclass
class PlateauConfig:
    action: str = _f(
        "warn",
        "plateau watch: on a real plateau, warn (write the advice and go on) or stop the run",
        choices=PLATEAU_ACTIONS,
    )
    min_evals: int = _f(2, "plateau watch: eval loss must be flat across at least this many evaluations…", ge=2)
    eval_tolerance: float = _f(
        0.01,
        "plateau watch: a change under this share of the loss is noise until 6 evaluations give the run's own noise "
        "(and a train–eval gap must widen by at least this)",
        gt=0.0,
        lt=1.0,
    )
    train_band: float = _f(
        0.1, "plateau watch: 'tight band' = train loss p10–p90 spread under this share of its mean", gt=0.0
    )
    train_drift: float = _f(
        0.02, "plateau watch: 'no downward drift' = the trend fell less than this share over the window", gt=0.0
    )
    overfit_evals: int = _f(
        3,
        "plateau watch: overfitting = train below eval, eval not improving over this many evals, and eval risen "
        "from its best or the gap widening",
        ge=2,
    )


@dataclass
class ScheduleConfig:
    warmup: float = _f(
        200,
        "linear learning-rate warm-up, in guide steps (a guide step = micro_batch_size × grad_accum_steps × processes "
        "conversations, unpacked: the guide's batches of 4 × 4)",
        ge=0,
    )
    warmup_max: float = _f(0.05, "…and at most this share of the run's optimizer steps", gt=0.0, le=1.0)
    eval_every: float = _f(200, "evaluate every N guide steps…", gt=0)
    save_every: float = _f(200, "save a checkpoint every N guide steps… (--resume continues from the last)", gt=0)
    min_evals: int = _f(
        8, "…shortened so the run has at least this many evaluations and checkpoints (0 = never shortened)…", ge=0
    )
    max_evals: int = _f(
        100, "…and lengthened so it has at most this many (each costs a pass over the eval set; 0 = no limit)", ge=0
    )
    plateau_window: float = _f(
        1000, "plateau watch: eval loss flat across this many guide steps (the guide: 2+ evals, 1000+ steps)…", gt=0
    )
    plateau_max: float = _f(
        0.25, "…and at most this share of the run (the guide's 1000 of its ~6,000 steps is 1/6)", gt=0.0, le=1.0
    )


@dataclass
class SuggestConfig:
    policy: str = _f(
        "coverage",
        "how max_length is suggested: coverage (records fit whole) or supervised (assistant tokens kept)",
        choices=SUGGEST_POLICIES,
    )
    target: float = _f(0.99, "the share the policy must keep (0.99: 99% of records fit whole)", gt=0.0, le=1.0)
    round_to: int = _f(64, "round the suggestion up to a multiple of this", ge=1)


@dataclass
class Config:
    model: str = _f("Qwen/Qwen3-1.7B", "base model: Hugging Face hub id or local folder (4-bit QLoRA fits a T4)")
    tokenizer: str | None = _f(
        None, "tokenizer: hub id or folder; empty = the model's own (bundled for Qwen3, so it works offline)"
    )
    chat_template: str | None = _f(None, "a Jinja chat template file to use instead of the tokenizer's")
    max_length: int = _f(512, "tokens per training row; `lengthscan --write-config` sets it from the data", ge=1)
    max_length_source: dict | None = _f(
        None, "where max_length came from: data and tokenizer fingerprints (written by lengthscan; train checks them)"
    )
    overlong: str = _f(
        "cut_turns",
        "records longer than max_length: cut_turns (keep the whole turns that fit), truncate (cut at max_length) "
        "or drop",
        choices=OVERLONG_POLICIES,
    )
    gpu: str | float = _f(
        "T4",
        f"the GPU the memory plan is for: {', '.join(GPUS)}, or its memory in GiB (train plans for the GPU it runs on)",
    )
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "training data"})
    schedule: ScheduleConfig = field(
        default_factory=ScheduleConfig,
        metadata={"help": "train: the guide's step numbers in its own units, converted to packed optimizer steps"},
    )
    suggest: SuggestConfig = field(
        default_factory=SuggestConfig, metadata={"help": "how lengthscan and --auto-maxlen suggest max_length"}
    )
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA adapter"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimisation"})
    run: RunConfig = field(default_factory=RunConfig, metadata={"help": "the training run (used by `train` only)"})
    plateau: PlateauConfig = field(
        default_factory=PlateauConfig,
        metadata={"help": "plateau watch: the tuning guide's signs, checked at each eval"},
    )

    def __post_init__(self):
        if isinstance(self.gpu, str):  # "--gpu 12" arrives as text: a number of GiB is kept as one
            with contextlib.suppress(ValueError):
                self.gpu = float(self.gpu)
        check(self)

    @property
    def effective_batch(self) -> int:
        return self.optim.micro_batch_size * self.optim.grad_accum_steps


def check(cfg: Config) -> None:
    """Every value against its field's allowed values or range, then the cross-field checks: in one place.

    >>> from_dict({"lora": {"r": 0}})
    Traceback (most recent call last):
    analyze.errors.UserError: config: lora.r is 0; it must be ≥ 1 (nearest valid value: 1)
    >>> from_dict({"optim": {"lr_scheduler": "cosin"}})
    Traceback (most recent call last):
    analyze.errors.UserError: config: optim.lr_scheduler is 'cosin'; choose one of cosine, cosine_with_restarts, \
linear, constant, constant_with_warmup, polynomial, inverse_sqrt (nearest: 'cosine')
    """
    for key, value, meta in _leaves(cfg):
        problem = check_value(key, value, meta)
        if problem:
            raise UserError(problem)
    try:
        gpu_budget(cfg.gpu)
    except ValueError:
        close = difflib.get_close_matches(str(cfg.gpu).upper(), list(GPUS), n=1, cutoff=0.4)
        hint = f" (nearest: {close[0]!r})" if close else ""
        raise UserError(f"gpu is {cfg.gpu!r}; choose one of {', '.join(GPUS)} or a number of GiB{hint}") from None
    if cfg.run.max_steps == 0:
        raise UserError("run.max_steps is 0; it must be -1 (all epochs) or a positive number of steps")


def check_value(key: str, value: Any, meta: dict) -> str | None:
    """What is wrong with one value, in words that name the key, the allowed values or range and the nearest valid
    value; None when it is fine.

    >>> check_value("lora.dropout", 1.0, {"ge": 0.0, "lt": 1.0})
    'lora.dropout is 1.0; it must be ≥ 0 and < 1 (e.g. 0.05, the default)'
    >>> check_value("optim.learning_rate", -2e-4, {"gt": 0.0, "le": 1.0})
    'optim.learning_rate is -0.0002; it must be > 0 and ≤ 1 (e.g. 0.0002, the default)'
    """
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
        hint = f" (nearest: {close[0]!r})" if close else ""
        return f"{key} is {value!r}; choose one of {', '.join(map(str, choices))}{hint}"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if not math.isfinite(value):
        return f"{key} is {value!r}; it must be a finite number (e.g. {DEFAULTS.get(key)!r}, the default)"
    bounds = [(op, meta.get(op)) for op in ("ge", "gt", "le", "lt") if meta.get(op) is not None]
    ok = {"ge": value.__ge__, "gt": value.__gt__, "le": value.__le__, "lt": value.__lt__}
    if all(ok[op](b) for op, b in bounds):
        return None
    words = " and ".join(f"{_OPS[op]} {b:g}" for op, b in bounds)
    return f"{key} is {value!r}; it must be {words} ({_nearest_valid(key, value, bounds)})"


_OPS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def _nearest_valid(key: str, value: Any, bounds: list[tuple[str, Any]]) -> str:
    """A closed bound, or the next integer past an open one; otherwise the default, which is always valid."""
    for op, b in bounds:
        if op in ("ge", "le") and not {"ge": value >= b, "le": value <= b}[op]:
            return f"nearest valid value: {b:g}"
        if op in ("gt", "lt") and isinstance(value, int) and not {"gt": value > b, "lt": value < b}[op]:
            return f"nearest valid value: {b + 1 if op == 'gt' else b - 1:g}"
    return f"e.g. {DEFAULTS.get(key)!r}, the default"


def _leaves(obj: Any, prefix: str = "") -> list[tuple[str, Any, dict]]:
    """(dotted key, value, field metadata) of every non-section field."""
    out = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            out += _leaves(value, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, value, dict(f.metadata)))
    return out


def with_values(cfg: Config, changes: dict[str, Any], where: str = "command line") -> Config:
    """`cfg` with dotted keys set, checked like a config file.

    >>> with_values(Config(), {"lora.r": 32, "max_length": 1024}).lora.r
    32
    """
    data = to_dict(cfg)
    for dotted, value in changes.items():
        *sections, name = dotted.split(".")
        node = data
        for s in sections:
            node = node.setdefault(s, {})
        node[name] = value
    return from_dict(data, where=where)


def field_meta(key: str) -> dict:
    """The metadata (help, choices, bounds) of a dotted config key."""
    cls: Any = Config
    *sections, name = key.split(".")
    for s in sections:
        cls = typing.get_type_hints(cls)[s]
    return dict(next(f for f in fields(cls) if f.name == name).metadata)


def config_path(explicit: str | Path | None) -> Path | None:
    """The config file a command reads: `explicit` (which must exist), else ./lengthscan.yaml when there is one,
    else None (the built-in defaults)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UserError(f"{path}: config not found; create one with `lengthscan DATA --write-config {path}`")
        return path
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.is_file() else None


def config_target(path: str | Path | None) -> Path:
    """The config file a command writes into: the one it read, else ./lengthscan.yaml (created if need be)."""
    return Path(path) if path else Path(DEFAULT_CONFIG_NAME)


def load_config(path: str | Path | None) -> Config:
    """The config at `path` (defaults filled in; relative paths read from the file's folder), or the defaults."""
    if path is None:
        return Config()
    path = config_path(path)
    return from_dict(rebase_paths(read_yaml(path), path.parent), where=str(path))


def rebase_paths(values: dict, base: Path) -> dict:
    """A config file's values with its relative paths made relative to the current folder instead of `base` (the
    file's folder): data files and the chat template always, the model or tokenizer when such a folder exists there.

    >>> rebase_paths({"data": {"train": ["a.jsonl", "/abs/b.jsonl"]}, "chat_template": "t.jinja"}, Path("cfg"))
    {'data': {'train': ['cfg/a.jsonl', '/abs/b.jsonl']}, 'chat_template': 'cfg/t.jinja'}
    """
    return _map_paths(values, lambda p, must: str(base / p) if not must or (base / p).exists() else p, base)


def relative_paths(values: dict, base: Path) -> dict:
    """The inverse of `rebase_paths`, for writing a config into `base`: paths relative to that folder.

    >>> relative_paths({"data": {"train": ["cfg/a.jsonl"]}, "model": "Qwen/Qwen3-1.7B"}, Path("cfg"))
    {'data': {'train': ['a.jsonl']}, 'model': 'Qwen/Qwen3-1.7B'}
    """
    import os

    def rel(p: str, must_exist: bool) -> str:
        if must_exist and not Path(p).exists():
            return p  # a hub id
        return os.path.relpath(Path(p).resolve(), base.resolve())

    return _map_paths(values, rel, base)


def _map_paths(values: dict, fn, base: Path) -> dict:
    import copy

    out = copy.deepcopy(values)
    if str(base) in ("", "."):
        return out
    for key in PATH_KEYS + PATH_OR_ID_KEYS:
        *sections, name = key.split(".")
        node = out
        for s in sections:
            node = node.get(s) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not node.get(name):
            continue
        value, must, data = node[name], key in PATH_OR_ID_KEYS, key.startswith("data.")
        if key == "tokenizer" and str(value).startswith("bundled:"):
            continue

        def one(p, must=must, data=data):
            if not isinstance(p, str) or Path(p).is_absolute() or (data and is_hub_id(p, base) and is_hub_id(p)):
                return p  # a Hugging Face dataset id is not a path
            return fn(p, must)

        node[name] = [one(p) for p in value] if isinstance(value, list) else one(value)
    return out


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
    if cls is not Config:
        return cls(**kwargs)
    try:
        return cls(**kwargs)  # `check` runs here
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


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
        if value is None:  # a section with nothing under it
            value = {}
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
    """Nested config dict → dotted keys; only sections are descended into, so the provenance record
    `max_length_source` stays one value.

    >>> flatten({"max_length": 512, "lora": {"r": 16}, "max_length_source": {"set_by": "x"}})
    {'max_length': 512, 'lora.r': 16, 'max_length_source': {'set_by': 'x'}}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and is_section(prefix + k):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def config_keys(cls: type | None = None, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted key of the config and its type hint (sections are not keys).

    >>> keys = config_keys()
    >>> keys["lora.r"], keys["max_length"], "lora" in keys
    (<class 'int'>, <class 'int'>, False)
    """
    hints = typing.get_type_hints(cls or Config)
    keys: dict[str, Any] = {}
    for f in fields(cls or Config):
        hint = hints[f.name]
        if is_dataclass(hint):
            keys.update(config_keys(hint, prefix + f.name + "."))
        else:
            keys[prefix + f.name] = hint
    return keys


def is_section(key: str) -> bool:
    """Whether a dotted key names a section of the config (`lora`), not a value — a value may be a mapping too
    (the provenance record `max_length_source`).

    >>> is_section("lora"), is_section("max_length_source"), is_section("lora.r")
    (True, False, False)
    """
    return key in _SECTIONS


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config (for JSON / saving beside outputs)."""
    return {f.name: to_dict(v) if is_dataclass(v := getattr(cfg, f.name)) else v for f in fields(cfg)}


def to_file_dict(cfg: Config, folder: Path) -> dict:
    """`to_dict` with paths relative to `folder`, for a config file written there (read back by `load_config`)."""
    return relative_paths(to_dict(cfg), Path(folder))


def default_yaml() -> str:
    """The default config as commented YAML, generated from the dataclasses so each help text is written once."""
    return dump(
        commented(to_dict(Config()), lambda key: field_meta(key)["help"], is_section),
        "lengthscan / train config. `lengthscan DATA --write-config` sets max_length from your data;\n"
        f"`train --config {DEFAULT_CONFIG_NAME}` reads this file. Defaults: the tuning guide's T4 QLoRA run.",
    )


def _sections(cls: type, prefix: str = "") -> set[str]:
    hints = typing.get_type_hints(cls)
    out: set[str] = set()
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            out |= {prefix + f.name} | _sections(hints[f.name], prefix + f.name + ".")
    return out


_SECTIONS = _sections(Config)
DEFAULTS = flatten(to_dict(Config()))  # each key's default, for messages that suggest one
