"""The memory plan against measured memory: on the CPU, slices of real models; on a GPU, real-size models.

    python benchmarks/bench_memory.py                      # CPU: plan vs measured, 3 models × 2 lengths × 2 rows
    python benchmarks/bench_memory.py --loss               # CPU: the loss alone, full logits against chunked
    python benchmarks/bench_memory.py --device cuda        # GPU: real-size models on the T4 path
    python benchmarks/bench_memory.py --device cuda --out mem.json

CPU: random-weight slices of Qwen3-1.7B, Llama-3.2-1B and Gemma-3-1B (`SLICES`): their real hidden, intermediate,
head and head-size widths, with `--layers` decoder layers and a `--vocab`-entry vocabulary so a step takes seconds on
two cores. Each is loaded through train's own loader (4-bit NF4, LoRA, gradient checkpointing, SDPA) and run on the
T4's 16-bit path: autocast in bf16, which has fp16's element size (fp16 matmuls run at a few hundred MFLOP/s on a
CPU without AVX512-FP16; `same_bytes_as_fp16` checks the substitution), and for each max_length and micro-batch the
three moments the plan covers are measured: a training step (forward, chunked loss, backward), an evaluation batch
and the first step's loss check. Measured: the largest live total of PyTorch's allocations (the profiler's memory
events) above what was allocated before the moment began, the weights; predicted: the plan of the same shape on the
CPU (`Settings.device`: what dropout keeps differs from CUDA's). `--loss`: one training step's loss alone at
max_length 2048, micro-batch 4 and Qwen3's vocabulary, full logits against chunked, each in a process of its own
(peak resident memory above the inputs).

CUDA: random-weight models at the real sizes of Qwen3-1.7B (the bundled config) and Llama-3.2-1B, loaded through
train's 4-bit loader on the fp16 path a T4 takes, memory capped at the T4's (`train.gpu_memory.emulate_t4`). For each
max_length at `--micro-batch`: the first-step loss check, a training step after the first optimizer step (peak
counters reset there, as `train` does) and an evaluation batch, each as allocated and reserved peak above the
weights and optimizer state, against the plan's moments, and real tokens per second of packed rows against one
conversation per padded row (the bundled sample's lengths). Then a real `train` of a few steps on the Qwen3-1.7B-size
model with LENGTHSCAN_EMULATE_T4=1: the loss path it chose, its memory plan against its measured peak, its train
losses and tokens per second.

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
MOMENTS = ("training step", "evaluation", "loss check")  # as `analyze.memory.MOMENTS`; a test checks they agree
MIB = 2**20


SLICE_NAMES = ("Qwen3-1.7B", "Llama-3.2-1B", "Gemma-3-1B")


def slices() -> dict[str, dict]:
    """The models whose real widths the CPU benchmark slices."""
    from gpu_check import GEMMA3_1B_CLASS  # beside this script

    from analyze.model_facts import bundled_config

    qwen = bundled_config("Qwen/Qwen3-1.7B")
    return {"Qwen3-1.7B": qwen, "Llama-3.2-1B": LLAMA_1B_CLASS, "Gemma-3-1B": GEMMA3_1B_CLASS}


def slice_config(config: dict, layers: int, vocab: int) -> dict:
    """`config` with `layers` decoder layers and a `vocab`-entry vocabulary; a model that mixes sliding-window and
    full attention keeps both kinds (the last layer sliding, as in Gemma 3 1B)."""
    sliced = config | {"num_hidden_layers": layers, "vocab_size": vocab}
    if config.get("model_type", "").startswith("gemma3"):
        sliced["layer_types"] = ["full_attention"] * (layers - 1) + ["sliding_attention"]
    return {k: v for k, v in sliced.items() if not k.endswith("token_id")}  # ids past the smaller vocabulary


# --- CPU: the plan against measured allocations ------------------------------------------------------------------


def peak_above_start(fn) -> int:
    """Bytes: the largest live total of the allocations `fn()` makes, above what was live when it began (PyTorch's
    profiler records every allocation and free of the CPU allocator)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=_start_ns)
    live = peak = 0
    for e in events:
        live += e.nbytes()  # negative for a free
        peak = max(peak, live)
    return peak


def _start_ns(event) -> int:
    return event.start_ns()


