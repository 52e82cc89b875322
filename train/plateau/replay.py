"""`train watch PATH`: the plateau watch on any run's log, after the fact — replaying every evaluation exactly as
the live watch judged it (the same `train.plateau.judge.judge_all` on the history up to that evaluation).

PATH is a `train` output folder (log.csv, with the config and window the run used), or any Hugging Face Trainer
`trainer_state.json` — TRL, axolotl, unsloth and LLaMA-Factory write one into each checkpoint folder — or a folder
holding one (the newest checkpoint's is taken). For a foreign log the window is the guide's 1000 steps read as that
run's own steps, at most `schedule.plateau_max` of the run, and the levers start from the run's own values where the
state has them (`train.plateau.foreign.config_from_state`; LoRA rank and alpha from an adapter_config.json beside
it); the report names the ones that were unknown.

Nothing here imports torch (or transformers' Trainer): replaying a log takes well under a second.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from analyze.config import load_config
from analyze.errors import UserError
from analyze.schema import Config
from train.loss_plot import read_log
from train.outputs import LOG_CSV, RESOLVED_CONFIG, SMOKE_MARKER, VERDICTS_LOG
from train.plateau.advice import advice_for
from train.plateau.foreign import Points, config_from_state, foreign_window, history, values_lines
from train.plateau.judge import Verdict, judge_all


@dataclass
class RunLog:
    source: str
    train: Points
    evals: Points
    lrs: Points
    window_steps: int
    cfg: Config
    total_steps: int | None
    # a foreign log's lever values: where each came from (None: unknown, this project's default); None for a
    # `train` folder, whose config.yaml holds them all
    values: dict[str, str | None] | None = None
    steps_per_epoch: int = 0
    smoke: bool = False  # a `train --smoke` folder: a random tiny model, watched but never advised


SMOKE_NOTE = "a --smoke run (a random tiny model): its losses say nothing about a real run, so no levers"


def replay(log: RunLog) -> list[Verdict]:
    """The steady verdict at each evaluation, from the history up to it (as the live watch gave it)."""
    return judge_all(log.evals, log.train, log.cfg.plateau, log.window_steps, log.lrs)


def watch_report(log: RunLog) -> dict:
    """The `train watch --json` document."""
    verdicts = replay(log)
    last = verdicts[-1] if verdicts else Verdict("too_early", 0, evidence=["no evaluation in the log"])
    warned = next((v.step for v in verdicts if v.found), None)
    best = min(log.evals, key=lambda e: e[1])[0] if log.evals else None
    return {
        "source": log.source,
        "verdict": last.kind,
        "step": last.step,
        "evidence": last.evidence,
        "first_warning_step": warned,
        "window_steps": log.window_steps,
        "per_eval": [{"step": v.step, "verdict": v.kind} for v in verdicts],
        "advice": []
        if log.smoke
        else [asdict(lv) for lv in advice_for(last.kind, log.cfg, None, best, log.steps_per_epoch)],
        "note": SMOKE_NOTE if log.smoke else None,
        "values": log.values,  # null: a `train` run's own config
        "values_lines": values_lines(log.values, log.cfg) if log.values is not None else [],
    }


def load_log(path: str | Path) -> RunLog:
    """A run's history from a `train` output folder or a Trainer trainer_state.json (or a folder with one)."""
    path = Path(path)
    if path.is_dir() and (path / LOG_CSV).is_file():
        return _from_train_folder(path)
    state = path if path.is_file() else _newest_state(path)
    try:
        doc = json.loads(state.read_text(encoding="utf-8"))
        train, evals, lrs = history(doc["log_history"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{state}: not a readable trainer_state.json ({type(e).__name__}: {e}); pass a run folder "
                        f"with {LOG_CSV} or a Trainer trainer_state.json") from None  # fmt: skip
    cfg, values = config_from_state(doc, lrs, _adapter_config(state.parent))
    total = doc.get("max_steps") or (evals[-1][0] if evals else None)
    epochs = doc.get("num_train_epochs")
    per_epoch = round(total / epochs) if total and isinstance(epochs, (int, float)) and epochs > 0 else 0
    window = foreign_window(cfg, total, doc.get("eval_steps"))
    return RunLog(str(state), train, evals, lrs, window, cfg, total, values, per_epoch)


def _adapter_config(folder: Path) -> dict | None:
    """The PEFT adapter_config.json beside a trainer_state.json (a checkpoint folder holds both), if readable."""
    try:
        doc = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _from_train_folder(folder: Path) -> RunLog:
    cfg = load_config(folder / RESOLVED_CONFIG) if (folder / RESOLVED_CONFIG).is_file() else Config()
    train, evals, lrs = read_log(folder / LOG_CSV)
    window = None
    if (folder / VERDICTS_LOG).is_file():  # the window the live watch used
        lines = [json.loads(x) for x in (folder / VERDICTS_LOG).read_text().splitlines() if x.strip()]
        window = next((x.get("window_steps") for x in reversed(lines) if x.get("window_steps")), None)
    total = max([s for s, _ in train + evals], default=None)
    if window is None:
        window = foreign_window(cfg, total, None)
    smoke = (folder / SMOKE_MARKER).is_file()
    return RunLog(str(folder / LOG_CSV), train, evals, lrs, window, cfg, total, smoke=smoke)


def _newest_state(folder: Path) -> Path:
    if (folder / "trainer_state.json").is_file():
        return folder / "trainer_state.json"
    found = sorted(folder.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))
    if not found:
        raise UserError(f"{folder}: no {LOG_CSV} and no trainer_state.json here; pass a run folder or the json file")
    return found[-1]
