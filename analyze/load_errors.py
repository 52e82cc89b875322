"""Why a model or tokenizer did not load, told apart — missing, gated, offline and not cached, CUDA, bitsandbytes —
as one `UserError` line with the fix for that cause.

transformers wraps the hub's errors in an `OSError` with its own text, so the cause is looked for along the chain
of exceptions (`__cause__`, `__context__`) by type first, then by the words the libraries use.
"""

from __future__ import annotations

import re
from pathlib import Path

from analyze.errors import UserError, raised_in


class LoadError(UserError):
    """A `UserError` that also says which cause was found (`cause`: gated, offline, missing, no_folder, accelerate,
    bitsandbytes, module, out_of_memory, cuda, not_loadable, unknown)."""

    def __init__(self, message: str, cause: str):
        super().__init__(message)
        self.cause = cause


FILES = {"model": "config.json and the weights", "tokenizer": "tokenizer.json and tokenizer_config.json"}
SETTING = {
    "model": "`model` (--model)",
    "tokenizer": "--tokenizer (config `tokenizer`)",
    "dataset": "the data entry (FILES or data.train)",
}  # where each is set


def load_error(e: BaseException, what: str, name: str) -> LoadError:
    """The one-line error for `what` ("model", "tokenizer") `name` failing to load with `e`. A cause it does not
    recognise is named by its type, not dressed up as a wrong id.

    >>> hub = OSError("You are trying to access a gated repo. Make sure to have access to it.")
    >>> print(load_error(hub, "model", "meta-llama/Llama-3.2-1B"))  # doctest: +ELLIPSIS
    model 'meta-llama/Llama-3.2-1B' is gated: accept its licence at https://huggingface.co/meta-llama/Llama-3.2-1B ...
    >>> print(load_error(ImportError("No module named 'bitsandbytes'"), "model", "org/m"))  # doctest: +ELLIPSIS
    cannot load model 'org/m' in 4-bit: bitsandbytes failed (No module named 'bitsandbytes'); ...
    >>> print(load_error(TypeError("unexpected keyword argument 'dtype'"), "model", "org/m"))  # doctest: +ELLIPSIS
    cannot load model 'org/m' (TypeError: unexpected keyword argument 'dtype'): not a cause lengthscan knows; ...
    """
    chain = _chain(e)
    names = {type(x).__name__ for x in chain}
    text = " ".join(str(x) for x in chain).lower().replace(name.lower(), "")  # the name's own words say nothing
    first = first_line(e)
    setting = SETTING.get(what, what)
    if _looks_like_a_path(name) and not Path(name).expanduser().exists():
        return LoadError(
            f"{what} folder {name!r} does not exist; set {setting} to an existing folder or a hub id", "no_folder"
        )
    if "GatedRepoError" in names or "gated repo" in text:
        return LoadError(
            f"{what} {name!r} is gated: accept its licence at https://huggingface.co/{name} while logged in, then "
            "set HF_TOKEN (or run `hf auth login`) and try again",
            "gated",
        )
    if "LocalEntryNotFoundError" in names or "offline mode" in text or "cannot find the requested files" in text:
        return LoadError(
            f"{what} {name!r} is not on this machine and the hub is not reachable (or HF_HUB_OFFLINE is set): "
            f"download it first (`hf download {name}`), or pass a local folder",
            "offline",
        )
    if (
        names & {"RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "HFValidationError"}
        or "not a valid model identifier" in text
        or "does not appear to have a file named" in text
    ):
        return LoadError(
            f"{what} {name!r} not found ({first}): check the hub id's spelling (org/name) — a private one needs "
            f"HF_TOKEN — or set {setting} to a local folder that holds its files",
            "missing",
        )
    missing = next((x for x in chain if isinstance(x, ImportError)), None)
    if missing is not None and "bitsandbytes" not in (missing.name or "") and "requires accelerate" in text:
        return LoadError(
            f"cannot load {what} {name!r} in 4-bit: it needs accelerate; `pip install accelerate`", "accelerate"
        )
    if "bitsandbytes" in text or any(raised_in(x, lambda f: "/bitsandbytes/" in f) for x in chain):
        return LoadError(
            f"cannot load {what} {name!r} in 4-bit: bitsandbytes failed ({first}); install a build for this machine "
            "(`pip install -U bitsandbytes`) and check that it sees the GPU (`python -m bitsandbytes`)",
            "bitsandbytes",
        )
    if missing is not None and missing.name:
        return LoadError(
            f"cannot load {what} {name!r}: module {missing.name!r} is missing; `pip install {missing.name}`",
            "module",
        )
    if "out of memory" in text:
        return LoadError(
            f"the GPU ran out of memory while loading {what} {name!r}: free it (another process? `nvidia-smi`) or "
            "choose a smaller model",
            "out_of_memory",
        )
    if "AcceleratorError" in names or re.search(r"\bcuda (error|driver)|\bcudnn\b|\bnccl\b", text):
        return LoadError(
            f"cannot load {what} {name!r}: CUDA failed ({first}); check the GPU and driver with `nvidia-smi` and "
            "that torch was built for them (`python -c 'import torch; print(torch.cuda.is_available())'`), or "
            "train with --device cpu",
            "cuda",
        )
    if not isinstance(e, (OSError, ValueError)):  # transformers says "cannot load" with these; others may be bugs
        return LoadError(
            f"cannot load {what} {name!r} ({type(e).__name__}: {first}): not a cause lengthscan knows; check that "
            "your transformers version supports this model, and report it with the output of `pip list` if it does",
            "unknown",
        )
    if _looks_like_a_path(name) or Path(name).expanduser().is_dir():
        return LoadError(
            f"folder {name!r} holds no {what} that loads ({first}); it needs the files of the model's hub repository "
            f"({FILES.get(what, 'config.json')}), or set {setting} to a hub id",
            "not_loadable",
        )
    return LoadError(
        f"cannot load {what} {name!r} ({first}); set {setting} to a Hugging Face hub id or a local folder",
        "not_loadable",
    )


def first_line(e: BaseException) -> str:
    """The first line of an error's message (or its type), at most 200 characters."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _looks_like_a_path(name: str) -> bool:
    """A local path rather than a hub id (`org/name`): absolute, relative with ./ or ~, or more than one `/`."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def _chain(e: BaseException | None) -> list[BaseException]:
    """`e` and the errors it was raised from or while handling (not those it suppressed with `from None`)."""
    out: list[BaseException] = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return out
