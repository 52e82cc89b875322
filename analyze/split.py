"""The eval hold-out: which conversations train and which are held out, decided per conversation by its content.

A conversation is held out when a seeded hash of its normalised content falls below `eval_fraction` of the hash
range. The rule looks at nothing else — not max_length, not packing, not the other records — so a run and the
run its next_config.yaml proposes evaluate the same conversations, a conversation and its exact duplicates are
always on the same side, and adding data never moves a conversation from one side to the other. The share held
out is `eval_fraction` on average (binomial: 5% of 2,354 conversations is 118 ± 11).

>>> import numpy as np
>>> h = np.array([content_hash(Text(f"record {i}")) for i in range(1000)], dtype=np.uint64)
>>> held = eval_mask(h, 0.1, seed=42)
>>> int(held.sum())                                        # about 10%
92
>>> bool((eval_mask(h, 0.1, seed=42) == held).all()), int((eval_mask(h, 0.1, seed=7) & held).sum())  # seeded
(True, 10)
>>> bool((held[:500] == eval_mask(h[:500], 0.1, seed=42)).all())    # independent of the other records
True
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from analyze.formats import Example, Text

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def content_hash(example: Example) -> int:
    """A 64-bit hash of an example's normalised content (messages or text); the same conversation in any input
    format (or file, or line) hashes the same."""
    if isinstance(example, Text):
        payload = example.text
    elif example.tools:  # the schemas are part of what the model sees
        payload = json.dumps({"messages": example.messages, "tools": example.tools}, sort_keys=True)
    else:
        payload = json.dumps(example.messages, sort_keys=True)
    return int.from_bytes(hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def eval_mask(hashes: np.ndarray, eval_fraction: float, seed: int, max_count: int | None = None) -> np.ndarray:
    """True for the records held out for eval. At least one when `eval_fraction` > 0 and there are two or more
    distinct conversations, never all of them; at most about `max_count` (the lowest scores; duplicates of the
    last one too).

    >>> h = np.arange(100_000, dtype=np.uint64)
    >>> int(eval_mask(h, 0.05, 0).sum()), int(eval_mask(h, 0.05, 0, max_count=2000).sum())
    (5058, 2000)
    """
    n = len(hashes)
    if eval_fraction <= 0 or n == 0:
        return np.zeros(n, dtype=bool)
    score = _mix(hashes.astype(np.uint64), seed)
    held = score < np.uint64(min(int(eval_fraction * 2.0**64), 2**64 - 1))
    if not held.any() or held.all():  # tiny data: hold out the lowest-scoring conversation (and its duplicates)
        lowest = score.min()
        held = score == lowest
        if held.all():
            return np.zeros(n, dtype=bool)
    if max_count is not None and int(held.sum()) > max_count:  # big data: the lowest scores, a fixed set too
        held &= score <= np.partition(score[held], max_count - 1)[max_count - 1]
    return held


def _mix(h: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64 of the hash xor the seed: a fresh uniform score per seed."""
    with np.errstate(over="ignore"):
        z = h ^ (np.uint64(seed) * _GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