def packed_batch(vocab: int, length: int, rows: int, conversation: int | None = None):
    """(input_ids, position_ids, labels) of `rows` packed rows: conversations of `conversation` tokens (a quarter of a
    row) with positions restarting at each, every token labelled but each conversation's first, as train's collator
    makes them."""
    import torch

    conversation = conversation or max(2, length // 4)
    ids = torch.randint(0, vocab, (rows, length), generator=torch.Generator().manual_seed(0))
    positions = (torch.arange(length) % conversation).expand(rows, length).contiguous()
    labels = ids.masked_fill(positions == 0, -100)
    return ids, positions, labels


def load(folder: Path, device: str, dtype, gradient_checkpointing: bool = True):
    """The model in `folder` through train's loader (4-bit NF4, LoRA as the default config has it) with compute dtype
    `dtype`: fp16 on CUDA is the T4's path; on the CPU, bf16 stands in for it."""
    from analyze.schema import Config
    from train.model import Precision, load_model

    optim = "paged_adamw_8bit" if device == "cuda" else "adamw_torch"
    precision = Precision(device, "16-bit autocast, LoRA in fp32 (the T4's path)", dtype, False, False, optim)
    cfg = Config()
    return load_model(str(folder), precision, cfg.lora, gradient_checkpointing, cfg.optim.seed)


def measure_moments(model, vocab: int, length: int, rows: int, dtype, moments=MOMENTS) -> dict[str, int]:
    """Bytes above the weights at each of `moments`, measured: a training step, an evaluation batch, the first
    step's loss check (which looks at the first row only), each made by train's own code on a packed batch."""
    import torch

    from analyze.memory import chunk_tokens
    from train.loss import check_window, choose_loss_path, loss_sum

    path = choose_loss_path(model, "cpu", dtype)
    ids, positions, labels = packed_batch(vocab, length, rows)
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)

    def step_loss():  # what PackedTrainer.compute_loss returns; the outputs are dropped before backward
        total, count, _ = loss_sum(model, ids, positions, labels, path)
        return total / count

    def training_step():
        model.train()
        with autocast:
            loss = step_loss()
        loss.backward()

    def evaluation():
        model.eval()
        with torch.no_grad(), autocast:
            loss_sum(model, ids, positions, labels, path)

    def loss_check():  # PackedTrainer's own check, on the window it takes of the first row
        window = check_window(labels[0], chunk_tokens(vocab))
        trainer = _CheckOnly(path, dtype)
        trainer.check(model, ids[:1, window], positions[:1, window], labels[:1, window])

    measured = {}
    for moment, fn in zip(MOMENTS, (training_step, evaluation, loss_check), strict=True):
        if moment in moments:
            measured[moment] = peak_above_start(fn)
            model.zero_grad(set_to_none=True)  # as after an optimizer step
    model.train()
    return measured


class _CheckOnly:
    """Enough of a PackedTrainer for its loss check (`PackedTrainer._loss_error`) to run as in training."""

    def __init__(self, path, dtype, device: str = "cpu"):
        from types import SimpleNamespace

        import torch

        self.loss_path = path
        on = dtype != torch.float32  # fp32: no autocast, as accelerate has none for it
        self.accelerator = SimpleNamespace(autocast=lambda: torch.autocast(device, dtype=dtype, enabled=on))

    def check(self, model, ids, positions, labels) -> None:
        from train.trainer import PackedTrainer

        _, failure, oom = PackedTrainer._loss_error(self, model, ids, positions, labels)
        assert failure is None and not oom, failure


def planned_moments(config: dict, length: int, rows: int, settings) -> dict[str, float]:
    """Bytes above the weights the plan predicts at each moment for `config` (`settings`: analyze.memory.Settings)."""
    from analyze.memory import GIB, model_shape, plan_memory

    plan = plan_memory(model_shape(config), length, rows, settings)
    return {moment: gib * GIB for moment, gib in plan.moments.items()}


