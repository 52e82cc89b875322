"""What `train` will say of a config's model and tokenizer, said by `lengthscan` first: `lengthscan --tokenizer X
--write-config` refuses a config `train` would refuse, in `train`'s own words, and the report warns of it.

`check_model_tokenizer` is the one rule: `train` (`train.prepare`) calls it on the config it runs, `train_check` on
the config `lengthscan` measures and writes. Both read the model's config.json and the tokenizers, never weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyze.errors import UserError
from analyze.model_facts import (
    check_max_length,
    check_same_vocabulary,
    check_tokenizer_matches,
    load_model_config,
    read_model_config,
)
from analyze.tokenizer import files_fingerprint, load_tokenizer, other_tokenizer, resolve_tokenizer_name


def check_model_tokenizer(cfg, model_config: dict, tokenizer) -> None:
    """The tokenizer must be the model's (`check_tokenizer_matches`), and one the config names besides the model's
    own must give each of the own tokenizer's tokens the same id (`check_same_vocabulary`). A `UserError` in one line
    with the fix when not: a wrong pair trains without an error and learns nothing useful."""
    check_tokenizer_matches(model_config, tokenizer, cfg.model)
    if (own := own_tokenizer(cfg)) is not None:
        check_same_vocabulary(tokenizer, own, cfg.model)


def own_tokenizer(cfg):
    """The model's own tokenizer when the config names another one and the model's can be loaded; else None (the
    config-based checks of `check_tokenizer_matches` still apply)."""
    if not other_tokenizer(cfg):
        return None
    try:
        return load_tokenizer(resolve_tokenizer_name(None, cfg.model))
    except UserError:  # no tokenizer beside the model (or offline): nothing to compare with
        return None


@dataclass(frozen=True)
class TrainCheck:
    """What `train` would say of a config's model and tokenizer: `refusal`, its one line when it would stop; else
    nothing. `unchecked`: why it could not be checked here (the model's config.json cannot be read)."""

    model_config: dict | None = None
    refusal: str | None = None
    unchecked: str | None = None

    def max_length_refusal(self, max_length: int, model: str) -> str | None:
        """`train`'s words when `max_length` is past the model's positions (`check_max_length`), else None."""
        try:
            if self.model_config is not None:
                check_max_length(self.model_config, max_length, model)
        except UserError as e:
            return str(e)
        return None

    def as_json(self) -> dict:
        return {"refusal": self.refusal, "unchecked": self.unchecked}

    def line(self) -> str | None:
        """The report's line: a warning that the numbers are for a run `train` would refuse, or why it was not
        checked; None when `train` would take it."""
        if self.refusal:
            return f"warning: train would refuse this config: {self.refusal}"
        if self.unchecked:
            return f"note: {self.unchecked}"
        return None


def train_check(cfg, cache: bool = True) -> TrainCheck | None:
    """`train`'s checks of the config's tokenizer against its model, run on config.json and the tokenizers (no
    weights); None when the tokenizer is the model's own (nothing to check). With `cache`, a verdict is kept under
    the fingerprints of the files it was drawn from (`_verdict_key`), so a rerun whose tokens come from the cache
    still loads no tokenizer."""
    tokenizer = other_tokenizer(cfg)
    if not tokenizer:
        return None
    key = _verdict_key(cfg) if cache else None
    if key is not None and (known := _verdicts().get(key)) is not None:
        return TrainCheck(read_model_config(cfg.model)[0], refusal=known.get("refusal"))
    try:
        model_config = load_model_config(cfg.model)
    except UserError as e:
        return TrainCheck(
            unchecked=f"not checked that tokenizer {tokenizer!r} is model {cfg.model!r}'s (train checks it): {e}"
        )
    tok = load_tokenizer(resolve_tokenizer_name(cfg.tokenizer, cfg.model), cfg.chat_template)
    try:
        check_model_tokenizer(cfg, model_config, tok)
        check = TrainCheck(model_config)
    except UserError as e:
        check = TrainCheck(model_config, refusal=str(e))
    if key is not None:
        _store_verdict(key, check.refusal)
    return check


VERDICTS_FILE = "train-checks.json"  # in the token cache's folder (`analyze.cache.cache_root`)
VERDICTS_KEPT = 64


def _verdict_key(cfg) -> str | None:
    """What a verdict depends on: both names (the message quotes them), the model's config.json as read here, and
    the files of the tokenizer and of the model's own (`files_fingerprint`, with the library versions); None when
    one of them is not on this machine (then the check runs, as train's does)."""
    import hashlib
    import json

    from analyze import __version__

    config = read_model_config(cfg.model)[0]
    named = files_fingerprint(resolve_tokenizer_name(cfg.tokenizer, cfg.model))
    own = files_fingerprint(resolve_tokenizer_name(None, cfg.model))
    if config is None or named is None or own is None:
        return None
    parts = [__version__, cfg.model, str(cfg.tokenizer), json.dumps(config, sort_keys=True), named, own]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _verdicts() -> dict:
    from analyze.cache import cache_root
    from analyze.model_facts import read_json

    return read_json(cache_root() / VERDICTS_FILE) or {}


def _store_verdict(key: str, refusal: str | None) -> None:
    """Keep a verdict (the newest `VERDICTS_KEPT`), written atomically; a cache that cannot be written is skipped."""
    import json

    from analyze.atomic import atomic_write
    from analyze.cache import cache_root

    kept = {k: v for k, v in _verdicts().items() if k != key}
    kept = dict(list(kept.items())[-(VERDICTS_KEPT - 1) :]) | {key: {"refusal": refusal}}
    try:
        cache_root().mkdir(parents=True, exist_ok=True)
        atomic_write(cache_root() / VERDICTS_FILE, json.dumps(kept))
    except OSError:
        pass


def refuse_to_write(check: TrainCheck | None, cfg, target, max_length: int | None = None) -> None:
    """Stop `--write-config` (exit 2, nothing written) with `train`'s words and lengthscan's fix when `train` would
    refuse the config about to be written: the tokenizer against the model, or the `max_length` to be written past
    the model's positions (None: not known yet)."""
    if check is None:
        return
    if check.refusal:
        tokenizer = other_tokenizer(cfg)
        if read_model_config(tokenizer)[0] is not None:  # the tokenizer sits beside a model's config.json
            fix = f"pass --model {tokenizer} so the model and the tokenizer agree"
        else:
            fix = f"pass --model with the model {tokenizer!r} belongs to, so the model and the tokenizer agree"
        raise UserError(f"{target} not written: train would refuse this config: {check.refusal}; here: {fix}")
    if max_length is not None and (refusal := check.max_length_refusal(max_length, cfg.model)):
        raise UserError(f"{target} not written: train would refuse this config: {refusal}")
