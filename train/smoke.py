"""A tiny random model of the configured architecture, built locally with the real tokenizer: nothing downloaded.

`train --smoke` saves one into its output folder and then loads it through the same 4-bit + LoRA path as a real
run, so the whole pipeline (quantisation, LoRA, packing, eval, save) is exercised on a CPU in about a minute. The
architecture comes from the model's config.json (a local folder, e.g. `--model DIR` with the tokenizer files
beside it; the hub cache; or the bundled Qwen3 config), so Llama, Gemma 3, Mistral, Phi or Qwen all work.
"""

from __future__ import annotations

from pathlib import Path

from analyze.errors import UserError
from analyze.model_facts import text_config

SMOKE_MAX_LENGTH = 256  # rows are capped for the CPU: the logits of a 150k vocabulary dominate the cost
SMOKE_EVAL_ROWS = 8
# What --smoke sets unless the command line says otherwise: a few CPU steps with a rate that visibly moves a
# random model, so "the loss went down" is a real check of the gradient path.
SMOKE = {
    "run.device": "cpu",
    "run.max_steps": 8,
    "schedule.min_evals": 2,  # eval and save at steps 4 and 8
    "run.logging_steps": 1,
    "optim.micro_batch_size": 2,
    "optim.grad_accum_steps": 2,
    "optim.learning_rate": 5e-3,
    "schedule.warmup": 0,
    "optim.lr_scheduler": "constant",
}
# Small enough to train on a CPU, large enough that 4-bit blocks (64 values) and LoRA layers are real.
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}


def tiny_config(model_config: dict, tokenizer):
    """The model's (text) config (a config.json dict, `analyze.model_facts.load_model_config`) as a transformers
    config with tiny sizes and the tokenizer's vocabulary and special tokens."""
    config_class = _text_config_class(model_config)
    values = config_class.from_dict(dict(text_config(model_config))).to_dict()  # the class's defaults filled in
    values.pop("layer_types", None)  # derived from num_hidden_layers again
    tiny = dict(TINY)
    head_dim = values.get("head_dim") or values["hidden_size"] // values["num_attention_heads"]
    if _rope_lists(values):  # per-dimension rope factors (Phi-3.5 longrope) fix the head size: keep it, fewer heads
        heads = max(1, TINY["hidden_size"] // head_dim)
        tiny |= {"head_dim": head_dim, "num_attention_heads": heads, "num_key_value_heads": heads,
                 "hidden_size": head_dim * heads}  # fmt: skip
    values.update({k: v for k, v in tiny.items() if k in values})
    values["vocab_size"] = -(-len(tokenizer) // 64) * 64  # every id of the real tokenizer, rounded like Qwen's
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        values[key] = getattr(tokenizer, key, None)
    values["use_cache"] = False
    values.pop("torch_dtype", None)
    values["dtype"] = "float32"  # a CPU model: the real config's bf16 would cost precision and speed there
    try:
        return config_class.from_dict(values)
    except Exception as e:  # transformers validates configs strictly; an architecture we cannot shrink
        raise UserError(
            f"--smoke cannot build a tiny {values.get('model_type')} model ({str(e).splitlines()[0][:160]}); check "
            "data and config with --dry-run instead"
        ) from None


def _text_config_class(model_config: dict):
    """The transformers config class of the language model of a config.json."""
    from transformers import CONFIG_MAPPING

    text, kind = model_config.get("text_config"), model_config.get("model_type")
    try:
        if text is None:
            return CONFIG_MAPPING[kind]
        return (
            CONFIG_MAPPING[text["model_type"]]
            if "model_type" in text
            else CONFIG_MAPPING[kind].sub_configs["text_config"]
        )
    except KeyError:
        raise UserError(
            f"--smoke cannot build a tiny {kind!r} model: this transformers does not know the architecture; upgrade "
            "transformers, or check data and config with --dry-run instead"
        ) from None


def _rope_lists(values: dict) -> bool:
    """Whether the rope settings hold per-dimension lists, whose length is tied to the head size."""
    rope = values.get("rope_parameters") or values.get("rope_scaling") or {}
    return isinstance(rope, dict) and any(isinstance(v, list) for v in rope.values())


def build_tiny_model(model_config, tokenizer, folder: Path, seed: int) -> Path:
    """Save a randomly initialised tiny model (fp32 safetensors) into `folder` and return it."""
    import torch
    from transformers import AutoModelForCausalLM

    from train.model import attention_for

    config = tiny_config(model_config, tokenizer)
    torch.manual_seed(seed)
    tiny = AutoModelForCausalLM.from_config(config, attn_implementation=attention_for(config), dtype=torch.float32)
    folder = Path(folder)
    tiny.save_pretrained(folder)
    return folder