def cpu_plan_rows(
    models: list[str],
    lengths: list[int],
    micro_batches: list[int],
    layers: int,
    vocab: int,
    precision: str = "16-bit",
    gradient_checkpointing: bool = True,
) -> list[dict]:
    """Per model, max_length and micro-batch: the moments measured and planned (MiB above the weights), the peak of
    each and the plan's error. `precision`: "16-bit" (the T4's path, bf16 standing in for fp16) or "fp32"."""
    import torch

    from analyze.memory import Settings

    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    settings = Settings.from_config(device="cpu", precision=precision, gradient_checkpointing=gradient_checkpointing)
    rows = []
    for name in models:
        config = slice_config(slices()[name], layers, vocab)
        with tempfile.TemporaryDirectory() as tmp:
            model = load(_random_model(config, Path(tmp)), "cpu", dtype, gradient_checkpointing)
            for length in lengths:
                check = measure_moments(model, vocab, length, 1, dtype, ["loss check"])  # one row, whatever the batch
                for rows_ in micro_batches:
                    start = time.perf_counter()
                    measured = measure_moments(model, vocab, length, rows_, dtype, MOMENTS[:2]) | check
                    row = {
                        "part": "plan vs measured (CPU)",
                        "model": name,
                        "layers": layers,
                        "vocab": vocab,
                        "precision": precision,
                        "gradient_checkpointing": gradient_checkpointing,
                        "max_length": length,
                        "micro_batch_size": rows_,
                        "measured_mib": {k: round(v / MIB, 1) for k, v in measured.items()},
                        "predicted_mib": {
                            k: round(v / MIB, 1) for k, v in planned_moments(config, length, rows_, settings).items()
                        },
                        "seconds": round(time.perf_counter() - start, 1),
                    }
                    row["measured_peak_mib"] = max(row["measured_mib"].values())
                    row["predicted_peak_mib"] = max(row["predicted_mib"].values())
                    row["error"] = round(row["predicted_peak_mib"] / row["measured_peak_mib"] - 1, 3)
                    rows.append(row)
                    print(_describe(row), flush=True)
    return rows


def same_bytes_as_fp16(config: dict, length: int, rows: int) -> dict[str, tuple[int, int]]:
    """(fp16, bf16) bytes of each moment on a model small enough for fp16's slow CPU matmuls: the benchmark runs bf16
    in fp16's place, which is only sound if the two allocate the same."""
    import torch

    result = {}
    for dtype in (torch.float16, torch.bfloat16):
        with tempfile.TemporaryDirectory() as tmp:
            model = load(_random_model(config, Path(tmp)), "cpu", dtype)
            for moment, n in measure_moments(model, config["vocab_size"], length, rows, dtype).items():
                result.setdefault(moment, []).append(n)
    return {k: tuple(v) for k, v in result.items()}


# --- CPU: the loss alone, full logits against chunked ---------------------------------------------------------


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


def loss_rows(max_length: int, micro_batch: int, vocab: int, hidden: int) -> list[dict]:
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


# --- CUDA: real-size models -----------------------------------------------------------------------------------


def cuda_rows(lengths: list[int], micro_batch: int, steps: int, models: list[str] | None = None) -> list[dict]:
    """Per model and max_length on this GPU (capped as a T4): the plan against measured memory, allocated and
    reserved, and packed against padded throughput. `models`: names in `cuda_models()` (default: all)."""
    import torch

    from analyze.gpus import CONTEXT_GIB, GPUS
    from analyze.memory import GIB, memory_model
    from analyze.schema import Config
    from train.gpu_memory import emulate_t4

    total = torch.cuda.get_device_properties(0).total_memory / GIB
    emulate_t4(total)
    name = torch.cuda.get_device_name(0)
    print(
        f"{name}: {total:.1f} GiB, capped as a T4's {GPUS['T4']} GiB; fp16 autocast, 4-bit NF4, LoRA r=16", flush=True
    )
    rows = []
    for label, config in cuda_models().items():
        if models and label not in models:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            model = load(_random_model(config, Path(tmp)), "cuda", torch.float16)
            plan_model = memory_model(Config(), config, label, GPUS["T4"])
            for length in lengths:
                row = {"part": "training step (CUDA)", "model": label, "gpu": name, "max_length": length}
                row["micro_batch_size"] = micro_batch
                plan = plan_model.plan(length, micro_batch)
                try:
                    measured = _measure(model, config["vocab_size"], length, micro_batch, steps)
                except torch.cuda.OutOfMemoryError:
                    measured = None
                    torch.cuda.empty_cache()
                row |= {
                    "predicted_peak_gib": round(plan.peak_gib, 2),
                    "predicted_above_weights_gib": {k: round(v, 3) for k, v in plan.moments.items()},
                    "fits_predicted": plan.fits(GPUS["T4"]),
                    "fits_measured": measured is not None,
                }
                if measured is not None:
                    allocated, reserved = measured.pop("allocated_gib") + CONTEXT_GIB, measured.pop("reserved_gib")
                    reserved += CONTEXT_GIB
                    row |= {
                        "measured_peak_gib": round(allocated, 2),
                        "measured_reserved_gib": round(reserved, 2),
                        "error": round(plan.peak_gib / allocated - 1, 3),
                        "error_reserved": round(plan.peak_gib / reserved - 1, 3),
                        **measured,
                    }
                rows.append(row)
                print(_describe(row), flush=True)
            del model
            torch.cuda.empty_cache()
    return rows


