"""One training run, start to end: `prepare` (everything before the model loads), then `train` unless a dry run.

`run()` is a plain function (the CLI is a thin layer over it); each step prints one line of what it decided.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from analyze.schema import Config
from train.fit import RunResult, train
from train.prepare import Prepared, prepare


def run(
    cfg: Config,
    prov: dict[str, str],
    config_path: Path | None = None,
    smoke: bool = False,
    auto_maxlen: bool = False,
    resume: bool = False,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    argv: list[str] | None = None,
) -> Prepared | RunResult:
    """The `Prepared` run when `dry_run`, else the `RunResult` of training it. `argv`: the command line this run came
    from (`train.prepare.prepare`)."""
    prepared = prepare(cfg, prov, config_path, smoke, auto_maxlen, resume, dry_run, say, argv)
    if dry_run:
        say("dry run: stopped before loading the model")
        return prepared
    return train(prepared, say)
