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

CHATS = 45  # packs into a row count that 2 ranks x 2 rows do not divide: the empty-row padding is needed


def _config(data: Path, out: Path):
    from analyze.config import from_dict

    return from_dict({
        "max_length": 128,
        "data": {"train": [str(data)], "eval_fraction": 0.0},
        "optim": {"micro_batch_size": 2, "grad_accum_steps": 1, "warmup_steps": 0},
        "run": {"output_dir": str(out), "max_steps": 2, "device": "cpu", "gradient_checkpointing": False},
    })  # fmt: skip


def _rows(cfg):
    from analyze.tokenizer import load_tokenizer
    from train import data as data_mod

    tok = load_tokenizer("bundled:qwen3")
    return tok, data_mod.build(cfg, tok, data_mod.tokenize(cfg, tok, cfg.data.train))


def worker(out: Path, data: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from train.model import load_model_config, pick_precision
    from train.run import make_trainer
    from train.smoke import tiny_config

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


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