def cuda_models() -> dict[str, dict]:
    from analyze.model_facts import bundled_config

    return {"Qwen3-1.7B size": bundled_config("Qwen/Qwen3-1.7B"), "Llama-3.2-1B class": LLAMA_1B_CLASS}


def train_row(max_length: int, steps: int) -> dict:
    """A real `train` of a few steps on a random-weight Qwen3-1.7B-size model, emulating a T4 (fp16 path, memory
    capped): what it printed about the loss and memory, and its tokens per second."""
    import csv
    import shutil

    from analyze.model_facts import bundled_config
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


def _measure(model, vocab: int, length: int, micro_batch: int, steps: int) -> dict:
    """On CUDA (chunked loss, fp16 autocast, GradScaler, paged 8-bit AdamW): GiB above the weights and optimizer
    state at each moment (allocated), the largest allocated and reserved totals, and real tokens per second of packed
    rows against padded ones (the bundled sample's lengths). The loss check runs before the first optimizer step and
    the peak counters are reset after it, as in a run (`train.gpu_memory.PeakAfterFirstStep`)."""
    import bitsandbytes as bnb
    import numpy as np
    import torch

    from analyze.memory import GIB, chunk_tokens
    from train.loss import check_window, choose_loss_path, loss_sum

    path = choose_loss_path(model, "cuda", torch.float16)
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
        model.train()
        ids, positions, labels, real = batch(packed)
        with torch.autocast("cuda", dtype=torch.float16):
            total, count, _ = loss_sum(model, ids, positions, labels, path)
            loss = total / count.clamp(min=1)
        del _
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return real

    def evaluation():
        ids, positions, labels, _ = batch(True)
        model.eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            loss_sum(model, ids, positions, labels, path)
        model.train()

    def check():
        ids, positions, labels, _ = batch(True)
        window = check_window(labels[0], chunk_tokens(vocab))
        _CheckOnly(path, torch.float16, "cuda").check(model, ids[:1, window], positions[:1, window], labels[:1, window])

    peaks = {"allocated_gib": 0.0, "reserved_gib": 0.0}

    def moment(fn) -> float:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peaks["allocated_gib"] = max(peaks["allocated_gib"], torch.cuda.max_memory_allocated() / GIB)
        peaks["reserved_gib"] = max(peaks["reserved_gib"], torch.cuda.max_memory_reserved() / GIB)
        return round((torch.cuda.max_memory_allocated() - start) / GIB, 3)

    above = {"loss check": moment(check)}  # before the first step, as in a run
    step(True)  # the first optimizer step: allocator, kernels, optimizer state
    peaks = {"allocated_gib": 0.0, "reserved_gib": 0.0}  # from here, as PeakAfterFirstStep; the check is above
    above["training step"] = moment(lambda: step(True))
    above["evaluation"] = moment(evaluation)
    speeds = {}
    for packed in (True, False):
        torch.cuda.synchronize()
        start, real = time.perf_counter(), 0
        for _ in range(steps):
            real += step(packed)
        torch.cuda.synchronize()
        speeds[packed] = round(real / (time.perf_counter() - start), 1)
    return {
        **peaks,
        "loss_path": path.name,  # the plan counts the plain chunked loss; Liger Kernel's, where installed, differs
        "measured_above_weights_gib": above,
        "packed_tokens_per_s": speeds[True],
        "padded_tokens_per_s": speeds[False],
        "packed_over_padded": round(speeds[True] / speeds[False], 2) if speeds[False] else None,
    }


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
    if row["part"].startswith("plan vs measured"):
        moments = ", ".join(f"{k} {row['measured_mib'][k]:.0f} / {row['predicted_mib'][k]:.0f}" for k in MOMENTS)
        return (
            f"{row['model']} ({row['layers']} layers, vocabulary {row['vocab']:,}), {row['micro_batch_size']} × "
            f"{row['max_length']}: measured {row['measured_peak_mib']:.0f} MiB above the weights, predicted "
            f"{row['predicted_peak_mib']:.0f} ({row['error']:+.1%}); measured / predicted: {moments} "
            f"({row['seconds']} s)"
        )
    if "measured_peak_gib" not in row:
        return f"{row['model']}, {row['micro_batch_size']} × {row['max_length']}: out of memory"
    return (
        f"{row['model']}, {row['micro_batch_size']} × {row['max_length']}: measured {row['measured_peak_gib']:.2f} GiB "
        f"allocated, {row['measured_reserved_gib']:.2f} reserved, predicted {row['predicted_peak_gib']:.2f} "
        f"({row['error']:+.1%} of allocated, {row['error_reserved']:+.1%} of reserved); above the weights measured "
        f"{row['measured_above_weights_gib']}, predicted {row['predicted_above_weights_gib']}; packed "
        f"{row['packed_tokens_per_s']} vs padded {row['padded_tokens_per_s']} real tokens/s "
        f"({row['packed_over_padded']}×)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--loss", action="store_true", help="CPU: the loss alone, full logits against chunked")
    p.add_argument("--models", default=",".join(SLICE_NAMES), help="CPU: models to slice (comma-separated)")
    p.add_argument("--lengths", help="max_lengths to measure (CPU default 256,1024; CUDA 512,1024,2048)")
    p.add_argument("--micro-batches", default="1,4", help="CPU: micro-batches to measure")
    p.add_argument("--layers", type=int, default=2, help="CPU: decoder layers of each slice")
    p.add_argument("--slice-vocab", type=int, default=16384, help="CPU: vocabulary of each slice")
    p.add_argument("--precision", choices=["16-bit", "fp32"], default="16-bit", help="CPU: the path measured")
    p.add_argument("--max-length", type=int, default=2048, help="--loss: tokens per row")
    p.add_argument("--micro-batch", type=int, default=4, help="--loss and CUDA: rows per micro-batch")
    from analyze.model_facts import bundled_config

    qwen = bundled_config("Qwen/Qwen3-1.7B")
    p.add_argument("--vocab", type=int, default=qwen["vocab_size"], help="--loss: vocabulary (Qwen3's)")
    p.add_argument("--hidden", type=int, default=qwen["hidden_size"], help="--loss: hidden size (Qwen3-1.7B's)")
    p.add_argument("--steps", type=int, default=5, help="CUDA: timed steps per layout")
    p.add_argument("--train-length", type=int, default=1024, help="CUDA: max_length of the real train run")
    p.add_argument("--train-steps", type=int, default=5, help="CUDA: optimizer steps of the real train run (0: none)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--_loss", help=argparse.SUPPRESS)  # internal: measure one loss path in this process
    args = p.parse_args()
    if args._loss:
        print(json.dumps(loss_peak(args._loss, args.max_length, args.micro_batch, args.vocab, args.hidden)))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.device == "cpu" and args.loss:
        rows = loss_rows(args.max_length, args.micro_batch, args.vocab, args.hidden)
        ok = {r["path"]: r for r in rows if "peak_mib" in r}
        result = {"device": "cpu", "rows": rows}
        if len(ok) == 2:
            result["full_over_chunked_peak"] = round(ok["full"]["peak_mib"] / max(ok["chunked"]["peak_mib"], 1), 1)
            print(f"full / chunked peak memory of the loss step: {result['full_over_chunked_peak']}×")
    elif args.device == "cpu":
        lengths = [int(x) for x in (args.lengths or "256,1024").split(",")]
        micro_batches = [int(x) for x in args.micro_batches.split(",")]
        models = args.models.split(",")
        rows = cpu_plan_rows(models, lengths, micro_batches, args.layers, args.slice_vocab, args.precision)
        errors = [abs(r["error"]) for r in rows]
        result = {"device": "cpu", "rows": rows, "max_abs_error": max(errors)}
        print(f"plan against measured, above the weights: largest error {max(errors):.1%} over {len(rows)} rows")
    else:
        lengths = [int(x) for x in (args.lengths or "512,1024,2048").split(",")]
        rows = cuda_rows(lengths, args.micro_batch, args.steps)
        if args.train_steps:
            rows.append(train_row(args.train_length, args.train_steps))
        result = {"device": "cuda", "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
