"""A CSV log beside TensorBoard's: one line per log event, easy to read with pandas."""

from __future__ import annotations

import csv
from pathlib import Path

from transformers import TrainerCallback

COLUMNS = ("step", "train_loss", "eval_loss", "learning_rate", "tokens_per_second", "real_token_share")
_FROM = {"train_loss": "loss", "eval_loss": "eval_loss", "learning_rate": "learning_rate"}


class CsvLog(TrainerCallback):
    """Appends to `path` (so a resumed run continues the same file); written by the main process only."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if not any(k in logs for k in ("loss", "eval_loss")):
            return  # the end-of-training summary has its own keys
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(COLUMNS)
            w.writerow([state.global_step] + [_fmt(logs.get(_FROM.get(c, c))) for c in COLUMNS[1:]])


def _fmt(v) -> str:
    return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
