"""Preference pairs (DPO data) → the token lengths TRL's `DPOTrainer` trains on, and the `max_length` to give it.

`train` fine-tunes on conversations (SFT); chosen/rejected pairs are for DPO. `lengthscan` recognises them
(`analyze.formats.PREFERENCE_FORMATS`) and measures each pair as `DPOTrainer` (TRL 1.x) tokenizes it:

- messages (conversational): the prompt rendered by the chat template with the generation prompt, and prompt +
  chosen, prompt + rejected rendered whole; the prompt's tokens are the longest common prefix of the three
  renderings (templates that render the prompt differently alone lose its differing end, as in TRL), each reply
  the rest of its rendering;
- strings (standard): `tokenizer(prompt)` and `tokenizer(prompt + reply)`, the reply ending in EOS;
- a pair without `prompt` has an implicit one: the turns (or characters) chosen and rejected share at the start;
- LLaMA-Factory's pairs (a conversation or an instruction, then a chosen and a rejected reply) are read as
  conversational pairs.

`DPOTrainer` cuts prompt + reply at `max_length`, keeping the start, and drops a pair whose prompt alone fills it;
chosen and rejected are padded to one length in a batch, so a pair's row is its prompt plus its longer reply.
Pairs are analysed in this process, batch by batch, and not cached.

>>> pair = to_pair({"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant",
...     "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]})
>>> pair.conversational, pair.chosen
(True, [{'role': 'assistant', 'content': '4'}])
>>> to_pair({"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green"})
Pair(prompt='Q: sky? A:', chosen=' blue', rejected=' green', tools=None)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyze.errors import SkipRecord
from analyze.formats import PREFERENCE_FORMATS, PREFERENCE_SKIP, pair_format_named, preference_format, to_example
from analyze.pipeline import check_unicode
from analyze.reader import RecordReader, SkipLog, parse_record
from analyze.render import Renderer
from analyze.stats import percentile
from analyze.suggest import round_up, within_limit

PARTS = ("prompt", "chosen", "rejected")
BATCH = 256  # pairs per encoder call


@dataclass
class Pair:
    """One preference pair: prompt and replies as message lists (conversational) or strings (standard)."""

    prompt: list[dict] | str
    chosen: list[dict] | str
    rejected: list[dict] | str
    tools: list[dict] | None = None

    @property
    def conversational(self) -> bool:
        return isinstance(self.prompt, list)


def to_pair(record: Any, default_tools: list[dict] | None = None) -> Pair:
    """A record of any `PREFERENCE_FORMATS` as a `Pair`, or `SkipRecord`."""
    kind = preference_format(record)
    if kind is None:
        raise SkipRecord("not_a_pair", "no 'chosen' and 'rejected': not a preference pair, in a file of pairs")
    chosen, rejected = record["chosen"], record["rejected"]
    if kind == "trl" and isinstance(record["prompt"], list) == isinstance(chosen, list):
        prompt = record["prompt"]
    elif kind in ("trl", "trl_implicit"):  # TRL's `maybe_extract_prompt`: a string prompt beside whole conversations
        prompt, chosen, rejected = split_prompt(chosen, rejected)  # is a copy of their first turn; theirs is the prompt
    else:  # LLaMA-Factory: the conversation (or instruction) without the pair is the prompt
        rest = {k: v for k, v in record.items() if k not in ("chosen", "rejected")}
        if kind == "llamafactory_alpaca":
            rest["output"] = ""  # the instruction's turns, then an empty reply dropped below
        convo = to_example(rest, default_tools=default_tools)
        prompt = convo.messages[:-1] if kind == "llamafactory_alpaca" else convo.messages
        return Pair(prompt, _reply(chosen, "chosen"), _reply(rejected, "rejected"), convo.tools)
    if isinstance(prompt, str) and isinstance(chosen, str) and isinstance(rejected, str):
        return Pair(prompt, chosen, rejected)
    if not all(isinstance(x, list) for x in (prompt, chosen, rejected)):
        raise SkipRecord(
            "non_string_content", "prompt, chosen and rejected must be all strings or all lists of messages"
        )
    convo = to_example({"messages": prompt, "tools": record.get("tools")}, default_tools=default_tools)
    return Pair(convo.messages, _messages(chosen, "chosen"), _messages(rejected, "rejected"), convo.tools)


def split_prompt(chosen: Any, rejected: Any) -> tuple:
    """An implicit prompt as TRL's `extract_prompt` finds it: what chosen and rejected share at the start (turns of
    message lists, characters of strings, a space before the split left to the replies).

    >>> split_prompt("Q: sky? A: blue", "Q: sky? A: grey")
    ('Q: sky? A:', ' blue', ' grey')
    >>> p, c, r = split_prompt([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    ...                        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go"}])
    >>> p, c
    ([{'role': 'user', 'content': 'hi'}], [{'role': 'assistant', 'content': 'yo'}])
    >>> split_prompt("A: b", "A: bc")   # one reply extends the other: split before the last shared character
    ('A: ', 'b', 'bc')
    """
    if not (isinstance(chosen, str) and isinstance(rejected, str)):
        chosen, rejected = _messages(chosen, "chosen"), _messages(rejected, "rejected")
    if chosen == rejected:
        raise SkipRecord("same_replies", "chosen and rejected are the same: nothing to prefer")
    n = min(len(chosen), len(rejected))
    i = next((k for k in range(n) if chosen[k] != rejected[k]), None)
    if i is None:  # one ends inside the other: TRL splits before the last shared item
        i = max(n - 1, 0)
    elif i > 0 and chosen[i - 1] == " ":
        i -= 1
    return chosen[:i], chosen[i:], rejected[i:]


def _messages(turns: Any, part: str) -> list[dict]:
    if not isinstance(turns, list):
        kind = type(turns).__name__
        raise SkipRecord("non_string_content", f"'{part}' must be a list of messages or a string, not {kind}")
    return to_example({"messages": turns}).messages


def _reply(reply: Any, part: str) -> list[dict]:
    """LLaMA-Factory's reply: one message (`from`/`value` or `role`/`content`), a list of them, or a string."""
    if isinstance(reply, str):
        return [{"role": "assistant", "content": reply}]
    turns = reply if isinstance(reply, list) else [reply]
    if turns and isinstance(turns[0], dict) and "from" in turns[0]:
        return to_example({"conversations": turns}).messages
    return _messages(turns, part)


@dataclass
class PairTable:
    """Per analysed pair: where it is and its prompt, chosen and rejected tokens as DPOTrainer counts them."""

    file_index: np.ndarray
    line: np.ndarray
    prompt: np.ndarray
    chosen: np.ndarray
    rejected: np.ndarray

    def __len__(self) -> int:
        return len(self.prompt)

    @property
    def sequence(self) -> np.ndarray:
        """A pair's row: its prompt and its longer reply (chosen and rejected are padded to one length)."""
        return self.prompt + np.maximum(self.chosen, self.rejected)


@dataclass
class Pairs:
    """The pairs of some files, tokenized: the table, what was skipped, and the formats seen."""

    paths: list
    table: PairTable
    skips: SkipLog
    formats: Counter = field(default_factory=Counter)

    @property
    def records(self) -> int:
        return len(self.table)


def tokenize_pairs(paths: list, tokenizer, default_tools: list[dict] | None = None, strict: bool = False) -> Pairs:
    """Every record of `paths` measured as a pair or counted as skipped."""
    renderer = Renderer(tokenizer)
    skips, formats = SkipLog(strict=strict), Counter()
    rows: list[tuple[int, int, int, int, int]] = []
    batch: list[tuple[int, int, Pair, list[str]]] = []
    for fi, line, raw in RecordReader(paths):
        try:
            record = parse_record(raw)
            pair = to_pair(record, default_tools)
            batch.append((fi, line, pair, _texts(pair, renderer)))
            formats[preference_format(record)] += 1
        except SkipRecord as skip:
            skips.add(f"{paths[fi]}:{line}", skip.reason, skip.detail)
        if len(batch) == BATCH:
            rows += _measure(batch, renderer)
            batch = []
    rows += _measure(batch, renderer)
    cols = np.asarray(rows, dtype=np.int64).reshape(-1, 5)
    table = PairTable(*(cols[:, k].copy() for k in range(5)))
    return Pairs(list(paths), table, skips, Counter({PREFERENCE_FORMATS[k]: v for k, v in formats.items()}))


def _texts(pair: Pair, renderer: Renderer) -> list[str]:
    """The three texts DPOTrainer encodes: the prompt, prompt + chosen, prompt + rejected."""
    if pair.conversational:
        renderer.require_template()
        texts = [
            renderer.render_messages(pair.prompt, pair.tools, generation_prompt=True),
            renderer.render_messages(pair.prompt + pair.chosen, pair.tools),
            renderer.render_messages(pair.prompt + pair.rejected, pair.tools),
        ]
    else:
        eos = renderer.tok.eos_token or ""
        replies = [r if r.endswith(eos) else r + eos for r in (pair.chosen, pair.rejected)]
        texts = [pair.prompt, *(pair.prompt + r for r in replies)]
    for text in texts:
        check_unicode(text)
    return texts


def _measure(batch: list, renderer: Renderer) -> list[tuple[int, int, int, int, int]]:
    """(file, line, prompt, chosen, rejected) tokens of each pair, in input order: one encoder call per kind."""
    out: list = [None] * len(batch)
    for conversational in (True, False):
        part = [k for k, b in enumerate(batch) if b[2].conversational == conversational]
        if not part:
            continue
        # rendered chat text holds its own special tokens; plain text gets the tokenizer's (BOS), as TRL's call does
        texts = [t for k in part for t in batch[k][3]]
        encoded = renderer.backend.encode_batch(texts, add_special_tokens=not conversational)
        for j, k in enumerate(part):
            p, pc, pr = (np.asarray(e.ids) for e in encoded[3 * j : 3 * j + 3])
            prompt = min(_common_prefix(p, pc), _common_prefix(p, pr))
            out[k] = (batch[k][0], batch[k][1], prompt, len(pc) - prompt, len(pr) - prompt)
    return out


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading tokens `a` and `b` share.

    >>> _common_prefix(np.array([1, 2, 3]), np.array([1, 2, 4, 5])), _common_prefix(np.array([1]), np.array([1, 2]))
    (2, 1)
    """
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


@dataclass
class PairSuggestion:
    """DPOConfig's max_length for these pairs, what it costs, and a prompt length for TRL versions that take one."""

    max_length: int
    reason: str
    truncated: int  # pairs whose prompt + longer reply is cut (the replies' ends)
    dropped: int  # pairs whose prompt alone fills max_length: DPOTrainer drops them
    reply_tokens_lost: float  # share of chosen and rejected tokens cut or dropped
    max_prompt_length: int


def suggest_pairs(table: PairTable, target: float, round_to: int, limit: int | None) -> PairSuggestion:
    """`max_length`: the nearest-rank percentile `target` of the pairs' rows (prompt + longer reply), rounded up to
    a multiple of `round_to`, capped at the model's positions; `max_prompt_length` the same of the prompts.

    >>> t = PairTable(*np.zeros((2, 4), np.int64), np.array([10, 10, 10, 300]), np.array([50, 60, 70, 20]),
    ...     np.array([40, 90, 30, 10]))
    >>> s = suggest_pairs(t, 0.75, 64, None)
    >>> s.max_length, s.truncated, s.dropped, s.max_prompt_length   # rows 60, 100, 80, 320: p75 100; a 300 prompt
    (128, 0, 1, 64)
    """
    q = percentile(table.sequence, target * 100)
    value = round_up(q, round_to)
    reason = (
        f"p{target * 100:g} of prompt + longer reply is {q:,} tokens ({target:.1%} of pairs whole); rounded up to a "
        f"multiple of {round_to}"
    )
    value, reason = within_limit(value, reason, limit, round_to)
    kept = table.prompt < value
    lost = np.where(kept, np.maximum(table.prompt + table.chosen - value, 0), table.chosen)
    lost += np.where(kept, np.maximum(table.prompt + table.rejected - value, 0), table.rejected)
    replies = int(table.chosen.sum() + table.rejected.sum())
    return PairSuggestion(
        max_length=value,
        reason=reason,
        truncated=int((kept & (table.sequence > value)).sum()),
        dropped=int((~kept).sum()),
        reply_tokens_lost=float(lost.sum() / max(replies, 1)),
        max_prompt_length=min(round_up(percentile(table.prompt, target * 100), round_to), value),
    )


@dataclass
class PairAnalysis:
    """What `lengthscan` reports for preference data."""

    pairs: Pairs
    tokenizer_name: str
    suggestion: PairSuggestion
    limit: int | None

    def lengths(self) -> dict[str, dict[str, int]]:
        """min / p50 / p90 / p95 / p99 / max of each part and of the pairs' rows."""
        t = self.pairs.table
        out = {}
        for name, values in (*((p, getattr(t, p)) for p in PARTS), ("prompt + longer reply", t.sequence)):
            qs = {f"p{q}": percentile(values, q) for q in (50, 90, 95, 99)}
            out[name] = {"min": int(values.min()), **qs, "max": int(values.max())}
        return out

    def as_json(self) -> dict:
        s = self.suggestion
        return {
            "kind": "preference",
            "files": [str(p) for p in self.pairs.paths],
            "tokenizer": self.tokenizer_name,
            "pairs": self.pairs.records,
            "formats": dict(self.pairs.formats),
            "skipped": self.pairs.skips.total,
            "skipped_reasons": dict(self.pairs.skips.counts),
            "lengths": self.lengths(),
            "suggestion": {
                "dpo_max_length": s.max_length,
                "reason": s.reason,
                "pairs_truncated": s.truncated,
                "pairs_dropped": s.dropped,
                "reply_tokens_lost_rate": s.reply_tokens_lost,
                "max_prompt_length": s.max_prompt_length,
            },
            "model_limit": self.limit,
        }


def is_pair_data(skips: SkipLog, analysed: int) -> bool:
    """Whether more of the records are preference pairs than are conversations: the file is DPO data."""
    return skips.counts[PREFERENCE_SKIP] > analysed


def refuse_pairs(skips: SkipLog, analysed: int, paths: list) -> None:
    """`train`'s one-line refusal of preference data, naming its format and where its lengths are measured."""
    from analyze.errors import UserError

    if not is_pair_data(skips, analysed):
        return
    fmt = pair_format_named(next(d for _, reason, d in skips.records if reason == PREFERENCE_SKIP))
    where = " ".join(str(p) for p in paths)
    pairs, total = skips.counts[PREFERENCE_SKIP], analysed + skips.total
    raise UserError(
        f"{where}: preference data ({fmt}: {pairs:,} of {total:,} records are chosen/rejected pairs); train is "
        "supervised fine-tuning on conversations and cannot train on pairs: train them with TRL's DPOTrainer "
        f"(`lengthscan {where}` suggests its max_length), or give train conversations: each prompt with its chosen "
        "reply as messages, or --format messages where the records carry a conversation beside the pair"
    )
