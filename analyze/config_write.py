"""Edit the user's YAML config in place: comments, key order and other values kept, written atomically.

The file is replaced in one `os.replace`, so a reader (or a crash) sees the old file or the new one, never half.
A config that does not parse or has unknown keys is left untouched.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from analyze.atomic import atomic_write
from analyze.config import default_yaml, flatten, from_dict, relative_paths
from analyze.errors import UserError
from analyze.sources import DatasetSource
from analyze.yaml_text import dump, load_round_trip, parse_yaml, read_yaml

PACKAGE_DIR = Path(__file__).resolve().parent
# where a new top-level key goes when the file lacks it: after the first of these that is present
PLACE_AFTER = {
    "tokenizer": ("model",),
    "chat_template": ("tokenizer", "model"),
    "max_length": ("chat_template", "tokenizer", "model"),
    "max_length_source": ("max_length",),
    "overlong": ("max_length_source", "max_length"),
    "gpu": ("overlong", "max_length"),
}


def set_values(text: str, changes: dict[str, Any]) -> str:
    """`text` with each dotted key set to its value; comments and order kept, missing sections created.

    >>> print(set_values("# mine\\nlora:\\n  r: 16  # rank\\n", {"lora.r": 32, "lora.alpha": 32}), end="")
    # mine
    lora:
      r: 32  # rank
      alpha: 32
    """
    from ruamel.yaml.comments import CommentedMap

    doc = load_round_trip(text)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = doc
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = CommentedMap()
            node = node[p]
        value = CommentedMap(value) if isinstance(value, dict) else value
        if key in node:
            node[key] = value
        else:
            keys = list(node)
            after = [k for k in PLACE_AFTER.get(dotted, ()) if k in keys]
            node.insert(keys.index(after[0]) + 1 if after else len(keys), key, value)
    return dump(doc)


def update_config(path: str | Path, changes: dict[str, Any]) -> bool:
    """Apply `changes` to the config at `path` atomically, creating it from the defaults if missing.

    Returns True when the file was created.
    """
    path = Path(path)
    if PACKAGE_DIR in path.resolve().parents:
        raise UserError(f"{path}: refusing to edit a file inside the installed package; write to your own config")
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = default_yaml()
    else:
        from_dict(read_yaml(path), where=str(path))  # unknown keys or bad values: stop before touching the file
        text = path.read_text(encoding="utf-8")
    new = set_values(text, changes)
    from_dict(parse_yaml(new) or {}, where=str(path))  # never write a config train would reject
    atomic_write(path, new)
    return created


def write_suggestion(path: str | Path, analysis, set_by: str, settings: bool = True) -> bool:
    """Write an `Analysis`'s suggested max_length (and the micro-batch split the memory plan needs for it, if any)
    into the config at `path`, and in `max_length_source` the
    fingerprints of the data and the tokenizer it was measured with (train compares them). With `settings`, also
    everything `train` needs to reproduce the measurement: the model, the tokenizer when it is not the model's own,
    the chat template, the format, the overlong policy and the suggestion's settings (lengthscan writes them;
    `train --auto-maxlen`, which measured under the file's own settings, writes only max_length and its source).
    Paths are written relative to the file.
    """
    from analyze.tokenizer import other_tokenizer

    path = Path(path)
    s, t, cfg = analysis.suggestion, analysis.tokenized, analysis.cfg
    files = [p.id if isinstance(p, DatasetSource) else str(p) for p in t.paths]
    paths: dict[str, Any] = {"model": cfg.model, "chat_template": cfg.chat_template, "data": {"train": files}}
    if other_tokenizer(cfg):
        paths["tokenizer"] = cfg.tokenizer
    paths = flatten(relative_paths(paths, path.parent))
    source = {
        "set_by": set_by,
        "date": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "reason": s.reason,
        "tokenizer": t.tokenizer_name,
        "tokenizer_fingerprint": t.tokenizer_fingerprint,
        "data": list(paths["data.train"]),  # a copy: one list object twice would be written as a YAML alias
        "data_fingerprint": t.data_fingerprint,
        "records": t.records,
    }
    changes: dict[str, Any] = {"max_length": s.max_length, "max_length_source": source}
    if s.micro_batch_size:  # the memory plan split the batch differently to fit the GPU: same effective batch
        changes |= {"optim.micro_batch_size": s.micro_batch_size, "optim.grad_accum_steps": s.grad_accum_steps}
    before = read_yaml(path) if path.exists() else {}
    if not (before.get("data") or {}).get("train"):
        changes["data.train"] = paths["data.train"]  # so `train --config` finds the data just analysed
    if any(isinstance(p, DatasetSource) for p in t.paths):  # the split and subset measured
        changes |= {"data.split": cfg.data.split, "data.subset": cfg.data.subset}
    if not settings:
        return update_config(path, changes)
    changes |= {
        "model": paths["model"],
        "overlong": cfg.overlong,
        "gpu": cfg.gpu,
        "data.format": cfg.data.format,
        "suggest.policy": cfg.suggest.policy,
        "suggest.target": cfg.suggest.target,
        "suggest.round_to": cfg.suggest.round_to,
    }
    for key in ("tokenizer", "chat_template"):
        if paths.get(key) or before.get(key):  # measured with the model's own: clear the file's other tokenizer
            changes[key] = paths.get(key)
    return update_config(path, changes)
