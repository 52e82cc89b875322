"""What is known of a model from its files alone, without loading it (no transformers, no network): its
config.json (a local folder, the bundled copy, or the Hugging Face cache), what the bundled tokenizer's model family
shares, and the position limit a suggestion is capped at.
"""

from __future__ import annotations

import json
from pathlib import Path

from analyze.tokenizer import BUNDLED_MODELS, tokenizer_folder

BUNDLED_CONFIGS = Path(__file__).parent / "bundled" / "configs"  # config.json of the default model, for offline use


# Architectures (config.json `model_type`) whose activations overflow fp16's range (65,504) in training: on a GPU
# without bf16 (a T4) they are computed in fp32. Gemma 3: transformers#36822 (activations near 800k); the rest as
# unsloth's FORCE_FLOAT32 list has them in 2026 (NaN gradients in fp16).
FP16_OVERFLOW = ("gemma3", "gemma3_text", "gemma3n", "gemma3n_text", "gpt_oss", "qwen3_5", "qwen3_5_text", "qwen3_moe",
                 "glm4_moe")  # fmt: skip


def overflows_fp16(config: dict | None) -> str | None:
    """The model_type of a config.json (or of its text config) known to overflow fp16, else None.

    >>> overflows_fp16({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text"}})
    'gemma3'
    >>> overflows_fp16({"model_type": "qwen3"}), overflows_fp16(None)
    (None, None)
    """
    config = config or {}
    for kind in (config.get("model_type"), (config.get("text_config") or {}).get("model_type")):
        if kind in FP16_OVERFLOW:
            return kind
    return None


def bundled_config(model: str) -> dict | None:
    """The shipped config.json of a model (the default, Qwen/Qwen3-1.7B), or None."""
    path = BUNDLED_CONFIGS / f"{model.rsplit('/', 1)[-1]}.json"
    return json.loads(path.read_text()) if "/" in model and path.is_file() else None


# The shipped config that speaks for each bundled tokenizer's model family (`analyze.tokenizer.BUNDLED_MODELS`),
# and the keys all sizes of the family share with it: what is known offline of the sizes not shipped.
FAMILY_CONFIGS = {"qwen3": "Qwen/Qwen3-1.7B"}
FAMILY_KEYS = ("model_type", "max_position_embeddings", "bos_token_id", "eos_token_id", "vocab_size")


def family_config(model: str) -> dict | None:
    """What a bundled model's family shares (`FAMILY_KEYS`), from the family's shipped config; None for other
    models. Its sizes are unknown unless the model's own config is shipped (`bundled_config`).

    >>> family_config("Qwen/Qwen3-8B")["max_position_embeddings"], family_config("org/other")
    (40960, None)
    """
    family = BUNDLED_MODELS.get(model)
    shipped = bundled_config(FAMILY_CONFIGS[family]) if family in FAMILY_CONFIGS else None
    return {k: shipped[k] for k in FAMILY_KEYS if k in shipped} if shipped else None


def read_model_config(model: str) -> tuple[dict | None, str]:
    """A model's config.json without the network: a local folder, the Hugging Face cache, or the bundled copy.

    Returns (config, where it came from) or (None, why it is unknown).
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        path = folder / "config.json"
        if not path.is_file():
            return None, f"{folder} has no config.json"
        return read_json(path), str(path)
    bundled = bundled_config(model)
    if bundled is not None:
        return bundled, f"{model} config (bundled)"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
    except ValueError:  # HFValidationError: not a valid repo id, so nothing cached under it
        cached = None
    if isinstance(cached, str):
        return read_json(Path(cached)), f"{model} config (Hugging Face cache)"
    return None, f"{model}'s config.json is not in the local Hugging Face cache (it is once train has run)"


def read_json(path: Path) -> dict | None:
    """A JSON object from a file, or None when it cannot be read or is not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_limit(tokenizer_name: str, model: str | None) -> tuple[int | None, str]:
    """The measured model's maximum positions and where that number came from, read from files only (no network,
    no transformers): its config.json (a folder, the bundled copy or the Hugging Face cache), what a bundled model's
    family shares, else the tokenizer's `model_max_length`."""
    if model and not model.startswith("bundled:"):
        config = read_model_config(model)[0] or family_config(model) or {}
        positions = (config.get("text_config") or config).get("max_position_embeddings") or config.get(
            "max_position_embeddings"
        )
        if positions:
            return int(positions), f"{model} config"
    folder = tokenizer_folder(tokenizer_name)
    limit = (read_json(folder / "tokenizer_config.json") or {}).get("model_max_length") if folder else None
    if isinstance(limit, (int, float)) and 0 < limit < 10**8:  # transformers uses a huge sentinel for "unknown"
        return int(limit), "tokenizer model_max_length"
    return None, "unknown"
