"""The config as a run used it, saved beside its outputs: loadable YAML, each value commented with where it came
from, paths relative to the file (as `analyze.config.load_config` reads them back)."""

from __future__ import annotations

from pathlib import Path

from analyze import __version__
from analyze.atomic import atomic_write
from analyze.config import is_section, to_file_dict
from analyze.schema import Config
from analyze.yaml_text import commented, dump


def save_resolved(cfg: Config, prov: dict[str, str], path: Path) -> None:
    doc = commented(to_file_dict(cfg, path.parent), prov.get, is_section)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, dump(doc, f"resolved by train {__version__}: the config this run used"))
