"""The memory plan: peak GPU memory of a QLoRA run, predicted from the model's config.json, and the largest
micro-batch or max_length that fits a GPU. No torch here: `lengthscan` shows the plan for every candidate.

The peak is what stays (4-bit base weights, the fp32 embeddings and norms that peft's kbit preparation makes, LoRA
weights with their optimizer state) plus the largest of three moments: a training step, an evaluation, and the
first step's loss check. Each is what is alive at its worst instant, counted per token from the tensors train's
own code makes on the fp16 autocast path a T4 takes (`_layer_saved`, `_training`): the residual stream and the
norms are fp32 (kbit preparation upcasts norms and embeddings), and so is every 4-bit layer's output (bitsandbytes
casts it back to its input's dtype); attention and the LoRA matmuls are fp16. Every coefficient was checked against
allocations measured on the CPU (PyTorch's profiler) on one- and two-layer slices of Qwen3-1.7B, Llama-3.2-1B and
Gemma-3-1B at their real widths (tests/test_memory_measured.py, benchmarks/bench_memory.py; docs/benchmarks.md).

>>> from analyze.model_facts import bundled_config
>>> qwen = model_shape(bundled_config("Qwen/Qwen3-1.7B"))
>>> qwen.vocab, qwen.layers, qwen.tied
(151936, 28, True)
>>> full = plan_memory(qwen, 2048, 4, Settings.from_config(loss="full"))
>>> chunked = plan_memory(qwen, 2048, 4, Settings.from_config())
>>> round(full.peak_gib, 1), round(chunked.peak_gib, 1)   # GiB; the full logits' fp32 log-softmax and gradients: 13.9
(19.0, 6.3)
>>> full.fits(gpu_budget("T4")), chunked.fits(gpu_budget("T4"))
(False, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from analyze.gpus import CONTEXT_GIB, NO_BF16, gpu_budget, gpu_name
from analyze.model_facts import overflows_fp16, read_model_config, text_config, tied_embeddings
from analyze.schema import Config

GIB = 2**30
# Logits the chunked loss makes at a time (train.loss): 8 bytes each in its forward, 16 in its backward (fp32).
LOSS_CHUNK_LOGITS = 2**24
MARGIN = 0.05  # a plan fits when its peak is at most (1 - MARGIN) of the GPU: fragmentation and what is not counted
# architectures train runs with eager attention (no SDPA in transformers 5; `train.model.attention_for` decides at
# run time): their attention keeps (heads × tokens × tokens) scores for backward
EAGER_ATTENTION = {"gemma2"}
# Architectures whose layers differ from Llama's in what they keep for backward (the attention module's source):
QK_NORM = {"qwen3", "gemma3", "gemma3_text", "olmo2"}  # q and k RMS-normed: each norm keeps its fp32 input
# norms after attention and MLP: two more fp32 inputs kept (OLMo 2 has no pre-MLP norm: one fewer than counted)
SANDWICH_NORMS = {"gemma2", "gemma3", "gemma3_text", "olmo2"}
MIXED_ATTENTION = {"gemma2", "gemma3", "gemma3_text"}  # sliding-window and full layers: two masks, two rotary tables
GPU_OPTIMIZER, CPU_OPTIMIZER = "paged_adamw_8bit", "adamw_torch"  # the transformers `optim` train uses on each
OPTIMIZER_BYTES = {GPU_OPTIMIZER: 2, CPU_OPTIMIZER: 8}  # optimizer state per trainable parameter
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4 bits, a double-quantised 8-bit absmax per 64, fp32 per 256 of those
F32 = 4  # the residual stream, norms, 4-bit layers' outputs (cast back to their fp32 input) and the MLP's tensors
COMPUTE_BYTES = {"16-bit": 2, "fp32": 4}  # attention and the LoRA matmuls' inputs, by `Settings.precision`
# Where the CPU path differs from CUDA's (the plan is for CUDA; the CPU's is what tests measure). peft checks
# torch.is_autocast_enabled(), which is CUDA's, so under CPU autocast it casts an adapter's input to the adapter's
# fp32 and its output to the base layer's (fp32); and CPU dropout keeps its noise tensor where CUDA's fused dropout
# keeps a bool mask. Bytes per element: what LoRA dropout keeps; an adapter's output as it is added to the base's.
DROPOUT_KEEP = {"cuda": 1, "cpu": 4}
ADAPTER_OUTPUT = {"cuda": None, "cpu": 4}  # None: the compute dtype
LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# fused projections (Phi-3) named as their parts
FUSED_NAMES = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


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
    qk_norm: bool = False  # `QK_NORM`
    sandwich_norms: bool = False  # `SANDWICH_NORMS`
    attention_kinds: int = 1  # 2: `MIXED_ATTENTION`

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
    text = text_config(config)
    if any(text.get(k) for k in ("num_experts", "num_local_experts", "n_routed_experts")):
        raise UnknownShape("mixture-of-experts models are not modelled")
    kinds = {text.get("model_type"), config.get("model_type")}
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
            tied=tied_embeddings(config),
            other_linear=_vision_linear(config.get("vision_config")),
            eager_attention=bool(kinds & EAGER_ATTENTION),
            qk_norm=bool(kinds & QK_NORM),
            sandwich_norms=bool(kinds & SANDWICH_NORMS),
            attention_kinds=2 if kinds & MIXED_ATTENTION or len(set(text.get("layer_types") or ())) > 1 else 1,
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
    precision: str = "16-bit"  # or "fp32": no autocast (`run.precision: fp32`; fp16-overflowing models on a T4)
    device: str = "cuda"  # or "cpu", where LoRA dropout keeps more (`DROPOUT_KEEP`)

    @classmethod
    def from_config(cls, cfg=None, **changes) -> Settings:
        """The settings of `cfg` (default: the default config), with `changes` (e.g. `loss="full"`)."""
        if cfg is None:
            cfg = Config()
        targets = cfg.lora.target_modules
        settings = cls(
            lora_r=cfg.lora.r,
            lora_targets=targets if isinstance(targets, str) else tuple(targets),
            lora_dropout=cfg.lora.dropout > 0,
            gradient_checkpointing=cfg.run.gradient_checkpointing,
            precision="fp32" if cfg.run.precision == "fp32" else "16-bit",
        )
        return replace(settings, **changes)


@dataclass(frozen=True)
class MemoryPlan:
    max_length: int
    micro_batch_size: int
    parts: dict[str, float] = field(default_factory=dict)  # GiB by part, their sum is the peak
    # GiB above the weights and optimizer state at each moment (`MOMENTS`); the largest is in `parts`
    moments: dict[str, float] = field(default_factory=dict)

    @property
    def peak_gib(self) -> float:
        return sum(self.parts.values())

    @property
    def moment(self) -> str | None:
        """The moment of the peak: "training step", "evaluation" or "loss check"."""
        return max(self.moments, key=self.moments.get, default=None)

    def fits(self, budget_gib: float) -> bool:
        return self.peak_gib <= (1 - MARGIN) * budget_gib

    def as_dict(self) -> dict:
        """The plan as `--json` shows it: its batch, peak and parts (GiB)."""
        return {
            "max_length": self.max_length,
            "micro_batch_size": self.micro_batch_size,
            "peak_gib": round(self.peak_gib, 2),
            "peak_at": self.moment,
            "parts_gib": {k: round(v, 3) for k, v in self.parts.items()},
        }

    def describe(self) -> str:
        top = sorted(self.parts.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {v:.1f}" for k, v in top if v >= 0.05)


MOMENTS = ("training step", "evaluation", "loss check")


def plan_memory(shape: ModelShape, max_length: int, micro_batch: int, s: Settings | None = None) -> MemoryPlan:
    """Predicted peak GiB of a run at `micro_batch` rows of `max_length` tokens (`s`: the default config's settings
    unless given): what stays, plus the largest of its training step, evaluation and first-step loss check."""
    s = s or Settings.from_config()
    targets = _targets(s.lora_targets)
    c = COMPUTE_BYTES[s.precision]
    batch = _Batch(micro_batch, max_length, c, DROPOUT_KEEP[s.device] * s.lora_dropout, ADAPTER_OUTPUT[s.device] or c)
    linear = sum(i * o for i, o in shape.linear_shapes.values()) * shape.layers + shape.other_linear
    lora = sum(s.lora_r * (i + o) for n, (i, o) in shape.linear_shapes.items() if n in targets) * shape.layers
    embed = shape.vocab * shape.hidden * (1 if shape.tied else 2)
    norms = (2 * shape.layers + 1) * shape.hidden
    copies = lora * batch.c if batch.c < F32 else 0  # autocast's 16-bit copies of the fp32 LoRA weights
    moments = {
        "training step": {"LoRA gradients and 16-bit copies": lora * F32 + copies, **_training(shape, batch, s)},
        "evaluation": {"LoRA 16-bit copies": copies, **_evaluation(shape, batch, s.loss)},
        "loss check": {"LoRA 16-bit copies": copies, **_check(shape, batch)} if s.loss != "full" else {},
    }
    gib = {moment: {k: v / GIB for k, v in parts.items()} for moment, parts in moments.items() if parts}
    peak = max(gib, key=lambda moment: sum(gib[moment].values()))
    parts = {
        "base weights (4-bit)": linear * NF4_BYTES / GIB,
        "embeddings and norms (fp32)": (embed + norms) * F32 / GIB,
        "LoRA + optimizer state": lora * (F32 + OPTIMIZER_BYTES[s.optimizer]) / GIB,
        **gib[peak],
        "CUDA context": CONTEXT_GIB,
    }
    return MemoryPlan(max_length, micro_batch, parts, {moment: sum(p.values()) for moment, p in gib.items()})


@dataclass(frozen=True)
class _Batch:
    """A batch's sizes, and the bytes per element of what depends on the run's settings."""

    rows: int
    length: int
    c: int  # the compute dtype (`COMPUTE_BYTES`): attention, the LoRA matmuls' inputs, logits before the softmax
    keep: int  # what LoRA dropout keeps per element (`DROPOUT_KEEP`), 0 without dropout
    adapter_out: int  # an adapter's output as peft adds it to the base layer's (`ADAPTER_OUTPUT`)

    @property
    def tokens(self) -> int:
        return self.rows * self.length

    @property
    def predicting(self) -> int:
        """Positions that predict a token: every one labelled, the worst case."""
        return self.rows * (self.length - 1)

    @property
    def pairs(self) -> int:
        """Elements of an attention mask: (query, key) pairs of each row."""
        return self.rows * self.length**2

    def window(self, vocab: int) -> _Batch:
        """The loss check's batch: one row of at most a loss chunk (`train.loss.check_window`)."""
        return replace(self, rows=1, length=min(self.length, chunk_tokens(vocab)))


