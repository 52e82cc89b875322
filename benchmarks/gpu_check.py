"""Every GPU check of the T4 path in one run, for a lent GPU machine: within 8 minutes, last line one JSON object.

    python benchmarks/gpu_check.py --out $OUT/gpu_check.json     # on the GPU (see shared/gpu/README.md)
    python benchmarks/gpu_check.py --device cpu                  # here: the same plumbing on tiny sizes

Each part runs in a process of its own with its own time limit, so a part that fails, runs out of memory or overruns
leaves the others their numbers (its row says what happened). On CUDA every part takes the T4 path: fp16 autocast
(`LENGTHSCAN_EMULATE_T4=1`) and the allocator capped at a T4's 14.74 GiB less the context (`train.gpu_memory`).

1. memory   `bench_memory.py --device cuda`: the memory plan against the measured peak, allocated and reserved, at 3
            lengths × 2 real-size models (Qwen3-1.7B, a Llama-3.2-1B-class config), and packed against padded real
            tokens per second.
2. trl      `bench_vs_trl.py --device cuda`: this trainer against TRL's SFTTrainer (padded with assistant-only loss,
            and packed) at one real size; skipped, and said, where TRL is not installed.
3. guard    the fp16 guard on a Gemma-3-1B-size config: the precision `train` picks on a T4 (fp32: Gemma 3 overflows
            fp16), a few training steps at it with their losses and peak memory against the plan at fp32, and the
            largest activation of a forced fp16 forward (random weights need not overflow; trained ones do).
4. train    a 20-step `train` on a Qwen3-1.7B-size random model with the bundled tokenizer and sample: the loss
            path and its check, the memory plan against the measured peak (allocated and reserved), losses, tokens/s.

The GPU's name is in every row: speeds on an H100 are not a T4's, so report ratios, and say which GPU gave them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "data" / "hh-rlhf-helpful-base-test.messages.jsonl"
# seconds each part may take on a GPU (8 minutes in all, with room for start-up); on the CPU the sizes are tiny
LIMITS = {"memory": 140, "trl": 160, "guard": 60, "train": 110}
GEMMA3_1B_CLASS = {  # the sizes of google/gemma-3-1b-pt's config.json, for a random-weight model
    "model_type": "gemma3_text",
    "hidden_size": 1152,
    "intermediate_size": 6912,
    "num_hidden_layers": 26,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "vocab_size": 262144,
    "sliding_window": 512,
    "max_position_embeddings": 32768,
    "final_logit_softcapping": None,
    "query_pre_attn_scalar": 256,
}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16}  # fmt: skip


def run_part(name: str, device: str, work: Path) -> dict:
    """One part in a process of its own; its row, or what went wrong."""
    limit = LIMITS[name] if device == "cuda" else 600
    out = work / f"{name}.json"
    cmd = [sys.executable, __file__, "--part", name, "--device", device, "--part-out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    if device == "cuda":
        env["LENGTHSCAN_EMULATE_T4"] = "1"
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=limit)
    except subprocess.TimeoutExpired as e:
        return {"part": name, "status": f"over its {limit} s", "stdout_tail": str(e.stdout or "")[-600:]}
    seconds = round(time.perf_counter() - start, 1)
    print(done.stdout, end="", flush=True)
    if done.returncode or not out.exists():
        failed = f"exit {done.returncode}"
        return {"part": name, "status": failed, "seconds": seconds, "stderr_tail": done.stderr[-800:]}
    return json.loads(out.read_text()) | {"part": name, "status": "ok", "seconds": seconds}


def part_memory(device: str) -> dict:
    """bench_memory.py's GPU rows, without its own train run (part 4 is a longer one); on the CPU, one slice."""
    if device == "cuda":
        return _script("bench_memory.py", ["--device", "cuda", "--train-steps", "0"])
    return _script("bench_memory.py", ["--models", "Qwen3-1.7B", "--lengths", "256", "--micro-batches", "1"])


