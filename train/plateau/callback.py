"""The plateau watch in any transformers Trainer — TRL's SFTTrainer, a plain Trainer, axolotl's — as one callback:

    from train.plateau import PlateauCallback

    trainer = SFTTrainer(model=..., args=SFTConfig(eval_strategy="steps", eval_steps=50, ...), train_dataset=...,
                         eval_dataset=..., callbacks=[PlateauCallback()])      # or PlateauCallback(action="stop")

It is `PlateauWatch` configured from the Trainer at the start of training, so its verdicts are the ones `train watch`
gives on the same run's trainer_state.json: the same judge, the same window (`train.plateau.foreign.foreign_window`
of the run's max_steps and eval_steps), the same plateau thresholds (this project's defaults unless `plateau` is
given). The levers start from the run's own values (`config_from_args`: TrainingArguments and the model's
LoraConfig). It writes watch.jsonl, plateau.json and plateau.md into the Trainer's output_dir — no next_config.yaml:
that is a `train` config — and with `action="stop"` ends the run on every process at the first confirmed verdict
that asks to act (plateau, overfitting, unstable).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

from analyze.config import with_values
from analyze.schema import Config, PlateauConfig
from train.outputs import REPORT
from train.plateau.foreign import config_from_args, foreign_window
from train.plateau.watch import PlateauWatch


class PlateauCallback(PlateauWatch):
    """The tuning guide's plateau watch for any `transformers.Trainer`; see the module's docstring."""

    def __init__(
        self,
        action: str = "warn",
        plateau: PlateauConfig | None = None,
        output_dir: str | Path | None = None,
        say: Callable[[str], None] = print,
    ):
        """`action`: "warn" (print and write the advice) or "stop" (also end the run); `plateau`: the judge's
        thresholds (`analyze.schema.PlateauConfig`, the guide's by default); `output_dir`: where the reports go
        (default: the Trainer's output_dir)."""
        base = dataclasses.replace(Config(), plateau=plateau) if plateau else Config()
        self.settings = with_values(base, {"plateau.action": action})  # checked: warn or stop
        self.own_dir = output_dir
        super().__init__(self.settings, Path(output_dir or "."), window_steps=1, say=say)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        """Read the run: its folder, window and values (the state holds max_steps and eval_steps by now)."""
        self.out_dir = Path(self.own_dir or args.output_dir)
        if state.is_world_process_zero:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        cfg, self.values = config_from_args(args, state, model)
        self.cfg = dataclasses.replace(cfg, plateau=self.settings.plateau, schedule=self.settings.schedule)
        self.window_steps = foreign_window(self.cfg, state.max_steps, state.eval_steps)
        epochs = getattr(state, "num_train_epochs", 0) or 0
        self.steps_per_epoch = math.ceil(state.max_steps / epochs) if state.max_steps and epochs else 0
        report = self.out_dir / REPORT
        if state.global_step > 0 and report.is_file():  # resumed: its advice was written once already
            self.reported = json.loads(report.read_text()).get("verdict")
        super().on_train_begin(args, state, control, **kwargs)
