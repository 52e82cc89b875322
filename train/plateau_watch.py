"""The plateau watch as a Trainer callback: at every evaluation, judge the history and act on the config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from analyze.config import Config
from train.plateau import Verdict, check
from train.plateau_report import REPORT, StepScale, summary_lines, write_plateau_report
from train.ranks import from_main


class PlateauWatch(TrainerCallback):
    """Checks the guide's signs after each evaluation; writes the advice once, and stops if `plateau.action: stop`."""

    def __init__(
        self,
        cfg: Config,
        out_dir: Path,
        window_steps: int,
        scale: StepScale | None = None,
        analysis=None,
        base_text: str | None = None,
        say: Callable[[str], None] = print,
        resuming: bool = False,
    ):
        self.cfg, self.out_dir, self.window_steps = cfg, Path(out_dir), window_steps
        self.scale, self.analysis, self.base_text, self.say = scale, analysis, base_text, say
        self.verdict: Verdict | None = None
        self.reported = resuming and (self.out_dir / REPORT).is_file()  # the advice is written once per run

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        train, evals = history(state.log_history)
        if metrics and "eval_loss" in metrics and (not evals or evals[-1][0] != state.global_step):
            evals.append((state.global_step, float(metrics["eval_loss"])))
        # Rank 0 judges and every rank obeys: a stop taken by one process alone would leave the others waiting in
        # their next collective. (The histories are the same on every rank; the broadcast makes it certain.)
        verdict = check(evals, train, self.cfg.plateau, self.window_steps) if state.is_world_process_zero else None
        self.verdict = verdict = from_main(verdict)
        if not verdict.found:
            return
        if not self.reported and state.is_world_process_zero:
            for line in summary_lines(verdict, self.scale):
                self.say(f"plateau watch: {line}")
            options = write_plateau_report(self.out_dir, verdict, self.cfg, self.scale, self.analysis, self.base_text)
            first = ", ".join(f"{k}={v}" for k, v in options[0].change.items())
            self.say(f"plateau watch: next run: {first} → {self.out_dir / 'next_config.yaml'} (all levers: plateau.md)")
        self.reported = True
        if self.cfg.plateau.action == "stop":  # also after a resume that found the advice already written
            self.say("plateau watch: stopping (plateau.action: stop); the last checkpoint is kept")
            control.should_training_stop = True
            control.should_save = True


def history(log_history: list[dict]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, train loss) and (step, eval loss) points from `TrainerState.log_history`.

    >>> history([{"step": 10, "loss": 3.0}, {"step": 10, "eval_loss": 3.2}, {"step": 20, "train_runtime": 1.0}])
    ([(10, 3.0)], [(10, 3.2)])
    """
    train = {h["step"]: float(h["loss"]) for h in log_history if "loss" in h}  # one point per step: the last
    evals = {h["step"]: float(h["eval_loss"]) for h in log_history if "eval_loss" in h}
    return sorted(train.items()), sorted(evals.items())
