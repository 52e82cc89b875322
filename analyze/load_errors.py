"""Why a model or tokenizer did not load, told apart — missing, gated, offline and not cached, CUDA, bitsandbytes —
as one `UserError` line with the fix for that cause.

transformers wraps the hub's errors in an `OSError` with its own text, so the cause is looked for along the chain
of exceptions (`__cause__`, `__context__`) by type first, then by the words the libraries use.
"""

from __future__ import annotations

from pathlib import Path

from analyze.errors import UserError

FILES = {"model": "config.json and the weights", "tokenizer": "tokenizer.json and tokenizer_config.json"}
SETTING = {"model": "`model` (--model)", "tokenizer": "--tokenizer (config `tokenizer`)"}  # where each is set


def load_error(e: BaseException, what: str, name: str) -> UserError:
    """The one-line error for `what` ("model", "tokenizer") `name` failing to load with `e`.

    >>> hub = OSError("You are trying to access a gated repo. Make sure to have access to it.")
    >>> print(load_error(hub, "model", "meta-llama/Llama-3.2-1B"))  # doctest: +ELLIPSIS
    model 'meta-llama/Llama-3.2-1B' is gated: accept its licence at https://huggingface.co/meta-llama/Llama-3.2-1B ...
    >>> print(load_error(ImportError("No module named 'bitsandbytes'"), "model", "org/m"))  # doctest: +ELLIPSIS
    cannot load model 'org/m' in 4-bit: bitsandbytes failed (No module named 'bitsandbytes'); ...
    """
    chain = _chain(e)
    names = {type(x).__name__ for x in chain}
    text = " ".join(str(x) for x in chain).lower()
    first = first_line(e)
    setting = SETTING.get(what, what)
    if _looks_like_a_path(name) and not Path(name).expanduser().exists():
        return UserError(f"{what} folder {name!r} does not exist; set {setting} to an existing folder or a hub id")
    if "GatedRepoError" in names or "gated repo" in text:
        return UserError(
            f"{what} {name!r} is gated: accept its licence at https://huggingface.co/{name} while logged in, then "
            "set HF_TOKEN (or run `hf auth login`) and try again"
        )
    if "LocalEntryNotFoundError" in names or "offline mode" in text or "cannot find the requested files" in text:
        return UserError(
            f"{what} {name!r} is not on this machine and the hub is not reachable (or HF_HUB_OFFLINE is set): "
            f"download it first (`hf download {name}`), or pass a local folder"
        )
    if (
        names & {"RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError", "HFValidationError"}
        or "not a valid model identifier" in text
        or "does not appear to have a file named" in text
    ):
        return UserError(
            f"{what} {name!r} not found ({first}): check the hub id's spelling (org/name), or set {setting} to a "
            "local folder that holds its files"
        )
    if "bitsandbytes" in text or any(_from_module(x, "bitsandbytes") for x in chain):
        return UserError(
            f"cannot load {what} {name!r} in 4-bit: bitsandbytes failed ({first}); install a build for this machine "
            "(`pip install -U bitsandbytes`) and check that it sees the GPU (`python -m bitsandbytes`)"
        )
    if "cuda" in text or "AcceleratorError" in names:
        return UserError(
            f"cannot load {what} {name!r}: CUDA failed ({first}); check the GPU and driver with `nvidia-smi` and "
            "that torch was built for them (`python -c 'import torch; print(torch.cuda.is_available())'`), or "
            "pass --device cpu"
        )
    if _looks_like_a_path(name) or Path(name).expanduser().is_dir():
        return UserError(
            f"folder {name!r} holds no {what} that loads ({first}); it needs the files of the model's hub repository "
            f"({FILES.get(what, 'config.json')}), or set {setting} to a hub id"
        )
    return UserError(f"cannot load {what} {name!r} ({first}); set {setting} to a Hugging Face hub id or a local folder")


def first_line(e: BaseException) -> str:
    """The first line of an error's message (or its type), at most 200 characters."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _looks_like_a_path(name: str) -> bool:
    """A local path rather than a hub id (`org/name`): absolute, relative with ./ or ~, or more than one `/`."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _from_module(e: BaseException, package: str) -> bool:
    """Whether `e` was raised in `package`'s code (a frame of the traceback is in one of its files)."""
    tb = e.__traceback__
    while tb is not None:
        if f"/{package}/" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False
