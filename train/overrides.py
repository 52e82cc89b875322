"""Command-line overrides of any config value, and where each resolved value came from.

The flags are the grammar both commands share (`analyze.flags`): `--lora.r 32`, `--lora.r=32`,
`--optim.learning-rate 3e-4`, `--max_length 1024` and the aliases (`--max-steps 2`) each name a config key, typed
and checked as the config checks it.

>>> overrides = parse_overrides(["--lora.r", "32", "--optim.learning-rate=3e-4"])
>>> overrides
{'lora.r': (32, '--lora.r'), 'optim.learning_rate': (0.0003, '--optim.learning_rate')}
>>> cfg, prov = resolve({}, "defaults", overrides)
>>> cfg.lora.r, prov["lora.r"], prov["lora.alpha"]
(32, '--lora.r', 'default')
>>> parse_overrides(["--lora.rank", "32"])
Traceback (most recent call last):
analyze.errors.UserError: unknown option --lora.rank; did you mean --lora.r?
"""

from __future__ import annotations

import copy
from typing import Any

from analyze.config import config_keys, flatten, from_dict, to_dict
from analyze.flags import parse_config_flags
from analyze.schema import Config


def parse_overrides(tokens: list[str]) -> dict[str, tuple[Any, str]]:
    """{key: (value, flag)} of `--key value` / `--key=value` tokens in the commands' grammar (`analyze.flags`)."""
    return parse_config_flags(tokens, prog="train")


def resolve(
    file_values: dict,
    file_label: str,
    overrides: dict[str, tuple[Any, str]],
    extra: dict[str, tuple[Any, str]] = (),
) -> tuple[Config, dict[str, str]]:
    """The config from file values, then the command line's `overrides`, then `extra`: each {key: (value, source)}
    (`analyze.flags.config_values` gives the first: the source is the flag).

    Returns the config and, for each dotted key, where its value came from.
    """
    from_dict(file_values, where=file_label)  # a bad value in the file is named by the file, not the command line
    data = copy.deepcopy(file_values)
    prov = {k: "default" for k in config_keys()}
    for key in flatten(file_values):
        if key in prov:
            prov[key] = file_label
    for key, (value, source) in [*dict(overrides).items(), *dict(extra).items()]:
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
