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


def pick_precision(device: str) -> Precision:
    """fp16 on pre-Ampere GPUs such as the T4, bf16 where the hardware has it, fp32 on the CPU."""
    if device == "cpu":
        return Precision("cpu", "fp32", torch.float32, False, False, "adamw_torch")
    major, _ = torch.cuda.get_device_capability()
    if major >= 8:  # is_bf16_supported() can say True on a T4 (emulated); the capability is the real answer
        return Precision("cuda", "bf16 autocast, LoRA in fp32", torch.bfloat16, False, True, "paged_adamw_8bit")
    return Precision("cuda", "fp16 autocast, LoRA in fp32", torch.float16, True, False, "paged_adamw_8bit")


def load_model_config(model: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model)
    except Exception as e:  # OSError, hub errors, JSON errors: all mean "cannot load"
        raise UserError(
            f"cannot load model {model!r} ({_first_line(e)}); set `model` to a Hugging Face hub id or a local folder "
            "with config.json and weights (set HF_TOKEN for gated models; --smoke needs no download)"
        ) from None


def check_compatible(model_config, tokenizer, max_length: int, model: str) -> None:
    """Tokenizer and model must agree, and max_length must fit the model's positions."""
    vocab = getattr(model_config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > vocab:
        raise UserError(
            f"tokenizer {tokenizer.name_for_report!r} has {len(tokenizer)} tokens but model {model!r} has an "
            f"embedding for {vocab}; use the model's own tokenizer (leave `tokenizer` empty)"
        )
    limit = getattr(model_config, "max_position_embeddings", None)
    if limit is not None and max_length > limit:
        raise UserError(
            f"max_length {max_length} is above {model!r}'s limit of {limit} positions; set max_length to at most "
            f"{limit} (or run with --auto-maxlen)"
        )


def load_model(model: str, precision: Precision, lora, gradient_checkpointing: bool):
    """The 4-bit base with LoRA adapters, ready to train: base frozen, adapters fp32."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=precision.compute_dtype,
    )
    device_map = {"": int(os.environ.get("LOCAL_RANK", 0))} if precision.device == "cuda" else {"": "cpu"}
    try:
        base = AutoModelForCausalLM.from_pretrained(
            model,
            quantization_config=quant,
            dtype=precision.compute_dtype,
            attn_implementation="sdpa",
            device_map=device_map,
        )
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as e:
        raise UserError(
            f"cannot load model {model!r} ({_first_line(e)}); check the hub id or folder, disk space and HF_TOKEN"
        ) from None
    base.config.use_cache = False  # a KV cache would switch off packed-sequence isolation
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
        task_type="CAUSAL_LM",
    )
    model_ = get_peft_model(base, peft_config)
    for p in model_.parameters():
        if p.requires_grad:
            p.data = p.data.float()  # fp32 masters: GradScaler unscales fp32 grads only
    return model_


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]