def _training(shape: ModelShape, b: _Batch, s: Settings) -> dict[str, float]:
    """Bytes a training step holds at its worst instant: the activations kept across it, plus the largest transient
    — the loss's forward or backward, or the last layer recomputed for its backward."""
    h, t, targets = shape.hidden, b.tokens, _targets(s.lora_targets)
    saved = _layer_saved(shape, targets, s.lora_r, b) * t + b.c * b.pairs  # + the 16-bit mask its attention keeps
    # rotary cos and sin (fp32, per kind of attention) and the packed rows' bool masks, made once per forward
    shared = shape.attention_kinds * (2 * F32 * shape.head_dim * t + b.pairs)
    forward = _down_proj(shape, targets, s.lora_r, b) + _eager_scores(shape, b)  # what a layer's forward holds
    if s.gradient_checkpointing:
        kept = shape.layers * F32 * h * t + shared  # each layer's fp32 input
        # the last layer recomputed for its backward: the gradient at its top (fp32, and its 16-bit cast into
        # down_proj's adapter branch), its tensors kept for backward, and what its forward holds besides
        name, layer = "layer recompute (transient)", (F32 + b.c) * h * t + saved + forward
    else:
        kept = shape.layers * (F32 * h * t + saved) + shared
        name, layer = "layer forward (transient)", forward  # the last layer's
    loss = _loss_step(shape, b, s.loss)
    if loss >= layer:
        name, layer = "loss (transient)", loss
    return {"activations kept": kept, name: layer}


