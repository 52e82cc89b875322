"""`accelerate launch` (data-parallel) with no code change: two CPU processes split the packed rows exactly.

The test launches this file as the worker: `accelerate launch --cpu --num_processes 2 tests/test_train_distributed.py
OUT DATA`. Each rank records the rows its train dataloader yields, then trains two steps through DDP (gloo).
"""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.multiprocess

SAMPLE_FILE = Path(__file__).resolve().parents[1] / "data" / "hh-rlhf-helpful-base-test.messages.jsonl"
CHATS = 45  # packs into a row count that 2 ranks x 2 rows do not divide: the empty-row padding is needed


def _config(data: Path, out: Path):
    from analyze.config import from_dict

    return from_dict({
        "max_length": 128,
        "data": {"train": [str(data)], "eval_fraction": 0.0},
        "optim": {"micro_batch_size": 2, "grad_accum_steps": 1},
        "schedule": {"warmup": 0},
        "run": {"output_dir": str(out), "max_steps": 2, "device": "cpu", "gradient_checkpointing": False},
    })  # fmt: skip


def _rows(cfg):
    from analyze.tokenizer import load_tokenizer
    from train import data as data_mod

    tok = load_tokenizer("bundled:qwen3")
    return tok, data_mod.build(cfg, tok, data_mod.tokenize(cfg, tok, data_mod.data_files(cfg)))


def worker(out: Path, data: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from analyze.model_facts import load_model_config
    from train.model import pick_precision
    from train.smoke import tiny_config
    from train.trainer_setup import make_trainer

    cfg = _config(data, out)
    tok, prepared = _rows(cfg)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        tiny_config(load_model_config("Qwen/Qwen3-1.7B"), tok), attn_implementation="sdpa"
    )
    trainer = make_trainer(cfg, prepared, model, tok, pick_precision("cpu"), out)
    seen = []
    for batch in trainer.get_train_dataloader():
        for ids, n in zip(batch["input_ids"], batch["real_tokens"], strict=True):
            if n:
                seen.append(ids[: int(n)].tolist())
    trainer.train()
    rank = int(os.environ["RANK"])
    record = {"world": int(os.environ["WORLD_SIZE"]), "rows": seen, "steps": trainer.state.global_step}
    (out / f"rank{rank}.json").write_text(json.dumps(record))


def test_two_processes_split_packed_rows_without_overlap_or_loss(tmp_path, write_jsonl):
    launcher = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    chats = [
        {"messages": [{"role": "user", "content": f"Question {i} " + "word " * (i % 7 * 5)},
                      {"role": "assistant", "content": f"Answer {i} " + "yes " * (i % 5 * 6)}]}
        for i in range(CHATS)
    ]  # fmt: skip
    data = write_jsonl(chats)
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", __file__, str(out), str(data)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["steps"] == 2 for r in ranks)
    _, prepared = _rows(_config(data, out))
    expected = Counter(tuple(prepared.train[i]["input_ids"].tolist()) for i in range(len(prepared.train)))
    assert len(prepared.train) % 4  # not a multiple of 2 ranks x 2 rows: accelerate would repeat rows here
    got = [Counter(tuple(row) for row in r["rows"]) for r in ranks]
    assert not set(got[0]) & set(got[1])  # no row on both ranks
    assert got[0] + got[1] == expected  # every row exactly once


# --- several processes are one run: `accelerate launch -m train` on two CPU processes (gloo) ----------------------

LAUNCH = ["launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no"]  # fmt: skip


def _launcher() -> str:
    return shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}


def _steps(log: Path) -> dict:
    import csv

    with open(log) as f:
        rows = list(csv.DictReader(f))
    return {
        "train": {int(r["step"]): float(r["train_loss"]) for r in rows if r["train_loss"]},
        "eval": {int(r["step"]): float(r["eval_loss"]) for r in rows if r["eval_loss"]},
        "rows": Counter((r["step"], bool(r["train_loss"])) for r in rows),
    }


