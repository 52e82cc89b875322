"""The memory plan: peak GPU memory of one QLoRA training step, predicted from the model's config.json, and the
largest micro-batch or max_length that fits a GPU. No torch here: `lengthscan` shows the plan for every candidate.

The step's peak is the sum of what stays (4-bit base weights, the fp32 embeddings and norms that peft's kbit
preparation makes, LoRA weights with their gradients and optimizer state), the activations kept across the step
(with gradient checkpointing: each layer's input; without: every layer's), and the larger of two transients:
one layer recomputed in backward, or the loss. Bytes per element follow the fp16 autocast path a T4 takes
(the residual stream is fp32 because kbit preparation upcasts the norms; matmul outputs are fp16). The
coefficients are counted from the tensors each op keeps for backward (see `_layer_bytes_per_token`); the
predicted-against-measured error on a GPU is in docs/benchmarks.md.

>>> from analyze.model_files import bundled_config
>>> qwen = model_shape(bundled_config("Qwen/Qwen3-1.7B"))
>>> qwen.vocab, qwen.layers, qwen.tied
(151936, 28, True)
>>> full = plan_memory(qwen, 2048, 4, Settings.from_config(loss="full"))
>>> chunked = plan_memory(qwen, 2048, 4, Settings.from_config())
>>> round(full.peak_gib, 1), round(chunked.peak_gib, 1)   # GiB; the full logits of 4 × 2048 tokens alone: 16.8
(21.3, 9.5)
>>> full.fits(gpu_budget("T4")), chunked.fits(gpu_budget("T4"))
(False, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from analyze.model_files import read_model_config

GIB = 2**30
# Logits the chunked loss makes at a time (train.loss): ~300 MB of fp16 and fp32 copies with their gradients.
LOSS_CHUNK_LOGITS = 2**24
MARGIN = 0.05  # a plan fits when its peak is at most (1 - MARGIN) of the GPU: fragmentation and what is not counted
# architectures train runs with eager attention (no SDPA in transformers 5; `train.model.attention_for` decides at
# run time): their attention keeps (heads × tokens × tokens) scores for backward
EAGER_ATTENTION = {"gemma2"}
# values a config.json may leave to its class's defaults (Gemma 3 4B+'s text_config omits these)
TEXT_DEFAULTS = {
    "gemma3_text": {"vocab_size": 262_208, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256},
}
# Memory of each GPU as torch reports it (total_memory, GiB): what the CUDA context and PyTorch's allocator share.
GPUS = {
    "T4": 14.74,  # "16 GB"; ECC and the driver keep the rest
    "L4": 22.03,
    "A10G": 22.06,
    "A100-40GB": 39.39,
    "A100-80GB": 79.15,
    "H100": 79.10,
}
GPU_ALIASES = {"A100": "A100-40GB", "A100-40": "A100-40GB", "A100-80": "A100-80GB", "H100-80GB": "H100"}
CONTEXT_GIB = 0.6  # the CUDA context, cuBLAS workspaces and allocator slack: outside the tensors counted below
GPU_OPTIMIZER, CPU_OPTIMIZER = "paged_adamw_8bit", "adamw_torch"  # the transformers `optim` train uses on each
OPTIMIZER_BYTES = {GPU_OPTIMIZER: 2, CPU_OPTIMIZER: 8}  # optimizer state per trainable parameter
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4 bits, a double-quantised 8-bit absmax per 64, fp32 per 256 of those
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# fused projections (Phi-3) named as their parts
FUSED_NAMES = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def gpu_budget(gpu: str | float | int) -> float:
    """GiB of a named GPU (`GPUS`, case-insensitive, 'A100' = the 40 GB one) or a number of GiB.

    >>> gpu_budget("t4"), gpu_budget("A100"), gpu_budget(12), gpu_budget("24")
    (14.74, 39.39, 12.0, 24.0)
    """
    name = str(gpu).strip()
    try:
        value = float(name)
    except ValueError:
        key = gpu_name(name)
        if key is None:
            raise ValueError(f"unknown GPU {gpu!r}") from None
        return GPUS[key]
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"GPU memory {gpu!r} must be a positive number of GiB")
    return value


def gpu_name(gpu: str | float | int) -> str | None:
    """The `GPUS` name a value stands for (case-insensitive, aliases resolved), or None (a number, or unknown).

    >>> gpu_name("a100"), gpu_name("T4"), gpu_name(12)
    ('A100-40GB', 'T4', None)
    """
    key = {k.lower(): k for k in [*GPUS, *GPU_ALIASES]}.get(str(gpu).strip().lower())
    return GPU_ALIASES.get(key, key)


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a decoder-only transformer that its memory depends on."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    other_linear: int = 0  # weights of linear layers outside the language model (a vision tower), 4-bit too
    eager_attention: bool = False

    @property
    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }


class UnknownShape(ValueError):
    """The config does not say enough for a memory plan (the message says what is missing)."""


def model_shape(config: dict) -> ModelShape:
    """The shape from a config.json dict (a multimodal config's `text_config` is the language model).

    >>> model_shape({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    ...              "intermediate_size": 128, "vocab_size": 1000}).head_dim
    16
    """
    text = config.get("text_config") or config
    text = TEXT_DEFAULTS.get(text.get("model_type"), {}) | text
    if any(text.get(k) for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        raise UnknownShape("mixture-of-experts models are not modelled")
    try:
        hidden, heads = int(text["hidden_size"]), int(text["num_attention_heads"])
        return ModelShape(
            hidden=hidden,
            layers=int(text["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=int(text.get("head_dim") or hidden // heads),
            intermediate=int(text["intermediate_size"]),
            vocab=int(text["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", True))),
            other_linear=_vision_linear(config.get("vision_config")),
            eager_attention=text.get("model_type") in EAGER_ATTENTION or config.get("model_type") in EAGER_ATTENTION,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UnknownShape(f"config.json lacks {e}") from None


def _vision_linear(vision: dict | None) -> int:
    """Linear weights of a ViT-style vision tower (attention 4·h², MLP 2·h·i per layer); 0 without one.

    >>> _vision_linear({"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27})  # Gemma 3's SigLIP
    411070464
    """
    if not vision:
        return 0
    h, i = int(vision.get("hidden_size", 0)), int(vision.get("intermediate_size", 0))
    return (4 * h * h + 2 * h * i) * int(vision.get("num_hidden_layers", 0))


def chunk_tokens(vocab: int) -> int:
    """Labelled positions per chunk of the loss: at most LOSS_CHUNK_LOGITS logits at a time (≥ 16 rows, for the
    matmul).

    >>> chunk_tokens(151_936), chunk_tokens(1_000)
    (110, 16777)
    """
    return max(16, LOSS_CHUNK_LOGITS // vocab)


@dataclass(frozen=True)
class Settings:
    """What besides the shape and the batch decides the peak: from a config (`from_config`), never restated here."""

    lora_r: int
    lora_targets: str | tuple[str, ...]
    lora_dropout: bool
    gradient_checkpointing: bool
    optimizer: str = GPU_OPTIMIZER
    loss: str = "chunked"  # or "full": the (tokens × vocabulary) logits at once

    @classmethod
    def from_config(cls, cfg=None, **changes) -> Settings:
        """The settings of `cfg` (default: the default config), with `changes` (e.g. `loss="full"`)."""
        if cfg is None:
            from analyze.config import Config

            cfg = Config()
        targets = cfg.lora.target_modules
        settings = cls(
            lora_r=cfg.lora.r,
            lora_targets=targets if isinstance(targets, str) else tuple(targets),
            lora_dropout=cfg.lora.dropout > 0,
            gradient_checkpointing=cfg.run.gradient_checkpointing,
        )
        return replace(settings, **changes)


@dataclass(frozen=True)
class MemoryPlan:
    max_length: int
    micro_batch_size: int
    parts: dict[str, float] = field(default_factory=dict)  # GiB by part, their sum is the peak

    @property
    def peak_gib(self) -> float:
        return sum(self.parts.values())

    def fits(self, budget_gib: float) -> bool:
        return self.peak_gib <= (1 - MARGIN) * budget_gib

    def as_dict(self) -> dict:
        """The plan as `--json` shows it: its batch, peak and parts (GiB)."""
        return {
            "max_length": self.max_length,
            "micro_batch_size": self.micro_batch_size,
            "peak_gib": round(self.peak_gib, 2),
            "parts_gib": {k: round(v, 3) for k, v in self.parts.items()},
        }

    def describe(self) -> str:
        top = sorted(self.parts.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {v:.1f}" for k, v in top if v >= 0.05)


def plan_memory(shape: ModelShape, max_length: int, micro_batch: int, s: Settings | None = None) -> MemoryPlan:
    """Predicted peak GiB of one training step at `micro_batch` rows of `max_length` tokens (`s`: the default
    config's settings unless given)."""
    s = s or Settings.from_config()
    tokens = max_length * micro_batch
    linear = sum(i * o for i, o in shape.linear_shapes.values()) * shape.layers + shape.other_linear
    targets = _targets(s.lora_targets)
    lora = sum(s.lora_r * (i + o) for n, (i, o) in shape.linear_shapes.items() if n in targets) * shape.layers
    embed = shape.vocab * shape.hidden * (1 if shape.tied else 2)
    norms = (2 * shape.layers + 1) * shape.hidden
    layer = _layer_bytes_per_token(shape, targets, s.lora_dropout) * tokens
    if shape.eager_attention:  # fp16 scores, their fp32 softmax and its fp16 copy, per head and pair of positions
        layer += micro_batch * shape.heads * max_length * max_length * (2 + 4 + 2)
    kept = (shape.layers * 4 * shape.hidden * tokens) if s.gradient_checkpointing else shape.layers * layer
    recompute = 1.5 * layer if s.gradient_checkpointing else 0.5 * layer  # + that layer's gradients in backward
    head_cast = shape.vocab * shape.hidden * 2  # the fp32 head cast to fp16 for the matmul (autocast does the same)
    if s.loss == "full":
        # fp16 logits, their fp32 copy, log-softmax kept for backward, its fp32 gradient
        loss = tokens * shape.vocab * (2 + 4 + 4 + 4) + head_cast
    else:
        loss = (
            min(chunk_tokens(shape.vocab), tokens) * shape.vocab * (2 + 4 + 4 + 4 + 4)
            + tokens * shape.hidden * 6
            + head_cast
        )
    parts = {
        "base weights (4-bit)": linear * NF4_BYTES,
        "embeddings and norms (fp32)": (embed + norms) * 4,
        "LoRA + grads + optimizer": lora * (4 + 4 + OPTIMIZER_BYTES[s.optimizer]),
        "activations kept": kept + 8 * shape.hidden * tokens,  # + the final norm's input and output
        # the two transients come one after the other in backward: the larger counts
        "loss (transient)" if loss >= recompute else "layer recompute (transient)": max(loss, recompute),
    }
    gib = {k: v / GIB for k, v in parts.items()}
    gib["CUDA context"] = CONTEXT_GIB
    return MemoryPlan(max_length, micro_batch, gib)


def _targets(targets: str | tuple[str, ...]) -> set[str]:
    if isinstance(targets, str):
        return set(LINEAR_NAMES) if targets == "all-linear" else {targets}
    names: set[str] = set()
    for t in targets:
        names.update(FUSED_NAMES.get(t, (t,)))
    return names


def _layer_bytes_per_token(shape: ModelShape, targets: set[str], dropout: bool) -> int:
    """Bytes one decoder layer keeps for its backward, per token, on the fp16 autocast path.

    Each linear keeps an fp16 copy of its input (4-bit matmul) and makes an fp16 output; with an adapter it also
    keeps the dropout's fp32 output and mask, that output's fp16 cast, and adds fp16 adapter outputs and an fp32
    sum. Norms keep fp32 tensors; attention keeps q, k (normed, rotated), k and v repeated to all heads, and the
    output; the MLP keeps its activation's input and output and their product.
    """
    h, i = shape.hidden, shape.intermediate
    q, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    total = 0
    for name, (d_in, d_out) in shape.linear_shapes.items():
        total += 2 * d_in + 2 * d_out
        if name in targets:
            total += (4 + 1 if dropout else 0) * d_in + 2 * d_in + 2 * d_out + 4 * d_out
    total += 2 * 2 * 4 * h  # two RMSNorms, input and output in fp32
    total += 2 * 2 * (q + kv) + 2 * 2 * q + 2 * q  # q, k normed and rotated; k, v repeated; attention output
    total += 3 * 2 * i  # activation input, output, product
    total += 2 * 4 * h  # two residual sums in fp32
    return total


@dataclass(frozen=True)
class Fit:
    """What fits: the max_length and micro-batch (same effective batch) to use, and what was changed and why."""

    max_length: int
    micro_batch_size: int
    grad_accum_steps: int
    plan: MemoryPlan
    change: str | None = None  # None: the config fits as it is


def fit(
    shape: ModelShape,
    max_length: int,
    micro_batch: int,
    grad_accum: int,
    budget_gib: float,
    s: Settings | None = None,
    round_to: int | None = None,
) -> Fit:
    """The config's batch if `max_length` fits; else a smaller micro-batch with more accumulation (the same
    effective batch); else, at micro-batch 1, the longest multiple of `round_to` that fits. `s` and `round_to`:
    the default config's unless given.

    >>> from analyze.model_files import bundled_config
    >>> qwen = model_shape(bundled_config("Qwen/Qwen3-1.7B"))
    >>> f = fit(qwen, 2048, 4, 4, 6.0)
    >>> (f.max_length, f.micro_batch_size, f.grad_accum_steps), f.change.split(":")[0]
    ((2048, 1, 16), 'micro_batch_size 4 -> 1, grad_accum_steps 4 -> 16')
    """
    if s is None or round_to is None:
        from analyze.config import Config

        s, round_to = s or Settings.from_config(), round_to or Config().suggest.round_to
    here = plan_memory(shape, max_length, micro_batch, s)
    if here.fits(budget_gib):
        return Fit(max_length, micro_batch, grad_accum, here)
    effective = micro_batch * grad_accum
    for mb in range(micro_batch - 1, 0, -1):
        if effective % mb:
            continue
        plan = plan_memory(shape, max_length, mb, s)
        if plan.fits(budget_gib):
            why = (
                f"micro_batch_size {micro_batch} -> {mb}, grad_accum_steps {grad_accum} -> {effective // mb}: "
                f"{max_length} tokens × {micro_batch} rows need {here.peak_gib:.1f} GiB of the {budget_gib:g}; "
                f"{mb} row{'s need' if mb > 1 else ' needs'} {plan.peak_gib:.1f} (same effective batch of {effective})"
            )
            return Fit(max_length, mb, effective // mb, plan, why)
    smallest = plan_memory(shape, round_to, 1, s)
    if not smallest.fits(budget_gib):
        why = (
            f"the model does not fit {budget_gib:g} GiB at any max_length: even {round_to} tokens × 1 row need "
            f"{smallest.peak_gib:.1f} GiB; choose a smaller model or a larger GPU"
        )
        return Fit(max_length, micro_batch, grad_accum, here, why)
    length = max_length // round_to * round_to
    while length > round_to and not plan_memory(shape, length, 1, s).fits(budget_gib):
        length -= round_to
    plan = plan_memory(shape, length, 1, s)
    why = (
        f"max_length {max_length} -> {length}, micro_batch_size {micro_batch} -> 1, grad_accum_steps "
        f"{grad_accum} -> {effective}: even one row of {max_length} tokens needs "
        f"{plan_memory(shape, max_length, 1, s).peak_gib:.1f} GiB of the {budget_gib:g}"
    )
    return Fit(length, 1, effective, plan, why)


@dataclass(frozen=True)
class MemoryModel:
    """A model's shape, the GPU planned for and the run's settings: everything a plan needs but the batch.

    `shape` is None when the model's config.json is not at hand; `source` then says why.
    """

    shape: ModelShape | None
    source: str
    gpu: str
    budget_gib: float
    settings: Settings

    def plan(self, max_length: int, micro_batch: int) -> MemoryPlan:
        return plan_memory(self.shape, max_length, micro_batch, self.settings)

    def fit(self, max_length: int, micro_batch: int, grad_accum: int, round_to: int) -> Fit:
        return fit(self.shape, max_length, micro_batch, grad_accum, self.budget_gib, self.settings, round_to)

    def candidate(self, max_length: int, micro_batch: int, grad_accum: int) -> dict:
        """The largest micro-batch up to the config's (a divisor of the effective batch) that fits at
        `max_length`, its peak and whether it fits: a row of `lengthscan --json`'s memory.candidates."""
        effective = micro_batch * grad_accum
        for mb in range(micro_batch, 0, -1):
            plan = self.plan(max_length, mb)
            if (effective % mb == 0 and plan.fits(self.budget_gib)) or mb == 1:
                return {
                    "max_length": max_length,
                    "micro_batch_size": mb,
                    "peak_gib": round(plan.peak_gib, 2),
                    "fits": plan.fits(self.budget_gib),
                }
        raise AssertionError("unreachable: micro-batch 1 always returns")


def memory_model(cfg, model_config: dict | None = None, source: str = "", budget_gib: float | None = None):
    """The `MemoryModel` for a config: its model's config.json (given, or read without the network), its `gpu`
    (or `budget_gib`, the memory of the GPU train runs on) and its LoRA and run settings."""
    if model_config is None:
        model_config, source = read_model_config(cfg.model)
    if budget_gib is not None:
        gpu = f"this GPU ({budget_gib:.1f} GiB)"
    else:
        gpu = str(cfg.gpu) if gpu_name(cfg.gpu) else "the GPU"
    budget = gpu_budget(cfg.gpu) if budget_gib is None else budget_gib
    shape = None
    if model_config is not None:
        try:
            shape = model_shape(model_config)
        except UnknownShape as e:
            source = f"{source}: {e}"
    return MemoryModel(shape, source, gpu, budget, Settings.from_config(cfg))