def part_trl(device: str) -> dict:
    """bench_vs_trl.py on a Qwen3-1.7B-size random model (CPU: its smallest run)."""
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        return {"skipped": "TRL is not installed (../shared/gpu/prepare.sh trl)"}
    if device != "cuda":
        small = ["--hidden", "64", "--layers", "2", "--max-length", "128", "--micro-batch", "2", "--grad-accum", "1"]
        return _script("bench_vs_trl.py", [*small, "--records", "100", "--steps", "2", "--repeats", "1"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = _qwen3_folder(Path(tmp) / "model", device)
        args = ["--device", "cuda", "--model", str(folder), "--max-length", "1024", "--records", "600"]
        return _script("bench_vs_trl.py", [*args, "--steps", "6", "--repeats", "1"])  # 3 processes, each loading


def _script(name: str, args: list[str]) -> dict:
    """Another benchmark script's JSON (it writes the file `--out` names)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args, "--out", str(out)],
                              capture_output=True, text=True, cwd=ROOT)  # fmt: skip
        print(done.stdout[-3000:], end="", flush=True)
        if done.returncode:
            return {"error": f"{name} exit {done.returncode}", "stderr_tail": done.stderr[-800:]}
        return {"result": json.loads(out.read_text())}


def part_guard(device: str) -> dict:
    """The precision train picks for a Gemma-3-1B-size model on a T4, steps at it, and a forced fp16 forward."""
    from unittest import mock

    import torch
    from transformers import AutoConfig

    from analyze.config import with_values
    from analyze.gpus import CONTEXT_GIB
    from analyze.memory import GIB, memory_model
    from analyze.schema import Config
    from train.model import pick_precision

    sizes = GEMMA3_1B_CLASS if device == "cuda" else GEMMA3_1B_CLASS | TINY | {"vocab_size": 151_936}
    with mock.patch("torch.cuda.get_device_capability", return_value=(7, 5)):  # what a T4 gets, on any device
        on_t4 = pick_precision("cuda", sizes)
    precision = on_t4 if device == "cuda" else pick_precision("cpu")
    row = {"model": "Gemma-3-1B class" if device == "cuda" else "Gemma 3 (tiny)", "precision_on_t4": on_t4.name}
    length = 1024 if device == "cuda" else 128
    cfg = with_values(Config(), {"max_length": length, "optim.micro_batch_size": 2, "run.precision": "fp32"})
    with tempfile.TemporaryDirectory() as tmp:
        folder = _random_model(sizes, Path(tmp) / "model", device)
        row["max_abs_activation_fp16"] = _largest_fp16_activation(folder, device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        losses = _steps(folder, cfg, precision, steps=4)
        plan = memory_model(cfg, AutoConfig.from_pretrained(folder).to_dict(), "Gemma-3-1B class")
    row |= {"losses": losses, "finite": all(torch.isfinite(torch.tensor(losses)).tolist())}
    if plan.shape is not None:
        row["predicted_peak_gib"] = round(plan.plan(length, 2).peak_gib, 2)
    if device == "cuda":
        row["measured_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB + CONTEXT_GIB, 2)
        row["measured_reserved_gib"] = round(torch.cuda.max_memory_reserved() / GIB + CONTEXT_GIB, 2)
    print(json.dumps(row), flush=True)
    return row


def _largest_fp16_activation(folder: Path, device: str) -> float:
    """The largest |hidden state| of a forward in fp16 (unquantised, eval): above 65,504 is an overflow."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float16 if device == "cuda" else torch.float32)
    model.to(device).eval()
    ids = torch.randint(0, model.config.vocab_size, (1, 256), device=device)
    with torch.no_grad(), torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    largest = max(float(h.float().abs().max()) for h in hidden)
    del model
    return round(largest, 1)


def _steps(folder: Path, cfg, precision, steps: int) -> list[float]:
    """A few optimizer steps of train's own loader and loss on random rows; the losses."""
    import torch

    from train.loss import choose_loss_path, loss_sum
    from train.model import load_model

    model = load_model(str(folder), precision, cfg.lora, cfg.run.gradient_checkpointing, cfg.optim.seed)
    device = precision.device
    path = choose_loss_path(model, device, precision.compute_dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    if device == "cuda":
        import bitsandbytes as bnb

        opt = bnb.optim.PagedAdamW8bit(params, lr=cfg.optim.learning_rate)  # what train uses on a GPU
    else:
        opt = torch.optim.AdamW(params, lr=cfg.optim.learning_rate)
    scaler = torch.amp.GradScaler(precision.device, enabled=precision.fp16)
    vocab = model.config.vocab_size
    losses = []
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, vocab, (cfg.optim.micro_batch_size, cfg.max_length), device=device)
        pos = torch.arange(cfg.max_length, device=device).repeat(cfg.optim.micro_batch_size, 1)
        autocast = precision.fp16 or precision.bf16
        with torch.autocast(device, dtype=precision.compute_dtype, enabled=autocast):
            total, count, _ = loss_sum(model, ids, pos, ids, path)
        loss = total / count.clamp(min=1)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        losses.append(round(float(loss), 4))
    return losses


def part_train(device: str) -> dict:
    """`train` for 20 steps (CPU: 4) on a Qwen3-1.7B-size random model (CPU: --smoke) with the bundled sample."""
    import csv

    from train.outputs import LOG_CSV

    steps = 20 if device == "cuda" else 4
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "train", "--data.train", str(SAMPLE), "--run.max_steps", str(steps)]
        cmd += ["--output-dir", str(out), "--max_length", "1024"]
        if device == "cuda":
            cmd += ["--model", str(_qwen3_folder(Path(tmp) / "model", device))]
        else:
            cmd += ["--smoke"]
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        seconds = round(time.perf_counter() - start, 1)
        lines = done.stdout.splitlines()
        log = out / LOG_CSV
        logged = list(csv.DictReader(log.read_text().splitlines())) if log.exists() else []
    speeds = [float(r["tokens_per_second"]) for r in logged if r.get("tokens_per_second")]
    row = {
        "steps": steps,
        "rc": done.returncode,
        "seconds": seconds,
        "precision_line": next((x for x in lines if x.startswith("precision:")), None),
        "loss_line": next((x for x in lines if x.startswith("loss:")), None),
        "plan_line": next((x for x in lines if x.startswith("memory plan:")), None),
        "measured_line": next((x for x in lines if x.startswith("GPU memory")), None),
        "train_losses": [float(r["train_loss"]) for r in logged if r.get("train_loss")],
        "eval_losses": [float(r["eval_loss"]) for r in logged if r.get("eval_loss")],
        "tokens_per_second_median": sorted(speeds)[len(speeds) // 2] if speeds else None,
        "stderr_tail": done.stderr.strip()[-600:] if done.returncode else "",
    }
    print(json.dumps(row, indent=1), flush=True)
    return row


def _qwen3_folder(folder: Path, device: str) -> Path:
    """A random-weight Qwen3-1.7B-size model with the bundled tokenizer beside it: a model folder `train` takes."""
    from analyze.model_facts import bundled_config
    from analyze.tokenizer import BUNDLED

    _random_model(bundled_config("Qwen/Qwen3-1.7B"), folder, device)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(BUNDLED / "qwen3" / f, folder / f)
    return folder


def _random_model(config: dict, folder: Path, device: str) -> Path:
    """A random-weight model of `config`'s sizes, saved in 16-bit (memory and speed do not depend on the values)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    values = {k: v for k, v in config.items() if k != "architectures"}
    cfg = AutoConfig.for_model(**values)
    torch.manual_seed(0)
    with torch.device(device):  # built where it will run: a 1.7B model in seconds on a GPU
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float16 if device == "cuda" else torch.float32)
    model.save_pretrained(folder)
    del model
    return folder


PARTS = {"memory": part_memory, "trl": part_trl, "guard": part_guard, "train": part_train}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    p.add_argument("--parts", default=",".join(PARTS), help="which parts, comma-separated")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    p.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)  # a part's own process
    p.add_argument("--part-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.part:
        args.part_out.write_text(json.dumps(PARTS[args.part](args.device)))
        return
    gpu = "cpu"
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("gpu_check: no CUDA device; run with --device cpu to check the plumbing")
        gpu = torch.cuda.get_device_name(0)
    print(f"gpu_check on {gpu}: parts {args.parts}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_part(name, args.device, Path(tmp)) for name in args.parts.split(",")]
    doc = {"gpu": gpu, "device": args.device, "seconds": round(time.perf_counter() - start, 1), "parts": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1))
    for row in rows:
        print(f"{row['part']}: {row['status']} ({row.get('seconds', '?')} s)")
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