def _eager_scores(shape: ModelShape, b: _Batch) -> int:
    """Eager attention (`EAGER_ATTENTION`): its 16-bit scores, their fp32 softmax and its 16-bit copy, per head and
    pair of positions (counted from transformers' eager attention, not measured)."""
    return shape.heads * b.pairs * (2 * b.c + F32) if shape.eager_attention else 0


def _layer_saved(shape: ModelShape, targets: set[str], rank: int, b: _Batch) -> int:
    """Bytes per token one decoder layer keeps for its backward, besides its input.

    A 4-bit layer keeps nothing of its input (bitsandbytes' MatMul4Bit dequantizes its weight again in backward).
    Its adapter keeps dropout's mask, lora_A's 16-bit input and lora_B's (lora_A's output). The next norm keeps the
    fp32 residual; q and k norms their fp32 input. Attention (SDPA) keeps 16-bit q, k and v repeated to every head
    (packed rows have a mask, so no grouped-query kernel), its output and fp32 log-sum-exp per head. The MLP keeps
    its fp32 gate output (the activation's input), the activation's output and up_proj's output.
    """
    h, i, q, kv = shape.hidden, shape.intermediate, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    total = sum((b.keep + b.c) * d_in + b.c * rank for n, (d_in, _) in shape.linear_shapes.items() if n in targets)
    total += F32 * h * (3 if shape.sandwich_norms else 1)  # + the attention and MLP outputs their post-norms upcast
    total += F32 * (q + kv) if shape.qk_norm else 0
    total += b.c * 4 * q + F32 * shape.heads
    total += 3 * F32 * i
    return total


