"""Memory of the loss and of a whole training step, measured against the memory plan, in one run.

    python benchmarks/bench_memory.py                      # CPU: the loss, full logits against chunked
    python benchmarks/bench_memory.py --device cuda        # GPU: real-size models on the T4 path
    python benchmarks/bench_memory.py --device cuda --out mem.json

CPU: the peak memory of one training step's loss (forward and backward from the final hidden states, frozen
head) at max_length 2048, micro-batch 4 and Qwen3's 151,936-token vocabulary, every position labelled (the worst
case for the chunked loss), full logits against chunked, each in a process of its own (peak resident memory above
what the inputs take), and their ratio.

CUDA: random-weight models at the real sizes of Qwen3-1.7B (the bundled config) and a Llama-3.2-1B-class config,
loaded through train's own 4-bit loader on the fp16 path a T4 takes, memory capped at the T4's 14.74 GiB
(`analyze.memory.GPUS`). For max_length 512, 1024 and 2048 at micro-batch 4: the measured peak of a training step
(torch's max_memory_allocated plus the plan's CUDA-context allowance), the predicted peak and their error, and real
tokens per second of packed rows against one conversation per padded row (the bundled sample's lengths). Then a real
`train` of a few steps on the Qwen3-1.7B-size model with LENGTHSCAN_EMULATE_T4=1: the loss path it chose, its
memory plan against its measured peak, its train losses and tokens per second.

The last line is one JSON object holding every row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "data" / "hh-rlhf-helpful-base-test.messages.jsonl"
LLAMA_1B_CLASS = {  # the sizes of Llama 3.2 1B (config.json as published), for a random-weight model
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "tie_word_embeddings": True,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-05,
    "bos_token_id": 128000,
    "eos_token_id": 128009,
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def loss_peak(path: str, max_length: int, micro_batch: int, vocab: int, hidden: int) -> dict:
    """In this process: the loss step's peak resident memory above its inputs (MiB)."""
    import torch

    from train.loss import chunked_loss_sum, token_loss_sum

    torch.manual_seed(0)
    h = torch.randn(micro_batch, max_length, hidden, requires_grad=True)
    head = torch.empty(vocab, hidden).normal_(std=0.02)  # in place: no second copy to raise the baseline
    labels = torch.randint(0, vocab, (micro_batch, max_length))
    base = _rss_mib()
    start = time.perf_counter()
    if path == "full":
        total, count = token_loss_sum(h @ head.T, labels)
    else:
        total, count = chunked_loss_sum(h, head, labels)
    (total / count).backward()
    return {
        "part": "loss step (CPU, fp32)",
        "path": path,
        "max_length": max_length,
        "micro_batch_size": micro_batch,
        "vocab": vocab,
        "peak_mib": round(_rss_mib() - base, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "loss": round(float(total / count), 4),
    }


def cpu_rows(max_length: int, micro_batch: int, vocab: int, hidden: int) -> list[dict]:
    rows = []
    for path in ("chunked", "full"):
        cmd = [sys.executable, __file__, "--_loss", path, "--max-length", str(max_length)]
        cmd += ["--micro-batch", str(micro_batch), "--vocab", str(vocab), "--hidden", str(hidden)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            rows.append({"part": "loss step (CPU, fp32)", "path": path, "error": done.stderr.strip()[-300:]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(_describe(rows[-1]), flush=True)
    return rows


def cuda_rows(lengths: list[int], micro_batch: int, steps: int) -> list[dict]:
    import torch

    from analyze.config import Config
    from analyze.memory import CONTEXT_GIB, GIB, GPUS, memory_model
    from analyze.model_files import bundled_config

    total = torch.cuda.get_device_properties(0).total_memory / GIB
    torch.cuda.set_per_process_memory_fraction(min(1.0, GPUS["T4"] / total))
    name = torch.cuda.get_device_name(0)
    print(f"{name}: {total:.1f} GiB, capped at {GPUS['T4']} GiB (T4); fp16 autocast, 4-bit NF4, LoRA r=16", flush=True)
    rows = []
    models = {"Qwen3-1.7B size": bundled_config("Qwen/Qwen3-1.7B"), "Llama-3.2-1B class": LLAMA_1B_CLASS}
    for label, config in models.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = _random_model(config, Path(tmp))
            model = _load(folder)
            plan_model = memory_model(Config(), config, label, GPUS["T4"])
            for length in lengths:
                row = {"part": "training step (CUDA)", "model": label, "gpu": name, "max_length": length}
                row["micro_batch_size"] = micro_batch
                try:
                    measured, packed, padded = _measure(model, config["vocab_size"], length, micro_batch, steps)
                except torch.cuda.OutOfMemoryError:
                    measured = packed = padded = None
                    torch.cuda.empty_cache()
                predicted = plan_model.plan(length, micro_batch).peak_gib
                row |= {
                    "predicted_peak_gib": round(predicted, 2),
                    "measured_peak_gib": None if measured is None else round(measured + CONTEXT_GIB, 2),
                    "error": None if measured is None else round(predicted / (measured + CONTEXT_GIB) - 1, 3),
                    "fits_predicted": predicted <= GPUS["T4"],
                    "fits_measured": measured is not None,
                    "packed_tokens_per_s": packed,
                    "padded_tokens_per_s": padded,
                    "packed_over_padded": None if not padded else round(packed / padded, 2),
                }
                rows.append(row)
                print(_describe(row), flush=True)
            del model
            torch.cuda.empty_cache()
    return rows


def train_row(max_length: int, steps: int) -> dict:
    """A real `train` of a few steps on a random-weight Qwen3-1.7B-size model, emulating a T4 (fp16 path, memory
    capped): what it printed about the loss and memory, and its tokens per second."""
    import csv
    import shutil

    from analyze.model_files import bundled_config
    from analyze.tokenizer import BUNDLED
    from train.outputs import LOG_CSV

    with tempfile.TemporaryDirectory() as tmp:
        folder = _random_model(bundled_config("Qwen/Qwen3-1.7B"), Path(tmp) / "model")
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(BUNDLED / "qwen3" / f, folder / f)
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "train", "--model", str(folder), "--data.train", str(SAMPLE)]
        cmd += ["--max_length", str(max_length), "--run.max_steps", str(steps), "--output-dir", str(out)]
        env = dict(os.environ, LENGTHSCAN_EMULATE_T4="1", PYTHONPATH=str(ROOT))
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        lines = done.stdout.splitlines()
        log = out / LOG_CSV
        logged = list(csv.DictReader(log.read_text().splitlines())) if log.exists() else []
    speeds = [float(r["tokens_per_second"]) for r in logged if r.get("tokens_per_second")]
    row = {
        "part": "train CLI (CUDA, T4 emulated)",
        "max_length": max_length,
        "steps": steps,
        "rc": done.returncode,
        "loss_line": next((x for x in lines if x.startswith("loss:")), None),
        "memory_lines": [x for x in lines if "memory" in x.lower()],
        "train_losses": [float(r["train_loss"]) for r in logged if r.get("train_loss")],
        "tokens_per_second": speeds[-1] if speeds else None,
        "stderr_tail": done.stderr.strip()[-400:] if done.returncode else "",
    }
    print(json.dumps(row, indent=1), flush=True)
    return row


def _random_model(config: dict, folder: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float16)
    model.save_pretrained(folder)
    return folder


def _load(folder: Path):
    import torch

    from analyze.config import Config, LoraConfig
    from train.model import Precision, load_model

    fp16 = Precision("cuda", "fp16 autocast, LoRA in fp32 (T4 path)", torch.float16, True, False, "paged_adamw_8bit")
    return load_model(str(folder), fp16, LoraConfig(), True, Config().optim.seed)


def _measure(model, vocab: int, length: int, micro_batch: int, steps: int):
    """Peak GiB of a training step (chunked loss, fp16 autocast, GradScaler, paged 8-bit AdamW) and real tokens
    per second of packed rows against padded ones (the bundled sample's lengths)."""
    import bitsandbytes as bnb
    import numpy as np
    import torch

    from train.loss import choose_loss_path, loss_sum

    path = choose_loss_path(model, "cuda")
    opt = bnb.optim.PagedAdamW8bit([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    scaler = torch.amp.GradScaler("cuda")
    lengths = _sample_lengths(length)
    rng = np.random.default_rng(0)

    def batch(packed: bool):
        ids = torch.randint(0, vocab, (micro_batch, length), device="cuda")
        positions = torch.zeros_like(ids)
        labels = ids.clone()
        real = 0
        for r in range(micro_batch):
            at = 0
            while at < length:
                n = min(int(rng.choice(lengths)), length - at)
                positions[r, at : at + n] = torch.arange(n, device="cuda")
                labels[r, at] = -100
                at, real = at + n, real + n
                if not packed:
                    labels[r, at:] = -100  # one conversation per row, the rest is padding
                    break
        return ids, positions, labels, real

    def step(packed: bool) -> int:
        ids, positions, labels, real = batch(packed)
        with torch.autocast("cuda", dtype=torch.float16):
            total, count, _ = loss_sum(model, ids, positions, labels, path)
        scaler.scale(total / count.clamp(min=1)).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return real

    model.train()
    step(True)  # warm-up: allocator, kernels, optimizer state
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step(True)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    speeds = {}
    for packed in (True, False):
        torch.cuda.synchronize()
        start, real = time.perf_counter(), 0
        for _ in range(steps):
            real += step(packed)
        torch.cuda.synchronize()
        speeds[packed] = round(real / (time.perf_counter() - start), 1)
    return peak, speeds[True], speeds[False]


def _sample_lengths(max_length: int) -> list[int]:
    """Token lengths of the bundled sample's conversations (bundled Qwen3 tokenizer), capped at max_length."""
    from analyze.pipeline import tokenize_files
    from analyze.tokenizer import load_tokenizer

    table = tokenize_files([SAMPLE], load_tokenizer("bundled:qwen3"), cache=False, progress=False).table
    return [min(int(n), max_length) for n in table.tokens]


def _describe(row: dict) -> str:
    if "error" in row and row.get("part", "").startswith("loss"):
        return f"{row['path']:>8} loss: failed ({row['error']})"
    if row["part"].startswith("loss"):
        return (
            f"{row['path']:>8} loss, {row['micro_batch_size']} × {row['max_length']} tokens, vocabulary "
            f"{row['vocab']:,}: peak {row['peak_mib']:,.0f} MiB above the inputs ({row['seconds']} s)"
        )
    measured = "out of memory" if row["measured_peak_gib"] is None else f"{row['measured_peak_gib']:.2f} GiB"
    return (
        f"{row['model']}, {row['micro_batch_size']} × {row['max_length']}: measured {measured}, predicted "
        f"{row['predicted_peak_gib']:.2f} GiB (error {row['error']}); packed {row['packed_tokens_per_s']} vs padded "
        f"{row['padded_tokens_per_s']} real tokens/s ({row['packed_over_padded']}×)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--max-length", type=int, default=2048, help="CPU loss step: tokens per row")
    p.add_argument("--micro-batch", type=int, default=4)
    from analyze.model_files import bundled_config

    qwen = bundled_config("Qwen/Qwen3-1.7B")
    p.add_argument("--vocab", type=int, default=qwen["vocab_size"], help="CPU loss step: vocabulary (Qwen3's)")
    p.add_argument("--hidden", type=int, default=qwen["hidden_size"], help="CPU loss step: hidden size (Qwen3-1.7B's)")
    p.add_argument("--lengths", default="512,1024,2048", help="CUDA: max_lengths to measure")
    p.add_argument("--steps", type=int, default=5, help="CUDA: timed steps per layout")
    p.add_argument("--train-length", type=int, default=1024, help="CUDA: max_length of the real train run")
    p.add_argument("--train-steps", type=int, default=5, help="CUDA: optimizer steps of the real train run")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--_loss", help=argparse.SUPPRESS)  # internal: measure one loss path in this process
    args = p.parse_args()
    if args._loss:
        print(json.dumps(loss_peak(args._loss, args.max_length, args.micro_batch, args.vocab, args.hidden)))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.device == "cpu":
        rows = cpu_rows(args.max_length, args.micro_batch, args.vocab, args.hidden)
        ok = {r["path"]: r for r in rows if "peak_mib" in r}
        result = {"device": "cpu", "rows": rows}
        if len(ok) == 2:
            result["full_over_chunked_peak"] = round(ok["full"]["peak_mib"] / max(ok["chunked"]["peak_mib"], 1), 1)
            print(f"full / chunked peak memory of the loss step: {result['full_over_chunked_peak']}×")
    else:
        rows = cuda_rows([int(x) for x in args.lengths.split(",")], args.micro_batch, args.steps)
        rows.append(train_row(args.train_length, args.train_steps))
        result = {"device": "cuda", "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
