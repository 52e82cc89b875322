"""The plateau watch as a Trainer callback: at every evaluation, judge the history and act on the config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from analyze.config import Config
from train.plateau import Verdict, check
from train.plateau_report import StepScale, summary_lines, write_plateau_report


class PlateauWatch(TrainerCallback):
    """Checks the guide's signs after each evaluation; writes the advice once, and stops if `plateau.action: stop`."""

    def __init__(
        self,
        cfg: Config,
        out_dir: Path,
        scale: StepScale | None = None,
        analysis=None,
        base_text: str | None = None,
        say: Callable[[str], None] = print,
    ):
        self.cfg, self.out_dir, self.scale, self.analysis, self.base_text, self.say = (
            cfg,
            Path(out_dir),
            scale,
            analysis,
            base_text,
            say,
        )
        self.verdict: Verdict | None = None
        self.reported = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        train, evals = history(state.log_history)
        if metrics and "eval_loss" in metrics and (not evals or evals[-1][0] != state.global_step):
            evals.append((state.global_step, float(metrics["eval_loss"])))
        self.verdict = check(evals, train, self.cfg.plateau)
        if not self.verdict.found or self.reported or not state.is_world_process_zero:
            return
        self.reported = True
        for line in summary_lines(self.verdict, self.scale):
            self.say(f"plateau watch: {line}")
        options = write_plateau_report(self.out_dir, self.verdict, self.cfg, self.scale, self.analysis, self.base_text)
        first = ", ".join(f"{k}={v}" for k, v in options[0].change.items())
        self.say(f"plateau watch: next run: {first} → {self.out_dir / 'next_config.yaml'} (all levers: plateau.md)")
        if self.cfg.plateau.action == "stop":
            self.say("plateau watch: stopping (plateau.action: stop); the last checkpoint is kept")
            control.should_training_stop = True
            control.should_save = True


def history(log_history: list[dict]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, train loss) and (step, eval loss) points from `TrainerState.log_history`.

    >>> history([{"step": 10, "loss": 3.0}, {"step": 10, "eval_loss": 3.2}, {"step": 20, "train_runtime": 1.0}])
    ([(10, 3.0)], [(10, 3.2)])
    """
    train = [(h["step"], float(h["loss"])) for h in log_history if "loss" in h]
    evals = [(h["step"], float(h["eval_loss"])) for h in log_history if "eval_loss" in h]
    return train, evals
