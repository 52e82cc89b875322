"""What is known of a model from its files alone, without loading it (no torch, no transformers): its config.json
(a local folder, the bundled copy, the Hugging Face cache or the hub), its text config, positions, vocabulary, tied
embeddings and fp16 overflow, and the checks that a tokenizer and data belong to it. Both commands read a model
through here, so `lengthscan` and `train` agree on what it is.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from analyze.errors import UserError
from analyze.load_errors import load_error
from analyze.reader import shown_place
from analyze.tokenizer import BUNDLED_MODELS, tokenizer_folder, tokenizer_name

# An explicit tokenizer must hold at least this share of the model's embedding rows (a smaller one is another
# vocabulary).
MIN_VOCAB_SHARE = 0.9

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
        positions = model_positions(config)
        if positions:
            return int(positions), f"{model} config"
    folder = tokenizer_folder(tokenizer_name)
    limit = (read_json(folder / "tokenizer_config.json") or {}).get("model_max_length") if folder else None
    if isinstance(limit, (int, float)) and 0 < limit < 10**8:  # transformers uses a huge sentinel for "unknown"
        return int(limit), "tokenizer model_max_length"
    return None, "unknown"


# values a config.json may leave to its class's defaults (Gemma 3 4B+'s text_config omits these)
TEXT_DEFAULTS = {
    "gemma3_text": {"vocab_size": 262_208, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256},
}
# `tie_word_embeddings` as each architecture's config class defaults it (transformers 5), for a config.json without the
# key; a test checks every entry against transformers. Other architectures ask transformers (`tied_by_default`).
TIED_DEFAULTS = {
    **dict.fromkeys(("gemma", "gemma2", "gemma3", "gemma3_text", "cohere", "cohere2", "starcoder2", "smollm3"), True),
    **dict.fromkeys(("llama", "mistral", "ministral", "qwen2", "qwen3", "qwen2_vl", "qwen2_5_vl", "phi", "phi3",
                     "granite", "olmo2", "glm4"), False),
}  # fmt: skip


def tied_embeddings(config: dict) -> bool:
    """Whether the output layer shares the embeddings: the config's `tie_word_embeddings`, else its class's default.

    >>> tied_embeddings({"model_type": "llama"}), tied_embeddings({"model_type": "gemma3_text"})
    (False, True)
    >>> tied_embeddings({"model_type": "gemma3", "text_config": {"tie_word_embeddings": False}})
    False
    """
    text = text_config(config)
    for where in (config, text):
        if "tie_word_embeddings" in where:
            return bool(where["tie_word_embeddings"])
    return tied_by_default(config.get("model_type") or text.get("model_type"))


@functools.cache
def tied_by_default(model_type: str | None) -> bool:
    """`tie_word_embeddings` of an architecture's config class: `TIED_DEFAULTS`, else asked of transformers (which
    imports torch where installed: seconds, so only for a config that leaves the key out), else untied (one more
    vocabulary matrix counted: the plan errs high)."""
    if model_type in TIED_DEFAULTS or model_type is None:
        return TIED_DEFAULTS.get(model_type, False)
    try:
        from transformers import CONFIG_MAPPING

        return bool(getattr(CONFIG_MAPPING[model_type](), "tie_word_embeddings", False))
    except Exception:  # unknown to this transformers, or a class that needs arguments: count the extra matrix
        return False


def load_model_config(model: str) -> dict:
    """What `train` reads of a model before anything slow: its config.json from a local folder, the bundled copy, the
    Hugging Face cache, else the hub. The bundled Qwen3 sizes not on this machine get what their family shares
    (`family_config`), offline. Errors are one line with the fix (`analyze.load_errors`)."""
    config, where = read_model_config(model)
    if config is not None:
        return config
    if model in BUNDLED_MODELS:
        return family_config(model) or {}
    try:
        if Path(model).expanduser().is_dir():
            raise OSError(where)  # "DIR has no config.json", or the path of one that does not read as JSON
        from huggingface_hub import hf_hub_download

        config = read_json(Path(hf_hub_download(model, "config.json")))
        if config is None:
            raise ValueError(f"{model}'s config.json is not a JSON object")
        return config
    except Exception as e:  # hub errors, a missing or unreadable file: `load_error` tells them apart
        raise load_error(e, "model", model) from None


def text_config(config: dict) -> dict:
    """The language model's part of a config.json (multimodal models such as Gemma 3 4B+ nest it as `text_config`),
    with the values its class would default (`TEXT_DEFAULTS`).

    >>> text_config({"model_type": "gemma3", "text_config": {"model_type": "gemma3_text"}})["vocab_size"]
    262208
    >>> text_config({"model_type": "llama", "vocab_size": 128256})["vocab_size"]
    128256
    """
    text = config.get("text_config") or config
    return TEXT_DEFAULTS.get(text.get("model_type"), {}) | text


def text_value(config: dict, key: str):
    """A value of the text config, else of the whole config (multimodal configs keep special token ids there).

    >>> text_value({"eos_token_id": 1, "text_config": {"vocab_size": 9}}, "eos_token_id")
    1
    """
    text = text_config(config)
    return text[key] if key in text else config.get(key)


def model_positions(config: dict) -> int | None:
    """The model's maximum positions, or None.

    >>> model_positions({"text_config": {"max_position_embeddings": 512}}), model_positions({})
    (512, None)
    """
    positions = text_value(config, "max_position_embeddings")
    return int(positions) if positions else None


# --- the tokenizer and the data against the model ----------------------------------------------------------------


def check_tokenizer_matches(config: dict, tokenizer, model: str) -> None:
    """The tokenizer must be the model's: its base vocabulary has embeddings, the vocabularies are about the same
    size, and the ids the model's config names as BOS and EOS are special tokens of this tokenizer. Checked before
    anything slow, since a wrong pair trains without an error and learns nothing useful. (Added tokens past the
    embeddings, such as Gemma 3 1B's image token, are allowed; `check_ids_fit` stops data that uses them.)
    """
    vocab, n = text_value(config, "vocab_size"), len(tokenizer)
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
        ids = text_value(config, key)
        ids = [] if ids is None else ids if isinstance(ids, list) else [ids]
        strange = [i for i in ids if isinstance(i, int) and i not in specials]
        if strange and len(strange) == len(ids):
            shown = tokenizer.convert_ids_to_tokens(strange[0]) if strange[0] < n else "nothing"
            raise UserError(
                f"model {model!r} ends or begins text with token id {strange[0]} ({key}), which is {shown!r} in "
                f"tokenizer {name!r}, not a special token: another model family's tokenizer; {fix}"
            )


def check_ids_fit(table, config: dict, tokenizer, model: str, paths: list) -> None:
    """Every token id of the data has an embedding row (an added token past the model's vocabulary does not)."""
    vocab = text_value(config, "vocab_size")
    if vocab is None or table.ids is None or not len(table.ids):
        return
    import numpy as np

    ids = np.asarray(table.ids)
    if int(ids.max()) < vocab:
        return
    at = int(np.argmax(ids >= vocab))
    row = int(np.searchsorted(table.offsets, at, side="right")) - 1
    token = tokenizer.convert_ids_to_tokens(int(ids[at]))
    where = shown_place(f"{paths[int(table.file_index[row])]}:{int(table.line[row])}")
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


def check_max_length(config: dict, max_length: int, model: str) -> None:
    """max_length must fit the model's positions.

    >>> check_max_length({"max_position_embeddings": 512}, 1024, "org/m")
    Traceback (most recent call last):
    analyze.errors.UserError: max_length 1024 is above 'org/m''s limit of 512 positions; set max_length to at most \
512 (or run train with --auto-maxlen)
    """
    limit = model_positions(config)
    if limit is not None and max_length > limit:
        raise UserError(
            f"max_length {max_length} is above {model!r}'s limit of {limit} positions; set max_length to at most "
            f"{limit} (or run train with --auto-maxlen)"
        )
