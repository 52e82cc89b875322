"""A tiny random model of the configured architecture, built locally with the real tokenizer: nothing downloaded.

`train --smoke` saves one into the output folder and then loads it through the same 4-bit + LoRA path as a real
run, so the whole pipeline (quantisation, LoRA, packing, eval, save) is exercised on a CPU in about a minute.
"""

from __future__ import annotations

from pathlib import Path

from analyze.errors import UserError
from analyze.tokenizer import BUNDLED_MODELS

# Small enough to train on a CPU, large enough that 4-bit blocks (64 values) and LoRA layers are real.
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}


def tiny_config(model: str, tokenizer):
    """The configured model's config with tiny sizes and the tokenizer's vocabulary (no network)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model, local_files_only=True)
    except Exception:
        if model not in BUNDLED_MODELS:
            raise UserError(
                f"--smoke needs {model!r}'s config.json locally to build a tiny model of its architecture; "
                "download it once (or pass a local model folder), or run the smoke test with the default Qwen3 model"
            ) from None
        from transformers import Qwen3Config

        config = Qwen3Config(max_position_embeddings=40960, tie_word_embeddings=True)
    values = config.to_dict()
    values.pop("layer_types", None)  # derived from num_hidden_layers again
    values.update({k: v for k, v in TINY.items() if k in values})
    values["vocab_size"] = -(-len(tokenizer) // 64) * 64  # every id of the real tokenizer, rounded like Qwen's
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(tokenizer, key, None) is not None:
            values[key] = getattr(tokenizer, key)
    values["use_cache"] = False
    return type(config).from_dict(values)


def build_tiny_model(model: str, tokenizer, folder: Path, seed: int = 0) -> Path:
    """Save a randomly initialised tiny model (fp32 safetensors) into `folder` and return it."""
    import torch
    from transformers import AutoModelForCausalLM

    config = tiny_config(model, tokenizer)
    torch.manual_seed(seed)
    tiny = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    folder = Path(folder)
    tiny.save_pretrained(folder)
    return folder
