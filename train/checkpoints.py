"""A run's output folder: which checkpoint a run resumes from, and what it may overwrite.

A smoke run writes only into an empty folder or an earlier smoke run's (marked by `SMOKE_MARKER`); a real run never
starts in, or resumes, a smoke run's folder, nor overwrites a real run's checkpoints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from analyze.errors import UserError
from train.outputs import RUN_LOGS, SMOKE_MARKER, SMOKE_OUTPUTS


def last_complete_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint that finished saving: Trainer writes trainer_state.json last, so a run killed while
    saving leaves a newer folder without a readable one, which is passed over."""
    folders = [p for p in out.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            return folder
        except (OSError, ValueError):
            continue
    return None


def check_output_dir(out: Path, resume: bool, smoke: bool, dry_run: bool = False) -> Path | None:
    """The checkpoint to resume from, if any, after the folder's rules (above) are checked; an earlier smoke run's
    outputs are removed and a stopped run's logs cleared. With `dry_run`, the same checks and nothing removed."""
    marked = (out / SMOKE_MARKER).is_file()
    if marked and not smoke:
        raise UserError(
            f"{out} holds a --smoke run (a tiny random model); choose another --run.output_dir for the real run"
        )
    if smoke and not resume:
        if marked:
            if not dry_run:
                _remove_smoke_outputs(out)  # an earlier smoke run: throwaway by design
            return None
        if out.is_dir() and any(out.iterdir()):
            raise UserError(
                f"{out} is not empty and holds no --smoke run; give --smoke an empty or new folder with --output-dir"
            )
    found = sorted(p.name for p in out.glob("checkpoint-*")) if out.is_dir() else []
    last = last_complete_checkpoint(out) if found else None
    if resume and last is None:
        raise UserError(
            f"--resume: no complete checkpoint-* folder in {out}; start without --resume or set run.output_dir"
        )
    if not resume and found:
        raise UserError(
            f"{out} already holds checkpoints ({found[-1]}); pass --resume to continue that run, "
            "or choose another --run.output_dir"
        )
    if not resume and not dry_run and out.is_dir():
        for name in RUN_LOGS:  # left by a run stopped before its first checkpoint
            (out / name).unlink(missing_ok=True)
    return last


def _remove_smoke_outputs(out: Path) -> None:
    """What a smoke run writes, and nothing else: the folder was marked as a smoke run's when it was empty."""
    for p in list(out.iterdir()):
        if p.name in SMOKE_OUTPUTS or p.name.startswith("checkpoint-"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
