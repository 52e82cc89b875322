"""The run's YAML config, read and written: a mapping into the schema's dataclasses (`analyze.schema`), every value
checked against its field's limits with the nearest valid value named, command-line overrides, paths relative to
the file, and the default YAML generated from the fields' help.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from analyze.errors import UserError
from analyze.gpus import GPUS, gpu_budget
from analyze.schema import DEFAULT_CONFIG_NAME, PATH_KEYS, PATH_OR_ID_KEYS, Config
from analyze.sources import is_hub_id
from analyze.yaml_text import commented, dump, read_yaml


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
    cfg = cls(**kwargs)
    try:
        check(cfg)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    return cfg


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
