"""Training throughput of packed rows against padding every conversation to max_length, in one run.

    python benchmarks/bench_train_throughput.py [--max-length 256] [--steps 12]

Both use the smoke model (a tiny random Qwen3 of the real architecture, 4-bit NF4 + LoRA through `train`'s own
loader) on the CPU, the bundled sample, the same micro-batch and rows of exactly max_length, so a step costs the
same: what differs is how many of its token slots hold real tokens. Prints real (non-padding) tokens per second for
each, their ratio, and the ratio the padding waste predicts: (1 - packed waste) / (1 - pad-to-max waste).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from analyze.model_facts import load_model_config
from analyze.pipeline import tokenize_files
from analyze.plan import Plan, make_plan
from analyze.schema import Config, LoraConfig
from analyze.stats import plan_stats
from analyze.tokenizer import load_tokenizer
from train.collate import PackedCollator
from train.loss import choose_loss_path, loss_sum
from train.model import load_model, pick_precision
from train.rows import PackedRows
from train.smoke import build_tiny_model

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "hh-rlhf-helpful-base-test.messages.jsonl"


def real_tokens_per_second(
    model, rows: PackedRows, collate: PackedCollator, micro: int, steps: int, seed: int
) -> float:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    order = np.random.default_rng(seed).permutation(len(rows))
    batches = [collate([rows[int(i)] for i in order[k * micro : (k + 1) * micro]]) for k in range(steps + 1)]
    model.train()
    path = choose_loss_path(model, "cpu")  # the loss train uses
    real, start = 0, None
    for k, batch in enumerate(batches):
        if k == 1:  # the first step warms up allocators and kernels: not timed
            start = time.perf_counter()
        total, count, _ = loss_sum(model, batch["input_ids"], batch["position_ids"], batch["labels"], path)
        (total / count.clamp(min=1)).backward()
        opt.step()
        opt.zero_grad()
        if k >= 1:
            real += int(batch["real_tokens"].sum())
    return real / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--micro-batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=12, help="timed optimizer steps per layout")
    args = p.parse_args()
    seed = Config().optim.seed
    torch.manual_seed(seed)
    tok = load_tokenizer("bundled:qwen3")
    table = tokenize_files([SAMPLE], tok, keep_ids=True, cache=False).table
    plan = make_plan(table, args.max_length, "cut_turns")
    one_per_row = Plan(plan.max_length, plan.policy, plan.kept, plan.records, [[j] for j in range(len(plan.records))])
    stats = plan_stats(table, plan, args.micro_batch, 1, seed)
    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(
            str(build_tiny_model(load_model_config("Qwen/Qwen3-1.7B"), tok, Path(tmp), seed)),
            pick_precision("cpu"),
            LoraConfig(),
            True,
            seed,
        )
        collate = PackedCollator(tok.pad_token_id, args.max_length, multiple_of=args.max_length)  # rows of max_length
        padded = real_tokens_per_second(
            model, PackedRows(table, one_per_row), collate, args.micro_batch, args.steps, seed
        )
        packed = real_tokens_per_second(model, PackedRows(table, plan), collate, args.micro_batch, args.steps, seed)
    predicted = (1 - stats.padding_waste_packed) / (1 - stats.padding_waste_pad_to_max)
    print(f"smoke model on the CPU ({torch.get_num_threads()} threads), bundled sample, max_length {args.max_length}, "
          f"micro-batch {args.micro_batch}, {args.steps} timed steps each")  # fmt: skip
    print(f"padded to max_length: {padded:,.0f} real tokens/s (padding waste {stats.padding_waste_pad_to_max:.1%})")
    print(f"packed rows:          {packed:,.0f} real tokens/s (padding waste {stats.padding_waste_packed:.1%})")
    print(f"packed / padded: {packed / padded:.2f}× measured, {predicted:.2f}× predicted by the padding waste")


if __name__ == "__main__":
    main()
