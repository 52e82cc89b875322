"""The model: 4-bit NF4 base (double quantisation) + LoRA adapters, precision chosen from the device.

T4 (compute capability 7.5)   fp16 autocast, LoRA weights fp32 (so the grad scaler never unscales fp16 grads),
                              paged 8-bit AdamW, SDPA attention (no FlashAttention-2 on Turing)
Ampere or newer               bf16 autocast, LoRA weights fp32, paged 8-bit AdamW
CPU                           fp32 everywhere, plain AdamW (tests and `--smoke`)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from analyze.errors import UserError
from analyze.load_errors import load_error
from analyze.memory import CPU_OPTIMIZER, GPU_OPTIMIZER
from analyze.model_facts import load_model_config, overflows_fp16
from train.gpu_memory import emulating_t4

# A model's embedding matrix may be padded past its tokenizer (Qwen3: 151,669 tokens, 151,936 rows; Phi-3: 32,011
# and 32,064); a tokenizer under 90% of the rows is another vocabulary.
# The parts of a multimodal model that text-only training never uses: no LoRA adapters there.
NON_TEXT_MODULES = r".*(vision_tower|vision_model|visual|multi_modal_projector|audio_tower|embed_vision).*"


@dataclass
class Precision:
    device: str  # "cuda" or "cpu"
    name: str
    compute_dtype: torch.dtype  # dtype of the 4-bit matmuls and of the non-quantised base weights
    fp16: bool
    bf16: bool
    optim: str  # a transformers `optim` name

    def describe(self) -> str:
        return f"{self.name} on {self.device}, optimizer {self.optim}"

    @property
    def planned(self) -> str:
        """The memory plan's name for it (`analyze.memory.COMPUTE_BYTES`): "fp32" or "16-bit"."""
        return "fp32" if self.compute_dtype == torch.float32 else "16-bit"


def resolve_device(requested: str, smoke: bool) -> str:
    """cuda or cpu, or a one-line error when a real run has no GPU."""
    has_cuda = torch.cuda.is_available()
    if requested == "cpu" or (requested == "auto" and smoke):
        return "cpu"
    if has_cuda:
        return "cuda"
    if requested == "cuda":
        raise UserError("run.device is cuda but no CUDA device is visible; check `nvidia-smi`, or pass --device cpu")
    raise UserError(
        "no CUDA device found; a real run needs a GPU (a 16 GB T4 is enough). Check data and config here with "
        "`train --smoke`, or train on the CPU anyway (very slow) with --device cpu"
    )


def pick_precision(device: str, model_config: dict | None = None, requested: str = "auto") -> Precision:
    """fp16 on pre-Ampere GPUs such as the T4 (or when emulating one), bf16 where the hardware has it, fp32 on the
    CPU; fp32 on an fp16 GPU for an architecture that overflows fp16 (`FP16_OVERFLOW`), or when `requested`."""
    if device == "cpu":
        return Precision("cpu", "fp32", torch.float32, False, False, CPU_OPTIMIZER)
    if requested == "fp32":
        return Precision("cuda", "fp32 (run.precision), no autocast", torch.float32, False, False, GPU_OPTIMIZER)
    major, _ = torch.cuda.get_device_capability()
    # is_bf16_supported() can say True on a T4 (emulated); the capability is the real answer
    if major >= 8 and not emulating_t4():
        return Precision("cuda", "bf16 autocast, LoRA in fp32", torch.bfloat16, False, True, GPU_OPTIMIZER)
    overflows = overflows_fp16(model_config)
    if overflows:
        name = f"fp32, no autocast: {overflows} overflows fp16 and this GPU has no bf16"
        return Precision("cuda", name, torch.float32, False, False, GPU_OPTIMIZER)
    return Precision("cuda", "fp16 autocast, LoRA in fp32", torch.float16, True, False, GPU_OPTIMIZER)


def attention_for(model_config) -> str:
    """SDPA (memory-efficient on a T4, which has no FlashAttention-2) where the architecture has it, else eager
    (Gemma 2 in transformers 5). Both take transformers' packed-sequence mask from position_ids. `model_config`: a
    config.json dict or a transformers config."""
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    try:
        kind = model_config.get("model_type") if isinstance(model_config, dict) else None
        config_class = CONFIG_MAPPING[kind] if kind else type(model_config)
        cls = AutoModelForCausalLM._model_mapping[config_class]
    except (KeyError, ValueError):
        return "sdpa"  # not a known causal LM: from_pretrained will say so
    return "sdpa" if getattr(cls, "_supports_sdpa", False) else "eager"


def keep_4bit_differentiable(model) -> int:
    """Stop bitsandbytes repacking 4-bit weights for its CPU inference kernel; returns how many layers it covers.

    On a CPU with AVX512-BF16, bitsandbytes 0.50's `Linear4bit` repacks its weight the first time it runs in eval
    mode without grad (the loss check, every evaluation); from then on `matmul_4bit` takes `gemv_4bit`, which has no
    backward, so no gradient reaches anything below a 4-bit layer and the forward changes. The flag it checks is
    per layer: cleared, every forward takes the differentiable dequantize-and-matmul path, in train and in eval.
    A layer already repacked is unpacked first.
    """
    import bitsandbytes as bnb
    from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
        state = getattr(layer.weight, "quant_state", None)
        if getattr(state, "packing_format_for_cpu", False):
            layer.weight.data, layer.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                layer.weight.data, state
            )
    return len(layers)


def pad_id(tokenizer) -> int:
    """The id that fills a batch's short rows. Padding is a sequence of its own with labels -100, so any id
    works: the pad token, else EOS (Llama 3 has no pad token), else 0."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def load_model(model: str, precision: Precision, lora, gradient_checkpointing: bool, seed: int):
    """The 4-bit base with LoRA adapters, ready to train: base frozen, adapters fp32; the adapters' random start
    depends on `seed` alone (not on what ran before in this process)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=precision.compute_dtype,
    )
    device_map = {"": int(os.environ.get("LOCAL_RANK", 0))} if precision.device == "cuda" else {"": "cpu"}
    attention = attention_for(load_model_config(model))  # its own errors say what they are
    try:
        base = AutoModelForCausalLM.from_pretrained(
            model,
            quantization_config=quant,
            dtype=precision.compute_dtype,
            attn_implementation=attention,
            device_map=device_map,
        )
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as e:  # missing, gated, offline, bitsandbytes or CUDA: each with its fix
        raise load_error(e, "model", model) from None
    base.config.use_cache = False  # a KV cache would switch off packed-sequence isolation
    if precision.device == "cpu":
        keep_4bit_differentiable(base)
    base = prepare_model_for_kbit_training(
        base,
        use_gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    peft_config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        # a multimodal model (Gemma 3 4B+) loads with its vision tower; text data never reaches it
        exclude_modules=NON_TEXT_MODULES if getattr(base.config, "vision_config", None) is not None else None,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    model_ = get_peft_model(base, peft_config)
    for p in model_.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # fp32 masters: GradScaler unscales fp32 grads only
    return model_
