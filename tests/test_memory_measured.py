"""The memory plan against memory measured on the CPU, on slices of three real models at their real widths.

Each slice (`benchmarks/bench_memory.py`: `SLICES`, `slice_config`) is a random-weight Qwen3-1.7B, Llama-3.2-1B or
Gemma-3-1B with one decoder layer and an 8,192-entry vocabulary, loaded through train's loader (4-bit NF4, LoRA,
gradient checkpointing, SDPA) and run on the 16-bit autocast path a T4 takes. What is measured is PyTorch's own count
of the bytes it allocates (the profiler's memory events) while train's code runs a training step, an evaluation batch
and the first step's loss check; the plan of the same shape (one layer, the small vocabulary) is held to within 10%
of the largest of the three, above the weights.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from analyze.memory import MOMENTS

pytestmark = pytest.mark.training

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bench = importlib.import_module("bench_memory")

LENGTHS, MICRO_BATCHES = (128, 512), (1, 2)
LAYERS, VOCAB = 1, 8192
TOLERANCE = 0.10
SCRATCH = 512 << 10  # bytes: oneDNN's matmul scratch, which differs between two runs of one step


def _table(rows: list[dict]) -> str:
    return "\n".join(bench._describe(r) for r in rows)


@pytest.mark.parametrize("model", bench.SLICE_NAMES)
def test_the_plan_is_within_10_percent_of_the_measured_peak(model):
    rows = bench.cpu_plan_rows([model], list(LENGTHS), list(MICRO_BATCHES), LAYERS, VOCAB)
    assert len(rows) == len(LENGTHS) * len(MICRO_BATCHES)
    for row in rows:
        assert abs(row["error"]) <= TOLERANCE, _table(rows)
        assert row["measured_peak_mib"] > 20, _table(rows)  # a measurement, not an empty profile


def test_fp32_as_gemma_3_runs_on_a_t4():
    """No autocast (`run.precision: fp32`, and Gemma 3 on a GPU without bf16): no 16-bit copies, fp32 logits."""
    rows = bench.cpu_plan_rows(["Gemma-3-1B"], [512], [2], LAYERS, VOCAB, precision="fp32")
    for row in rows:
        assert abs(row["error"]) <= TOLERANCE, _table(rows)


def test_bf16_stands_in_for_fp16():
    """The CPU runs the T4's fp16 path in bf16 (fp16 matmuls are ~100× slower there): both allocate the same tensors,
    but for the scratch space oneDNN's matmuls take, which varies with threads and timing from run to run of the same
    step (34–264 KiB apart seen on this tiny model's 1.2–1.5 MiB step; the real-width slices' peaks are 20+ MiB).
    """
    config = bench.slices()["Qwen3-1.7B"] | {"hidden_size": 64, "intermediate_size": 192, "num_attention_heads": 4,
                                              "num_key_value_heads": 2, "head_dim": 16}  # fmt: skip
    measured = bench.same_bytes_as_fp16(bench.slice_config(config, 2, 512), 64, 2)
    assert set(measured) == set(MOMENTS)
    for moment, (fp16, bf16) in measured.items():
        assert fp16 > 0 and abs(bf16 - fp16) <= SCRATCH, (moment, fp16, bf16)


def test_the_plans_architecture_lists_are_what_transformers_builds():
    """`QK_NORM`, `SANDWICH_NORMS` and `MIXED_ATTENTION` (the plan, without transformers) against a tiny model of
    each architecture: q and k norms in its attention, norms after attention and MLP, two kinds of layers."""
    import transformers

    from analyze.memory import MIXED_ATTENTION, QK_NORM, SANDWICH_NORMS

    sizes = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=6, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=16, vocab_size=64, pad_token_id=0, bos_token_id=1,
                 eos_token_id=2)  # fmt: skip
    kinds = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3_text", "olmo2", "granite"]
    for kind in kinds:
        config = transformers.CONFIG_MAPPING[kind](**sizes)
        layer = transformers.AutoModelForCausalLM.from_config(config).model.layers[0]
        assert hasattr(layer.self_attn, "q_norm") == (kind in QK_NORM), kind
        assert hasattr(layer, "post_feedforward_layernorm") == (kind in SANDWICH_NORMS), kind
        assert (len(set(getattr(config, "layer_types", None) or ())) > 1) == (kind in MIXED_ATTENTION), kind
