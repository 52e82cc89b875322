"""A CSV log beside TensorBoard's: one line per log event, easy to read with pandas."""

from __future__ import annotations

import csv
from pathlib import Path

from transformers import TrainerCallback

COLUMNS = ("step", "train_loss", "eval_loss", "learning_rate", "tokens_per_second", "real_token_share")
_FROM = {"train_loss": "loss", "eval_loss": "eval_loss", "learning_rate": "learning_rate"}


class CsvLog(TrainerCallback):
    """Appends to `path` (so a resumed run continues the same file); written by the main process only.

    A run killed after its last checkpoint logged steps that the resumed run trains again: those lines are dropped
    when it resumes, so every step is in the file once.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or state.global_step == 0 or not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= state.global_step]
        if len(kept) < len(rows):
            import io

            from analyze.atomic import atomic_write

            buf = io.StringIO()
            csv.writer(buf).writerows(kept)
            atomic_write(self.path, buf.getvalue())

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


class ScheduleFromArgs(TrainerCallback):
    """A resumed run keeps this run's eval, save and logging cadence: Trainer would take them from the checkpoint's
    trainer_state.json, planned for another schedule (another max_steps, or another number of processes)."""

    def on_train_begin(self, args, state, control, **kwargs):
        state.eval_steps, state.save_steps, state.logging_steps = args.eval_steps, args.save_steps, args.logging_steps


def _fmt(v) -> str:
    return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
