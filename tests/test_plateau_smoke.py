"""The plateau watch inside a real `--smoke` run: its logs judged, advice written, `plateau.action: stop` obeyed."""

import csv
import json

import pytest

from analyze.config import load_config
from tests.conftest import SAMPLE
from train.cli import main, run_from_args
from train.loss_plot import read_log
from train.plateau.judge import judge

pytestmark = pytest.mark.training


def test_a_smoke_run_is_watched_not_judged_and_stops_on_request(tmp_path, capsys):
    """A random tiny model's losses say nothing about the user's model: the watch runs (watch.jsonl, plateau.action:
    stop obeyed) and its report says what it would have written — no levers, no next_config.yaml."""
    out = tmp_path / "run"
    config = tmp_path / "mine.yaml"
    config.write_text(f"# my smoke check\ndata:\n  train: [{SAMPLE}]\nlora:\n  r: 8  # small\n  alpha: 8\n")
    # thresholds loose enough that 4 steps of a random model count as "flat": the mechanics, not the judgement
    # an evaluation every 2 steps, a window of 4
    loose = ["--schedule.plateau_max", "0.5", "--schedule.min_evals", "4", "--plateau.eval_tolerance", "0.5",
             "--plateau.train_band", "10", "--plateau.train_drift", "10", "--plateau.action", "stop"]  # fmt: skip
    run_from_args(["--config", str(config), "--smoke", "--output-dir", str(out), *loose])
    printed = capsys.readouterr().out
    assert "plateau watch (smoke run, not judged): plateau at step 6 would have been reported" in printed
    assert "no levers, no next_config.yaml" in printed
    assert "plateau watch: plateau at step 6" not in printed and "2.3–2.5" not in printed  # no advice, no floor
    assert "stopping (plateau confirmed at step 6, plateau.action: stop)" in printed

    with open(out / "log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert max(steps) == 6  # stopped where the plateau was confirmed (its second evaluation), not at max_steps 8
    doc = json.loads((out / "plateau.json").read_text())
    assert doc["verdict"] == "plateau" and doc["window"]["steps"][1] == 6  # written once, when confirmed
    assert doc["window"]["conversations"] > 4 * 4  # packed rows hold several conversations per step
    assert doc["levers"] == [] and doc["next_config"] is None and doc["next_config_change"] == {}
    assert doc["loss_floor"] is None
    assert not (out / "next_config.yaml").exists()  # never a config `train` would refuse ("holds a --smoke run")
    smoke = doc["smoke"]
    assert "no next_config.yaml" in smoke["note"]
    # what --smoke set, as its provenance says (the folder was given on the command line: not --smoke's)
    assert smoke["settings"]["run.device"] == "cpu" and smoke["settings"]["run.max_steps"] == 8
    assert "run.output_dir" not in smoke["settings"] and "plateau.action" not in smoke["settings"]
    would = smoke["would_have_written"]  # what a real run with this config would have been told
    assert would[0].startswith("1. Increase LoRA rank: lora.r=16, lora.alpha=16")  # from this run's r=8
    assert would[4].startswith("5. ") and "% of conversations are longer" in would[4]  # this run's own numbers
    md = (out / "plateau.md").read_text()
    assert "(a smoke run: not judged)" in md and "What it would have written for a real run" in md
    assert "train --config next_config.yaml" not in md
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"

    # the same verdicts from the log on disk: `train watch` replays every evaluation as the live watch judged it
    live = [json.loads(line) for line in (out / "watch.jsonl").read_text().splitlines()]
    assert main(["watch", str(out), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert [(e["step"], e["verdict"]) for e in replayed["per_eval"]] == [(e["step"], e["verdict"]) for e in live]
    # steady: the plateau found at step 4 is given when it holds again at 6
    assert [e["verdict"] for e in live] == ["too_early", "too_early", "too_early", "plateau"]
    assert replayed["first_warning_step"] == 6 and replayed["window_steps"] == 4
    assert replayed["advice"] == [] and "--smoke run" in replayed["note"]  # replayed, still no levers
    # and `train plot RUN_DIR` redraws the figure on demand
    (out / "loss_curve.png").unlink()
    assert main(["plot", str(out)]) == 0 and (out / "loss_curve.png").is_file()


def test_the_guides_window_is_fitted_to_a_short_run(tmp_path, capsys):
    """4 smoke steps are far from the guide's 1000: taken literally the watch could never judge; the schedule
    fits the window into the run and says so."""
    out = tmp_path / "run"
    run_from_args(["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(out), "--run.max_steps", "4"])
    printed = capsys.readouterr().out
    assert "plateau window: 1000 guide steps = 4,000 conversations" in printed
    assert "capped at 2, 25% of the run (schedule.plateau_max)" in printed
    train, evals, _ = read_log(out / "log.csv")
    assert judge(evals, train, load_config(out / "config.yaml").plateau, 1000).kind == "too_early"
    assert (out / "loss_curve.png").is_file()