def _down_proj(shape: ModelShape, targets: set[str], rank: int, b: _Batch) -> int:
    """Bytes a layer's forward holds besides what it keeps, at the worst of two instants of down_proj, its last
    4-bit layer (where a recompute ends): its 4-bit matmul, with the MLP's fp32 input and product, the product's
    16-bit copy, the output and the weight dequantized to the compute dtype live, and nothing kept yet by the
    adapter; then the adapter's lora_A, with the fp32 base output and dropout's fp32 output (before its 16-bit cast).
    """
    h, i, t = shape.hidden, shape.intermediate, b.tokens
    if "down_proj" not in targets:
        return F32 * (h + i) * t + _dequantized(shape, b)
    adapter = (b.keep + b.c) * i + b.c * rank
    matmul = (F32 * (h + i) + (b.c * i if b.c < F32 else 0) + b.c * h - adapter) * t + _dequantized(shape, b)
    return max(matmul, (F32 * (2 * h + i) + (F32 * i if b.keep and b.c < F32 else 0)) * t)


def _dequantized(shape: ModelShape, b: _Batch) -> int:
    """Bytes of the largest 4-bit weight dequantized to the compute dtype: bitsandbytes makes one for every matmul,
    forward and backward."""
    return b.c * max(d_in * d_out for d_in, d_out in shape.linear_shapes.values())