def test_a_plateau_stop_stops_both_processes(tmp_path):
    out = tmp_path / "run"
    loose = ["--schedule.plateau_max", "0.5", "--schedule.min_evals", "4", "--plateau.eval_tolerance", "0.5",
             "--plateau.train_band", "10", "--plateau.train_drift", "10", "--plateau.action", "stop"]  # fmt: skip
    cmd = [_launcher(), *LAUNCH, "-m", "train", "--smoke", "--data.train", str(SAMPLE_FILE), "--output-dir", str(out),
           *loose]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]  # both processes ended cleanly, none waits in a collective
    log = _steps(out / "log.csv")
    assert max(log["train"]) == 6  # stopped at the second evaluation that found the plateau, not at max_steps 8
    assert all(n == 1 for n in log["rows"].values())  # each step logged once, by the main process
    assert proc.stdout.count("plateau watch: stopping") == 1 and (out / "plateau.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def _even_rows_sample(tmp_path) -> Path:
    """A slice of the bundled sample whose train split packs into a multiple of 4 rows at the smoke's 256 tokens,
    so one process (2 rows × 2 micro-steps) and two (2 rows each) see the same rows in each step, unpadded."""
    from analyze.config import with_values
    from analyze.pipeline import tokenize_files
    from analyze.schema import Config
    from analyze.tokenizer import load_tokenizer
    from train.data import build

    tok = load_tokenizer("bundled:qwen3")
    lines = SAMPLE_FILE.read_text().splitlines(keepends=True)
    for n in range(200, 260):
        path = tmp_path / f"sample{n}.jsonl"
        path.write_text("".join(lines[:n]))
        data = build(with_values(Config(), {"max_length": 256}), tok, tokenize_files([path], tok, keep_ids=True))
        if len(data.train) % 4 == 0:
            return path
    raise AssertionError("no slice packs into a multiple of 4 rows")


def test_one_and_two_processes_train_the_same(tmp_path):
    """Same losses, and the same gradients of the lowest layer's adapters at the second optimizer step (at the first,
    lora_B is still zero, so lora_A has no gradient): a gradient that does not reach the bottom of the model (a 4-bit
    layer without a backward) would show there first."""
    import torch

    data = _even_rows_sample(tmp_path)
    common = ["--smoke", "--data.train", str(data), "--lora.dropout", "0", "--optim.micro_batch_size", "2"]
    one, two = tmp_path / "one", tmp_path / "two"
    single = [sys.executable, __file__, "grads", str(one / "grads.pt"), *common, "--optim.grad_accum_steps", "2",
              "--output-dir", str(one)]  # fmt: skip
    subprocess.run(single, env=_env(), check=True, capture_output=True, timeout=600)
    double = [_launcher(), *LAUNCH, __file__, "grads", str(two / "grads.pt"), *common, "--optim.grad_accum_steps", "1",
              "--output-dir", str(two)]  # fmt: skip
    proc = subprocess.run(double, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _steps(one / "log.csv"), _steps(two / "log.csv")
    assert set(a["train"]) == set(b["train"]) == set(range(1, 9)) and set(a["eval"]) == set(b["eval"]) == {0, 4, 8}
    for kind in ("train", "eval"):
        for step, loss in a[kind].items():
            assert abs(loss - b[kind][step]) <= 1e-3 * loss, (kind, step, loss, b[kind][step])
    ga, gb = torch.load(one / "grads.pt"), torch.load(two / "grads.pt")
    assert ga.keys() == gb.keys() and {n for n in ga if "lora_B" in n} and {n for n in ga if "lora_A" in n}
    for name, grad in ga.items():
        assert grad.abs().sum() > 0, name  # the eval at step 0 came first: the gradient still reaches layer 0
        torch.testing.assert_close(gb[name], grad, rtol=1e-3, atol=1e-7, msg=name)


def lowest_layer_grads(path: Path, argv: list[str]) -> None:
    """Worker: `train` with a callback that saves the lowest decoder layer's LoRA gradients at the second optimizer
    step (after the all-reduce, before the update), from the main process."""
    import torch
    from transformers import TrainerCallback

    import train.fit as fit_mod
    from train.cli import main

    class SaveGrads(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if state.global_step == 1 and int(os.environ.get("RANK", 0)) == 0:
                grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                         if p.requires_grad and ".layers.0." in n}  # fmt: skip
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(grads, path)

    make = fit_mod.make_trainer

    def with_callback(*args, **kwargs):
        trainer = make(*args, **kwargs)
        trainer.add_callback(SaveGrads())
        return trainer

    fit_mod.make_trainer = with_callback
    sys.exit(main(argv))


def test_a_non_finite_loss_on_one_process_stops_both(tmp_path):
    out, ranks = tmp_path / "run", tmp_path / "ranks"
    cmd = [_launcher(), *LAUNCH, __file__, "nan-on-rank-1", str(ranks), "--smoke", "--data.train", str(SAMPLE_FILE),
           "--output-dir", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    rcs = [int((ranks / f"rank{r}.rc").read_text()) for r in (0, 1)]
    errs = [(ranks / f"rank{r}.err").read_text() for r in (0, 1)]
    assert rcs == [2, 2], (rcs, proc.stderr[-3000:])  # the same exit status on both
    lines = [line for line in errs[0].splitlines() if line.startswith("train: error:")]
    assert len(lines) == 1 and "the training loss became nan at step 2" in lines[0]  # said once, by the main process
    assert "train: error:" not in errs[1] and "Traceback" not in errs[0] + errs[1]
    assert not (out / "adapter").exists()


def test_decisions_and_writes_happen_once_on_cpu_launches_too(tmp_path):
    """accelerate calls every CPU process "main"; train/ranks.py asks the process group, so actions run once."""
    proc = subprocess.run([_launcher(), *LAUNCH, __file__, "once", str(tmp_path)], env=_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "decided.txt").read_text() == "0\n"  # written by the main process alone
    assert sorted((tmp_path / "first.txt").read_text().split()) == ["0", "1"]  # main_first: every process, main first
    assert (tmp_path / "first.txt").read_text().split()[0] == "0"
    assert sorted((tmp_path / "results.txt").read_text().split()) == ["0:0", "1:0"]  # everyone got main's result


def once(out: Path) -> None:
    from train.ranks import decided_by_main, main_first

    rank = os.environ["RANK"]

    def append(name: str, text: str) -> str:
        with open(out / name, "a") as f:
            f.write(text + "\n")
        return rank

    result = decided_by_main(lambda: append("decided.txt", rank))
    main_first(lambda: append("first.txt", rank))
    append("results.txt", f"{rank}:{result}")


def nan_on_rank_1(out: Path, argv: list[str]) -> None:
    """Worker: `train` with the loss of rank 1's third training micro-batch (step 2) made nan; exit code and stderr
    of each rank go to files."""
    import contextlib

    import torch

    import train.trainer as trainer_mod
    from train.cli import main

    rank = int(os.environ["RANK"])
    real, calls = trainer_mod.loss_sum, []

    def poisoned(*args):
        total, count, outputs = real(*args)
        if total.requires_grad:
            calls.append(1)
            if rank == 1 and len(calls) == 3:
                total = total * torch.tensor(float("nan"))
        return total, count, outputs

    trainer_mod.loss_sum = poisoned
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"rank{rank}.err", "w") as err, contextlib.redirect_stderr(err):
        rc = main(argv)
    (out / f"rank{rank}.rc").write_text(str(rc))
    sys.exit(rc)


if __name__ == "__main__":
    if sys.argv[1] == "nan-on-rank-1":
        nan_on_rank_1(Path(sys.argv[2]), sys.argv[3:])
    elif sys.argv[1] == "grads":
        lowest_layer_grads(Path(sys.argv[2]), sys.argv[3:])
    elif sys.argv[1] == "once":
        once(Path(sys.argv[2]))
    else:
        worker(Path(sys.argv[1]), Path(sys.argv[2]))
