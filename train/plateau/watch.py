"""The plateau watch as a Trainer callback: at every evaluation, judge the history and act on the config.

The verdict comes from `train.plateau.judge.judge_all` (steady: it changes only on evidence beyond the noise) on the
same history `train watch` replays from log.csv, so the live verdicts and the offline ones are the same; each is
appended to watch.jsonl. The advice (`train.plateau.report`:
plateau.json, plateau.md, next_config.yaml) is written when a verdict asks the user to act and rewritten when that
verdict changes; `plateau.action: stop` stops the run at the first such verdict (a steady verdict is a confirmed one).

A `--smoke` run (`smoke`: the settings it set) is watched but not judged: its report says what the watch would have
written, with no levers and no next_config.yaml. `train.plateau.callback.PlateauCallback` is this watch configured
from another Trainer's arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from analyze.schema import Config
from train.outputs import NEXT_CONFIG, REPORT, REPORT_MD, VERDICTS_LOG
from train.plateau.foreign import history
from train.plateau.judge import Verdict, judge_all
from train.plateau.report import StepScale, summary_lines, write_plateau_report
from train.ranks import from_main

STOPS_ON = ("plateau", "overfitting", "unstable")


class PlateauWatch(TrainerCallback):
    """Judges the guide's signs after each evaluation; writes the advice when it changes; stops on request."""

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
        steps_per_epoch: int = 0,
        smoke: dict | None = None,
        values: dict[str, str | None] | None = None,
    ):
        self.cfg, self.out_dir, self.window_steps = cfg, Path(out_dir), window_steps
        self.scale, self.analysis, self.base_text, self.say = scale, analysis, base_text, say
        self.steps_per_epoch = steps_per_epoch
        self.smoke = smoke  # the settings --smoke set; None for a real run
        self.values = values  # a foreign run's lever values and where each came from (train.plateau.foreign)
        self.verdict: Verdict | None = None
        report = self.out_dir / REPORT
        # the advice is written once per verdict, across a kill and --resume too
        self.reported = json.loads(report.read_text()).get("verdict") if resuming and report.is_file() else None

    def on_train_begin(self, args, state, control, **kwargs):
        """A resumed run judges again the evaluations after its checkpoint: their old verdict lines go."""
        log = self.out_dir / VERDICTS_LOG
        if not state.is_world_process_zero or state.global_step == 0 or not log.is_file():
            return
        lines = [x for x in log.read_text().splitlines() if x.strip()]
        kept = [x for x in lines if json.loads(x)["step"] <= state.global_step]
        if len(kept) < len(lines):
            from analyze.atomic import atomic_write

            atomic_write(log, "".join(x + "\n" for x in kept))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        train, evals, lrs = history(state.log_history)
        if metrics and "eval_loss" in metrics and (not evals or evals[-1][0] != state.global_step):
            evals.append((state.global_step, float(metrics["eval_loss"])))
        # Rank 0 judges and every rank obeys: a stop taken by one process alone would leave the others waiting in
        # their next collective. (The histories are the same on every rank; the broadcast makes it certain.)
        main = state.is_world_process_zero
        verdict = judge_all(evals, train, self.cfg.plateau, self.window_steps, lrs)[-1] if main else None
        self.verdict = verdict = from_main(verdict)
        if main:
            with open(self.out_dir / VERDICTS_LOG, "a") as f:
                line = {"step": verdict.step, "verdict": verdict.kind, "window_steps": self.window_steps}
                f.write(json.dumps(line) + "\n")
        if not verdict.found:
            return
        if verdict.kind != self.reported and main:
            self._report(verdict, evals)
        self.reported = verdict.kind
        # a steady verdict is a confirmed one (`judge_all`: at two evaluations in a row, or at once beyond twice its
        # threshold), so the first one that asks to act is the one to stop on
        if self.cfg.plateau.action == "stop" and verdict.kind in STOPS_ON:
            self.say(f"plateau watch: stopping ({verdict.kind} confirmed at step {verdict.step}, plateau.action: stop)")
            control.should_training_stop = True
            control.should_save = True

    def _report(self, verdict: Verdict, evals: list[tuple[int, float]]) -> None:
        """Say what the watch found and write its report (plateau.json, plateau.md, next_config.yaml)."""
        best_step = min(evals, key=lambda e: e[1])[0] if evals else None
        options = write_plateau_report(
            self.out_dir, verdict, self.cfg, self.scale, self.analysis, self.base_text, best_step,
            self.steps_per_epoch, smoke=self.smoke, values=self.values,
        )  # fmt: skip
        if self.smoke is not None:
            self.say(f"plateau watch (smoke run, not judged): {verdict.kind} at step {verdict.step} would have been "
                     f"reported; a random tiny model's losses say nothing about yours: no levers, no {NEXT_CONFIG} "
                     f"({self.out_dir / REPORT_MD})")  # fmt: skip
            return
        for line in summary_lines(verdict, self.scale):
            self.say(f"plateau watch: {line}")
        first = ", ".join(f"{k}={v}" for k, v in options[0].change.items())
        if first and self.values is None:
            where = f"{first} → {self.out_dir / NEXT_CONFIG}"
        else:
            where = f"{first} in your config" if first else options[0].why
        self.say(f"plateau watch: {options[0].title.lower()}: {where} (all advice: {self.out_dir / REPORT_MD})")