def _loss_step(shape: ModelShape, b: _Batch, path: str) -> int:
    """Bytes the loss holds at its worst instant in a training step, forward or backward, besides what is kept.

    Chunked: the final norm's fp32 input (kept for backward) and output, the labelled positions' hidden states (fp32,
    and their 16-bit copy kept for backward), the head cast to 16-bit twice in forward (the model's own lm_head on no
    position keeps its copy until the outputs are dropped; the loss makes its own), and one chunk's fp32 logits and
    log-softmax; in backward, the gradient of the 16-bit hidden states, one head copy, and the chunk's logits,
    log-softmax and two fp32 gradients. Full: every position's logits at once, with the same per-logit terms.
    """
    h, v, t, n = shape.hidden, shape.vocab, b.tokens, b.predicting
    head = b.c * v * h if b.c < F32 else 0  # the fp32 head cast to the compute dtype
    if path == "full":  # the head's 16-bit input and weight kept; logits, their fp32 copy, log-softmax (kept)
        forward = 2 * F32 * h * t + head + b.c * h * t + (b.c + F32 * 2) * t * v
        backward = F32 * h * t + head + b.c * h * t + F32 * 3 * n * v  # log-softmax and two fp32 gradients
        return max(forward, backward)
    chunk = min(chunk_tokens(v), n)
    copy = b.c * h * n if b.c < F32 else 0  # the labelled hidden states cast to the compute dtype
    forward = 2 * F32 * h * t + F32 * h * n + copy + 2 * head + 2 * F32 * chunk * v
    backward = F32 * h * t + 2 * b.c * h * n + head + 4 * F32 * chunk * v
    return max(forward, backward)


def _evaluation(shape: ModelShape, b: _Batch, path: str = "chunked") -> dict[str, float]:
    """Bytes an evaluation batch holds (no gradients): the chunked loss asks for every layer's hidden state, so all
    of them (fp32) live until the loss; the largest transient is a layer's forward or the loss's. (The full loss asks
    for the logits instead: fp32 hidden states one at a time, all logits at once.)"""
    h, t = shape.hidden, b.tokens
    hidden = (shape.layers + 1 if path != "full" else 1) * F32 * h * t
    kept = hidden + shape.attention_kinds * (2 * F32 * shape.head_dim * t + b.pairs)
    # a layer's forward, with the 16-bit mask attention makes of the bool one
    layer = _forward_transient(shape, b) + b.c * b.pairs + _eager_scores(shape, b)
    loss = _full_logits(shape, b, b.tokens) if path == "full" else _loss_forward(shape, b)
    return {"evaluation hidden states": kept, "evaluation (transient)": max(layer, loss)}


def _full_logits(shape: ModelShape, b: _Batch, positions: int) -> int:
    """Bytes of the model's own logits with no gradient at `positions` positions: the head cast to the compute dtype
    as it makes them, then the logits with their fp32 copy and log-softmax."""
    v = shape.vocab
    logits, head = positions * v, (b.c * v * shape.hidden if b.c < F32 else 0)
    return max(head + b.c * logits, (b.c + (F32 if b.c < F32 else 0) + F32) * logits)


def _forward_transient(shape: ModelShape, b: _Batch) -> int:
    """Bytes a layer's forward holds with no gradient, besides its input, at the worst of two instants of up_proj:
    its 4-bit matmul (the residual and the MLP's input, fp32; the activation's output; the input's 16-bit copy, the
    output and the dequantized weight), and the sum of its adapter's output with peft's copy of the fp32 base output.
    """
    h, i, t = shape.hidden, shape.intermediate, b.tokens
    matmul = (F32 * (2 * h + i) + (b.c * h if b.c < F32 else 0) + b.c * i) * t + _dequantized(shape, b)
    return max(matmul, (F32 * (2 * h + 3 * i) + b.adapter_out * i) * t)


def _loss_forward(shape: ModelShape, b: _Batch) -> int:
    """Bytes the chunked loss holds with no gradient: the labelled hidden states (fp32 and 16-bit), one head copy,
    one chunk's fp32 logits and log-softmax."""
    h, v, n = shape.hidden, shape.vocab, b.predicting
    cast = b.c * (v * h + h * n) if b.c < F32 else 0
    return F32 * h * n + cast + 2 * F32 * min(chunk_tokens(v), n) * v


