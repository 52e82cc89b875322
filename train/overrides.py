"""Command-line overrides of any config value, and where each resolved value came from.

`--lora.r 32`, `--lora.r=32`, `--optim.learning-rate 3e-4` and `--max_length 1024` all name a config key (dashes
and underscores are the same). Values are read as YAML scalars (`32`, `3e-4`, `null`, `[a, b]`); a list key also
takes `a,b`. A mistyped key is an error that names the nearest valid one.

>>> parse_overrides(["--lora.r", "32", "--optim.learning-rate=3e-4"])
[('lora.r', '32'), ('optim.learning_rate', '3e-4')]
>>> cfg, prov = resolve({}, "defaults", [("lora.r", "32")])
>>> cfg.lora.r, prov["lora.r"], prov["lora.alpha"]
(32, '--lora.r', 'default')
>>> resolve({}, "defaults", [("lora.rank", "32")])
Traceback (most recent call last):
analyze.errors.UserError: unknown option --lora.rank; did you mean --lora.r?
"""

from __future__ import annotations

import copy
import types
import typing
from typing import Any

from analyze.config import config_keys, flatten, from_dict, nearest, to_dict
from analyze.errors import UserError
from analyze.schema import Config
from analyze.yaml_text import parse_yaml


def parse_overrides(tokens: list[str]) -> list[tuple[str, str]]:
    """`--key value` / `--key=value` pairs; keys normalised to the config's snake_case dotted names."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or tok == "--":
            raise UserError(f"unexpected argument {tok!r}; config values are set as --key value (e.g. --lora.r 32)")
        key, eq, value = tok[2:].partition("=")
        if not eq:
            if i + 1 >= len(tokens) or (tokens[i + 1].startswith("--") and not _is_number(tokens[i + 1])):
                raise UserError(f"--{key} needs a value, e.g. --{key} VALUE")
            value = tokens[i + 1]
            i += 1
        out.append((key.replace("-", "_"), value))
        i += 1
    return out


def resolve(
    file_values: dict, file_label: str, overrides: list[tuple[str, str]], extra: dict[str, tuple[Any, str]] = ()
) -> tuple[Config, dict[str, str]]:
    """The config from file values, then `--key value` overrides, then `extra` {key: (value, source)}.

    Returns the config and, for each dotted key, where its value came from.
    """
    keys = config_keys()
    from_dict(file_values, where=file_label)  # a bad value in the file is named by the file, not the command line
    data = copy.deepcopy(file_values)
    prov = {k: "default" for k in keys}
    for key in flatten(file_values):
        if key in prov:
            prov[key] = file_label
    for key, raw in overrides:
        if key not in keys:
            close = nearest(key, list(keys))
            hint = f"; did you mean --{close}?" if close else "; see `train --help` for the config keys"
            raise UserError(f"unknown option --{key}{hint}")
        _set(data, key, _parse_value(raw, keys[key]))
        prov[key] = f"--{key}"
    for key, (value, source) in dict(extra).items():
        _set(data, key, value)
        prov[key] = source
    return from_dict(data, where="command line"), prov


def describe(cfg: Config, prov: dict[str, str]) -> list[str]:
    """`key = value  (source)` lines, one per config key, for printing at start."""
    flat = flatten(to_dict(cfg))
    width = max(len(k) for k in flat)
    lines = []
    for key, value in flat.items():
        if isinstance(value, dict):  # a record (the provenance of max_length), not a setting: shown where it is used
            continue
        shown = "null" if value is None else value
        lines.append(f"  {key:<{width}} = {shown}  ({prov.get(key, 'default')})")
    return lines


def _set(data: dict, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for p in path:
        if not isinstance(data.get(p), dict):  # absent, or an empty section (`run:` with nothing under it)
            data[p] = {}
        data = data[p]
    data[last] = value


def _parse_value(raw: str, hint: Any) -> Any:
    from ruamel.yaml import YAMLError

    try:
        value = parse_yaml(raw)
    except YAMLError:  # not YAML (`--model a: b`): the text itself
        value = raw
    if value is None and raw.strip() not in ("null", "~", ""):
        value = raw
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    wants_list = any((typing.get_origin(t) or t) is list for t in allowed)
    wants_str = str in allowed
    if isinstance(value, (int, float)) and not isinstance(value, bool) and wants_str and int not in allowed:
        value = raw  # e.g. --model 123 stays a name
    if wants_list and isinstance(value, str) and ("," in value or not wants_str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    return value


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True
