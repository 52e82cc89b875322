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
from analyze.model_files import overflows_fp16
from analyze.tokenizer import BUNDLED_MODELS, model_positions, text_config, tokenizer_name
from train.gpu_memory import emulating_t4

# A model's embedding matrix may be padded past its tokenizer (Qwen3: 151,669 tokens, 151,936 rows; Phi-3: 32,011
# and 32,064); a tokenizer under 90% of the rows is another vocabulary.
MIN_VOCAB_SHARE = 0.9
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


def pick_precision(device: str, model_config=None, requested: str = "auto") -> Precision:
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
    overflows = overflows_fp16(model_config.to_dict() if hasattr(model_config, "to_dict") else model_config)
    if overflows:
        name = f"fp32, no autocast: {overflows} overflows fp16 and this GPU has no bf16"
        return Precision("cuda", name, torch.float32, False, False, GPU_OPTIMIZER)
    return Precision("cuda", "fp16 autocast, LoRA in fp32", torch.float16, True, False, GPU_OPTIMIZER)


def load_model_config(model: str):
    """The model's config.json (a local folder, the hub cache, or the hub): small, so it is read before anything
    slow. The bundled Qwen3 models' config is known offline."""
    from transformers import AutoConfig

    try:
        # the bundled models' config is known, so their check never waits for the network
        return AutoConfig.from_pretrained(model, local_files_only=model in BUNDLED_MODELS)
    except Exception as e:  # OSError, hub errors, JSON errors: `load_error` tells them apart
        if model in BUNDLED_MODELS:
            return _bundled_config(model)
        raise load_error(e, "model", model) from None


def _bundled_config(model: str):
    """The shipped config.json of the default model; for the other bundled Qwen3 sizes, what the family shares
    (`analyze.model_files.family_config`: architecture, positions, special tokens) over the class's default sizes. The
    memory plan never reads sizes from here: it reads the model's own config.json, and says "unknown" without it."""
    from transformers import AutoConfig

    from analyze.model_files import bundled_config, family_config

    shipped = bundled_config(model)
    if shipped is not None:
        return AutoConfig.for_model(**shipped)
    return AutoConfig.for_model(**family_config(model))


def check_tokenizer_matches(model_config, tokenizer, model: str) -> None:
    """The tokenizer must be the model's: its base vocabulary has embeddings, the vocabularies are about the same
    size, and the ids the model's config names as BOS and EOS are special tokens of this tokenizer. Checked before
    anything slow, since a wrong pair trains without an error and learns nothing useful. (Added tokens past the
    embeddings, such as Gemma 3 1B's image token, are allowed; `check_ids_fit` stops data that uses them.)
    """
    config = text_config(model_config)
    vocab, n = getattr(config, "vocab_size", None), len(tokenizer)
    base = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=False)
    name = tokenizer_name(tokenizer)
    fix = f"leave `tokenizer` empty to use {model!r}'s own, or set `model` to the model {name!r} belongs to"
    if vocab is not None and base > vocab:
        raise UserError(
            f"tokenizer {name!r} has {n:,} tokens but model {model!r} has embeddings for {vocab:,}: it is not this "
            f"model's tokenizer; {fix}"
        )
    if vocab is not None and n < MIN_VOCAB_SHARE * vocab:
        raise UserError(
            f"tokenizer {name!r} has {n:,} tokens but model {model!r} has embeddings for {vocab:,}: another "
            f"vocabulary; {fix}"
        )
    specials = {int(i) for i in tokenizer.added_tokens_decoder} | set(tokenizer.all_special_ids)
    for key in ("bos_token_id", "eos_token_id"):
        ids = getattr(config, key, None)
        ids = [] if ids is None else ids if isinstance(ids, list) else [ids]
        strange = [i for i in ids if isinstance(i, int) and i not in specials]
        if strange and len(strange) == len(ids):
            shown = tokenizer.convert_ids_to_tokens(strange[0]) if strange[0] < n else "nothing"
            raise UserError(
                f"model {model!r} ends or begins text with token id {strange[0]} ({key}), which is {shown!r} in "
                f"tokenizer {name!r}, not a special token: another model family's tokenizer; {fix}"
            )


def check_ids_fit(table, model_config, tokenizer, model: str, paths: list) -> None:
    """Every token id of the data has an embedding row (an added token past the model's vocabulary does not)."""
    vocab = getattr(text_config(model_config), "vocab_size", None)
    if vocab is None or table.ids is None or not len(table.ids):
        return
    import numpy as np

    ids = np.asarray(table.ids)
    if int(ids.max()) < vocab:
        return
    at = int(np.argmax(ids >= vocab))
    row = int(np.searchsorted(table.offsets, at, side="right")) - 1
    token = tokenizer.convert_ids_to_tokens(int(ids[at]))
    where = f"{paths[int(table.file_index[row])]}:{int(table.line[row])}"
    raise UserError(
        f"{where}: token {token!r} (id {int(ids[at])}) has no embedding in model {model!r} ({vocab:,} rows); remove "
        "it from the data or the chat template"
    )


def check_same_vocabulary(tokenizer, own, model: str) -> None:
    """An explicit tokenizer must give every token of the model's own tokenizer (`own`) the same id; it may add
    tokens (within the embedding rows, checked by `check_tokenizer_matches`)."""
    mine, theirs = tokenizer.get_vocab(), own.get_vocab()
    moved = [t for t, i in theirs.items() if mine.get(t) != i]
    if moved:
        name = tokenizer_name(tokenizer)
        example = moved[0]
        raise UserError(
            f"tokenizer {name!r} is not model {model!r}'s: {len(moved):,} of its {len(theirs):,} tokens have other "
            f"ids (e.g. {example!r} is {mine.get(example)} here, {theirs[example]} in the model's own); leave "
            f"`tokenizer` empty to use the model's own, or set `model` to the model {name!r} belongs to"
        )


def check_max_length(model_config, max_length: int, model: str) -> None:
    """max_length must fit the model's positions."""
    limit = model_positions(model_config)
    if limit is not None and max_length > limit:
        raise UserError(
            f"max_length {max_length} is above {model!r}'s limit of {limit} positions; set max_length to at most "
            f"{limit} (or run with --auto-maxlen)"
        )


def attention_for(model_config) -> str:
    """SDPA (memory-efficient on a T4, which has no FlashAttention-2) where the architecture has it, else eager
    (Gemma 2 in transformers 5). Both take transformers' packed-sequence mask from position_ids."""
    from transformers import AutoModelForCausalLM

    try:
        cls = AutoModelForCausalLM._model_mapping[type(model_config)]
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
