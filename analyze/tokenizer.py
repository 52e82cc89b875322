"""The tokenizer the trainer will use — the bundled Qwen3 one, a hub id, or a local folder: which one, loading it,
its name, where its files are and their fingerprint (what a cached result is keyed by)."""

from __future__ import annotations

import os
from pathlib import Path

from analyze.errors import UserError

BUNDLED = Path(__file__).parent / "bundled"
# Model ids whose tokenizer and chat template are byte-identical to the bundled Qwen3 files
# (bundled/qwen3/PROVENANCE.md), so the default works offline. Anything else loads the normal way.
BUNDLED_MODELS = {
    f"Qwen/Qwen3-{size}": "qwen3" for size in ("0.6B", "1.7B", "4B", "8B", "14B", "32B", "30B-A3B", "235B-A22B")
}


def resolve_tokenizer_name(tokenizer: str | None, model: str | None) -> str:
    """Where the tokenizer comes from: an explicit `tokenizer`, else the model's own (bundled when identical).

    >>> resolve_tokenizer_name(None, "Qwen/Qwen3-1.7B")
    'bundled:qwen3'
    >>> resolve_tokenizer_name(None, "meta-llama/Llama-3.2-1B-Instruct")
    'meta-llama/Llama-3.2-1B-Instruct'
    """
    if tokenizer:
        return tokenizer
    if model in BUNDLED_MODELS:
        return f"bundled:{BUNDLED_MODELS[model]}"
    if not model:
        raise UserError("no tokenizer: pass --tokenizer (a hub id or a folder) or set model in the config")
    return model


def load_tokenizer(name: str, chat_template_file: str | Path | None = None):
    """A fast `transformers` tokenizer with a chat template, or a one-line `UserError` with the fix."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # "PyTorch was not found": the analyzer needs none
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    source = BUNDLED / name.removeprefix("bundled:") if name.startswith("bundled:") else name
    if name.startswith("bundled:") and not Path(source).is_dir():
        raise UserError(f"no bundled tokenizer {name!r}; the bundled one is 'bundled:qwen3'")
    try:
        tok = AutoTokenizer.from_pretrained(str(source))
    except Exception as e:  # transformers raises OSError, ValueError, hub errors…: `load_error` tells them apart
        from analyze.load_errors import load_error

        raise load_error(e, "tokenizer", name) from None
    if not getattr(tok, "is_fast", False) or not hasattr(tok, "backend_tokenizer"):
        raise UserError(f"tokenizer {name!r} has no fast (tokenizers) version; lengthscan needs tokenizer.json")
    if chat_template_file is not None:
        path = Path(chat_template_file)
        if not path.is_file():
            raise UserError(f"{path}: chat template file not found; pass a Jinja template file to --chat-template")
        tok.chat_template = path.read_text(encoding="utf-8")
    return tok


def tokenizer_name(tokenizer) -> str:
    """The tokenizer's name as a user gives it (shown in reports, written into the config's provenance): the hub id
    or folder it was loaded from, or `bundled:NAME` for a bundled one.

    >>> tokenizer_name(load_tokenizer("bundled:qwen3"))
    'bundled:qwen3'
    """
    name = str(getattr(tokenizer, "name_or_path", "") or "tokenizer")
    return f"bundled:{Path(name).name}" if Path(name).parent == BUNDLED else name


def other_tokenizer(cfg) -> str | None:
    """The config's `tokenizer` when it is not the model's own (another hub id, folder or bundled one), else None.

    >>> from analyze.schema import Config
    >>> other_tokenizer(Config(tokenizer="bundled:qwen3")), other_tokenizer(Config(tokenizer="org/other"))
    (None, 'org/other')
    """
    own = resolve_tokenizer_name(None, cfg.model)
    return cfg.tokenizer if cfg.tokenizer and cfg.tokenizer not in (own, cfg.model) else None


def measured_model(cfg) -> str:
    """The model whose tokens are counted, so whose position limit caps the suggestion: the config's `tokenizer`
    when it names another model (a hub id or folder), else `model`.

    >>> from analyze.schema import Config
    >>> measured_model(Config()), measured_model(Config(tokenizer="meta-llama/Llama-3.2-1B"))
    ('Qwen/Qwen3-1.7B', 'meta-llama/Llama-3.2-1B')
    """
    return other_tokenizer(cfg) or cfg.model


# Files of a model folder that hold weights, not tokenization: left out of the tokenizer's fingerprint.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack", ".onnx", ".ckpt", ".index.json")
FINGERPRINT_MAX_FILE = 64 << 20


def tokenizer_folder(name: str) -> Path | None:
    """Where a tokenizer's files are, without loading it: the bundled folder, a local folder, or the hub id's
    snapshot in the Hugging Face cache; None when they are not on this machine."""
    if name.startswith("bundled:"):
        folder = BUNDLED / name.removeprefix("bundled:")
        return folder if folder.is_dir() else None
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name, "tokenizer_config.json")
    except ValueError:  # HFValidationError: not a repo id, so nothing cached under it
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def files_fingerprint(name: str, chat_template_file: str | Path | None = None) -> str | None:
    """A hash of every file the tokenizer is loaded from (its folder but the weights), the chat template file and
    the versions of transformers and tokenizers (they render and encode): equal fingerprints give equal token ids,
    so a cached result can be reused without loading the tokenizer. None when the files are not all here."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    folder = tokenizer_folder(name)
    if folder is None:
        return None
    h = hashlib.sha256()
    try:
        h.update(f"{version('transformers')} {version('tokenizers')}".encode())
    except PackageNotFoundError:
        return None
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.endswith(WEIGHT_SUFFIXES):
            continue
        stat = f.stat()
        if stat.st_size <= FINGERPRINT_MAX_FILE:
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        else:  # too big to read on every run: its size and modification time stand for it
            h.update(f"{f.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    if chat_template_file is not None:
        template = Path(chat_template_file)
        if not template.is_file():
            return None  # loading says what is wrong
        h.update(b"template\0" + template.read_bytes())
    return "files:" + h.hexdigest()[:16]