def _check(shape: ModelShape, b: _Batch) -> dict[str, float]:
    """Bytes the first step's loss check holds: on one window of at most a loss chunk, the model's own logits
    (16-bit, an fp32 copy and the log-softmax), then the chosen loss on the same window (an evaluation of it) while
    those logits are still held."""
    w = b.window(shape.vocab)
    full = _full_logits(shape, w, w.tokens) + F32 * shape.hidden * w.tokens  # + the final norm's output
    chosen = b.c * w.tokens * shape.vocab + sum(_evaluation(shape, w).values())
    return {"loss check (transient)": max(full, chosen)}


def _targets(targets: str | tuple[str, ...]) -> set[str]:
    if isinstance(targets, str):
        return set(LINEAR_NAMES) if targets == "all-linear" else {targets}
    names: set[str] = set()
    for t in targets:
        names.update(FUSED_NAMES.get(t, (t,)))
    return names


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

    >>> from analyze.model_facts import bundled_config
    >>> qwen = model_shape(bundled_config("Qwen/Qwen3-1.7B"))
    >>> f = fit(qwen, 2048, 4, 4, 5.5)
    >>> (f.max_length, f.micro_batch_size, f.grad_accum_steps), f.change.split(":")[0]
    ((2048, 2, 8), 'micro_batch_size 4 -> 2, grad_accum_steps 4 -> 8')
    """
    if s is None or round_to is None:
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
    model: str = ""  # the model planned for: the config's `model`, the one train trains (`planned_for`)
    why: str = ""  # why that model (`model_reason`)

    @property
    def planned_for(self) -> str:
        """The model planned for, why, and where its config.json came from: what the report's memory line ends with.

        >>> from analyze.model_facts import read_model_config
        >>> memory_model(Config(), *read_model_config("Qwen/Qwen3-1.7B")).planned_for
        'planned for Qwen/Qwen3-1.7B (the default model; bundled config.json)'
        """
        where = {
            f"{self.model} config (bundled)": "bundled config.json",
            f"{self.model} config (Hugging Face cache)": "config.json from the Hugging Face cache",
        }.get(self.source, self.source)  # `read_model_config`'s words, without the model's name again
        return f"planned for {self.model} ({self.why}; {where})"

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


def memory_model(
    cfg,
    model_config: dict | None = None,
    source: str = "",
    budget_gib: float | None = None,
    precision: str | None = None,
):
    """The `MemoryModel` for a config: its model's config.json (given, or read without the network), its `gpu`
    (or `budget_gib`, the memory of the GPU train runs on) and its LoRA and run settings. `precision` ("16-bit" or
    "fp32"): what train chose; else `run.precision`, and fp32 for an architecture that overflows fp16 on a GPU
    without bf16 (`NO_BF16`), as train chooses there."""
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
    settings = Settings.from_config(cfg)
    if precision is None and budget_gib is None and gpu_name(cfg.gpu) in NO_BF16 and overflows_fp16(model_config):
        precision = "fp32"
    settings = replace(settings, precision=precision or settings.precision)
    return MemoryModel(shape, source, gpu, budget, settings, cfg.model, model_reason(cfg))


def model_reason(cfg) -> str:
    """Why the memory plan is for the config's `model`: it is the model train trains, whatever the tokenizer.

    >>> model_reason(Config()), model_reason(Config(model="org/m", tokenizer="org/t"))
    ('the default model', "the config's model, which train trains, not tokenizer 'org/t''s")
    """
    from analyze.tokenizer import other_tokenizer

    why = "the default model" if cfg.model == Config().model else "the config's model"
    if tokenizer := other_tokenizer(cfg):
        why += f", which train trains, not tokenizer {tokenizer!r}'s"
    return why
