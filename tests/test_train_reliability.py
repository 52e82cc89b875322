"""Interrupted and diverging runs: a killed run resumes where it was; a nan loss stops with the last good checkpoint."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

import train.fit as fit_mod
from analyze.errors import UserError
from tests.conftest import REPO, SAMPLE
from train.cli import run_from_args

# 8 steps, a checkpoint (and an eval) every 2
SMOKE = ["--smoke", "--data.train", str(SAMPLE), "--schedule.min_evals", "4", "--run.logging_steps", "1"]


def log_rows(path):
    with open(path) as f:
        return [r for r in csv.DictReader(f) if r["train_loss"]]


@pytest.mark.kill
def test_killed_run_resumes_with_the_same_data_order_and_schedule(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    schedule = ["--optim.lr_scheduler", "cosine"]  # a schedule that moves every step
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "train", *SMOKE, *schedule]
    subprocess.run([*cmd, "--output-dir", str(reference)], check=True, env=env, capture_output=True)

    proc = subprocess.Popen(
        [*cmd, "--output-dir", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while not (killed / "checkpoint-4").is_dir():  # killed mid-run, after a checkpoint and before the end
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "adapter").exists()

    resumed = subprocess.run([*cmd, "--output-dir", str(killed), "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ref = {int(r["step"]): r for r in log_rows(reference / "log.csv")}
    after = {int(r["step"]): r for r in log_rows(killed / "log.csv")}  # the killed run's lines, then the resumed
    assert set(after) == set(ref) == set(range(1, 9))
    with open(killed / "log.csv") as f:  # every step once: the lines logged after checkpoint-4 were dropped
        kinds = Counter((r["step"], bool(r["train_loss"])) for r in csv.DictReader(f))
    assert all(n == 1 for n in kinds.values()), kinds
    assert ("0", False) in kinds and ("4", False) in kinds  # the start's eval, not repeated on resume
    judged = [json.loads(line)["step"] for line in (killed / "watch.jsonl").read_text().splitlines()]
    assert judged == [0, 2, 4, 6, 8]  # the plateau watch's verdicts too: each evaluation once
    for step in range(5, 9):  # the steps trained after the resume
        a, r = after[step], ref[step]
        assert float(a["learning_rate"]) == pytest.approx(float(r["learning_rate"]), rel=1e-6)  # schedule position
        assert a["real_token_share"] == r["real_token_share"]  # the same packed rows in the same order
        # the same model state, up to bitsandbytes' CPU re-encoding of 4-bit blocks on reload (about 1e-3 here)
        assert float(a["train_loss"]) == pytest.approx(float(r["train_loss"]), abs=0.02)


@pytest.mark.training
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """An overflow that corrupts a weight after step 5 (as fp16 trouble would): the run stops at step 6."""
    from transformers import TrainerCallback

    class Overflow(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step == 5:
                lora = next(p for n, p in model.named_parameters() if "lora_A" in n)
                with torch.no_grad():
                    lora.fill_(float("inf"))

    make = fit_mod.make_trainer

    def with_overflow(*args, **kwargs):
        trainer = make(*args, **kwargs)
        trainer.add_callback(Overflow())
        return trainer

    monkeypatch.setattr(fit_mod, "make_trainer", with_overflow)
    out = tmp_path / "run"
    with pytest.raises(UserError) as err:
        run_from_args([*SMOKE, "--output-dir", str(out)])
    message = str(err.value)
    assert "loss became nan at step 6" in message or "loss became inf at step 6" in message
    assert "checkpoint-4" in message and "--resume" in message and "--optim.learning_rate" in message
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    weights = load_file(out / "checkpoint-4" / "adapter_model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())  # the kept checkpoint is a good one
    assert not (out / "adapter").exists()
