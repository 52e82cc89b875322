"""Render each example with the model's chat template, encode it, and find the supervised tokens.

A record's token ids are exactly `tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]`: the
template's rendering encoded with `add_special_tokens=False`, so BOS is never doubled.

The supervised tokens are each assistant turn's output — its reasoning as rendered, content and tool calls — and
the end-of-turn token right after it (not the role header). They are located from the template's own structure,
never by searching for the reply's text (a reply "a" is inside the `assistant` header, "hi" inside `<think>`, and
reasoning repeated in every turn would be found in the wrong one): each assistant message is rendered once more
with that message alone replaced by a marker, and the part of the full rendering that differs is that message's
output (`reply_char_spans`). The full rendering is what training sees (templates are not prefix-stable: Qwen3 gives
only the last assistant turn an empty `<think>` block); its character spans map to tokens through the fast
tokenizer's offsets.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

import numpy as np

from analyze.errors import SkipRecord, UserError
from analyze.formats import ROLE_FIXES, Conversation, Example, Text

PROBE = [
    {"role": "user", "content": "lengthscan-probe-user"},
    {"role": "assistant", "content": "lengthscan-probe-reply"},
]


@dataclass
class Encoded:
    """One rendered example: its length, supervised token spans `[start, end)`, and optionally its ids."""

    length: int
    spans: list[tuple[int, int]]
    ids: np.ndarray | None = None

    @property
    def supervised(self) -> int:
        return sum(e - s for s, e in self.spans)


class Renderer:
    """Turns examples into `Encoded` records with one tokenizer; one batched encoder call per chunk."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.backend = tokenizer.backend_tokenizer
        specials = sorted(
            {t.content for t in tokenizer.added_tokens_decoder.values() if t.content}, key=len, reverse=True
        )
        self._special = re.compile("|".join(map(re.escape, specials))) if specials else None  # longest first
        self.has_template = bool(tokenizer.chat_template)
        self._pieces: dict = {}  # (roles, tools) → the template's text around messages of those roles
        self.end_of_turn = self._probe_end_of_turn() if self.has_template else ""

    def render(self, example: Example) -> str:
        """The text the trainer encodes for one example (raises `SkipRecord` if the template refuses it)."""
        if isinstance(example, Text):
            return example.text
        if not self.has_template:
            raise UserError(
                "the tokenizer has no chat template, so chat data cannot be rendered; pass --chat-template FILE "
                "(a Jinja template) or use a chat model's tokenizer"
            )
        return self.render_messages(example.messages, example.tools)

    def pieces(self, roles: tuple[str, ...], tools: list[dict] | None) -> list[str] | None:
        """The template's text before, between and after messages of these roles (each message a marker): rendered
        once per role sequence and tools; None if the template refuses it or drops a message."""
        key = (roles, json.dumps(tools, sort_keys=True) if tools else None)
        if key not in self._pieces:
            if len(self._pieces) >= PIECES_KEPT:
                self._pieces.pop(next(iter(self._pieces)))
            marks = _MARK_CHARS[: len(roles)]
            try:
                text = self.render_messages(
                    [{"role": r, "content": c} for r, c in zip(roles, marks, strict=True)], tools
                )
            except SkipRecord:
                text = None
            pieces = None
            if text is not None and all(text.count(c) == 1 for c in marks):
                pieces = re.split("[" + re.escape(marks) + "]", text) if marks else [text]
            self._pieces[key] = pieces
        return self._pieces[key]

    def render_fixing(self, example: Example, fix_roles: bool) -> tuple[str, Example, tuple[str, ...]]:
        """`render`, and when the template refuses the roles and `fix_roles` is on, the `ROLE_FIXES` in order
        until it accepts: (text, the example as rendered, the fixes applied)."""
        try:
            return self.render(example), example, ()
        except SkipRecord:
            if not (fix_roles and isinstance(example, Conversation)):
                raise
            messages, applied = example.messages, []
            for name, fix in ROLE_FIXES:
                changed = fix(messages)
                if changed == messages:
                    continue
                messages = changed
                applied.append(name)
                candidate = Conversation(messages, example.tools)
                try:
                    return self.render(candidate), candidate, tuple(applied)
                except SkipRecord:
                    continue
            raise

    def render_messages(self, messages: list[dict], tools: list[dict] | None = None) -> str:
        try:
            return self.tok.apply_chat_template(messages, tools=tools, tokenize=False)
        except Exception as e:  # jinja raise_exception(), TemplateError, TypeError from odd roles
            raise SkipRecord("template_error", f"the chat template refused it: {str(e)[:120]}") from None

    def encode_batch(self, examples: list[Example], texts: list[str]) -> list:
        """Encode rendered texts in one batched call; `tokenizers` runs it on all cores, outside the GIL."""
        chat = [i for i, ex in enumerate(examples) if isinstance(ex, Conversation)]
        plain = [i for i, ex in enumerate(examples) if isinstance(ex, Text)]
        encodings: list = [None] * len(examples)
        for idx, special in ((chat, False), (plain, True)):
            if idx:
                batch = self.backend.encode_batch([texts[i] for i in idx], add_special_tokens=special)
                for i, enc in zip(idx, batch, strict=True):
                    encodings[i] = enc
        return encodings

    def finish(
        self, examples: list[Example], texts: list[str], encodings: list, keep_ids: bool = False
    ) -> list[Encoded | SkipRecord]:
        """Supervised spans (and ids when asked) for each encoded example."""
        out: list[Encoded | SkipRecord] = []
        for ex, text, enc in zip(examples, texts, encodings, strict=True):
            try:
                if isinstance(ex, Text):
                    out.append(self._text(enc, keep_ids))
                else:
                    spans = self._token_spans(enc, reply_char_spans(text, ex, self))
                    ids = np.asarray(enc.ids, dtype=np.int32) if keep_ids else None
                    out.append(Encoded(len(enc), spans, ids))
            except SkipRecord as skip:
                out.append(skip)
        return out

    def _text(self, enc, keep_ids: bool) -> Encoded:
        """Plain text: the tokenizer's own special tokens, then EOS so packed documents stay apart; all trained."""
        eos = self.tok.eos_token_id
        n = len(enc) + (eos is not None)
        ids = None
        if keep_ids:
            ids = np.asarray(enc.ids + ([eos] if eos is not None else []), dtype=np.int32)
        return Encoded(n, [(0, n)] if n else [], ids)

    def _token_spans(self, enc, char_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        spans = []
        for cs, ce in char_spans:
            first, last = enc.char_to_token(cs), enc.char_to_token(ce - 1)
            if first is None or last is None:  # a normaliser dropped those characters: fall back to offsets
                offsets = np.asarray(enc.offsets)
                first = int(np.searchsorted(offsets[:, 1], cs, side="right"))
                last = int(np.searchsorted(offsets[:, 0], ce, side="left")) - 1
            if last >= first:
                spans.append((first, last + 1))
        return spans

    def _probe_end_of_turn(self) -> str:
        """The special token a template puts right after an assistant reply (`<|im_end|>` for Qwen3)."""
        try:
            text = self.tok.apply_chat_template(PROBE, tokenize=False)
        except Exception:
            return ""
        end = text.find(PROBE[1]["content"])
        return self.special_at(text, end + len(PROBE[1]["content"])) if end >= 0 else ""

    def special_at(self, text: str, pos: int) -> str:
        """The added/special token starting at `pos` in `text`, or ''."""
        m = self._special.match(text, pos) if self._special else None
        return m.group() if m else ""


MARK = "\ue000"  # a private-use character: the marker that stands in for one message's output
PIECES_KEPT = 4096  # role sequences whose template text `Renderer.pieces` keeps


def reply_char_spans(text: str, example: Conversation, renderer: Renderer) -> list[tuple[int, int]]:
    """Character spans of each assistant turn's output (and its end-of-turn token) in the rendered `text`.

    For assistant message i the conversation is rendered again with that message's content replaced by a marker
    and its tool calls and reasoning removed; the rendering differs from `text` exactly where message i's output
    is (common prefix and suffix cut off). If the template refuses the message without its tool calls, they are
    kept with marker names and arguments, and the span runs on to the end-of-turn token.

    >>> from analyze.tokenizer import load_tokenizer
    >>> r = Renderer(load_tokenizer("bundled:qwen3"))
    >>> ex = Conversation([{"role": "user", "content": "a"}, {"role": "assistant", "content": "a"}])
    >>> text = r.render(ex)
    >>> [text[s:e] for s, e in reply_char_spans(text, ex, r)]    # the reply, not the "a" of "assistant"
    ['a<|im_end|>']
    """
    for quick in (_spans_from_structure, _spans_from_one_rendering):
        spans = quick(text, example, renderer)
        if spans is not None:
            return spans
    spans = []
    for i, m in enumerate(example.messages):
        if m["role"] != "assistant":
            continue
        marked, kept_calls = _render_marked(example, i, renderer)
        start, end = _differing(text, marked)
        if start == end == -1:
            raise SkipRecord(
                "reply_not_in_rendering", f"assistant message {i} does not appear in the chat template's rendering"
            )
        if kept_calls:
            eot = text.find(renderer.end_of_turn, end) if renderer.end_of_turn else -1
            end = eot if 0 <= eot - end <= CALL_TAIL else end
        end += len(renderer.special_at(text, end))
        if spans and start < spans[-1][1]:
            raise SkipRecord("turns_not_located", f"assistant message {i} overlaps the one before it in the rendering")
        spans.append((start, end))
    return spans


CALL_TAIL = 32  # at most this many characters between a marker call's end and the end-of-turn token
MARKS = 6400  # private-use characters U+E000…: one distinct marker per message (`_spans_from_structure` and after)


def _spans_from_structure(text: str, example: Conversation, renderer: Renderer) -> list[tuple[int, int]] | None:
    """The usual case with no extra rendering: the template's text around the messages depends only on their
    roles (and the tools), so it is rendered once per role sequence with every message a marker (`Renderer.pieces`)
    and found in `text` in order. Every message that is not a reply must then appear as itself (or trimmed) between
    the pieces — that anchors each reply; otherwise None, and the caller renders this record's own markers.

    >>> from analyze.tokenizer import load_tokenizer
    >>> r = Renderer(load_tokenizer("bundled:qwen3"))
    >>> ex = Conversation([{"role": "user", "content": "user"}, {"role": "assistant", "content": "assistant"}])
    >>> text = r.render(ex)
    >>> [text[s:e] for s, e in _spans_from_structure(text, ex, r)]
    ['assistant<|im_end|>']
    """
    messages = example.messages
    if len(messages) > MARKS or not set(_MARK_CHARS[: len(messages)]).isdisjoint(text) or _replies_in_a_row(messages):
        return None
    pieces = renderer.pieces(tuple(m["role"] for m in messages), example.tools)
    if pieces is None or not text.startswith(pieces[0]) or not text.endswith(pieces[-1]):
        return None
    spans, at, stop = [], len(pieces[0]), len(text) - len(pieces[-1])
    for j, m in enumerate(messages):
        after = pieces[j + 1]
        if j == len(messages) - 1:
            end = stop
        elif not after or (end := text.find(after, at, stop)) < 0:
            return None
        if end < at:
            return None
        if m["role"] == "assistant":
            spans.append((at, end + len(renderer.special_at(text, end))))
        elif text[at:end] not in (m["content"], m["content"].strip()):
            return None  # the template changed this message: the pieces may not be where they seem
        at = end + len(after)
    return spans if at == len(text) else None


def _replies_in_a_row(messages: list[dict]) -> bool:
    """Two replies with nothing between them have no anchor: a reply holding the template's separator would shift
    the boundary, so such records take one rendering per reply."""
    return any(a["role"] == b["role"] == "assistant" for a, b in itertools.pairwise(messages))


_MARK_CHARS = "".join(chr(0xE000 + k) for k in range(6400))


def _spans_from_one_rendering(text: str, example: Conversation, renderer: Renderer) -> list[tuple[int, int]] | None:
    """The common case in one extra rendering: every assistant message replaced by its own marker (no tool calls,
    no reasoning); the template's text between markers must then appear in `text` in order, and what lies between
    those pieces is each message's output. None when that does not hold (a template whose structure depends on
    the content, such as Qwen3's `<think>` block for reasoning): the caller renders once per message instead.

    >>> from analyze.tokenizer import load_tokenizer
    >>> r = Renderer(load_tokenizer("bundled:qwen3"))
    >>> ex = Conversation([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hi"},
    ...                    {"role": "user", "content": "a"}, {"role": "assistant", "content": "a"}])
    >>> text = r.render(ex)
    >>> [text[s:e] for s, e in _spans_from_one_rendering(text, ex, r)]
    ['hi<|im_end|>', 'a<|im_end|>']
    """
    replies = [i for i, m in enumerate(example.messages) if m["role"] == "assistant"]
    if not replies or len(replies) > MARKS or _replies_in_a_row(example.messages):
        return None
    marks = list(_MARK_CHARS[: len(replies)])
    if any(m in text for m in marks):
        return None
    messages = list(example.messages)
    for i, mark in zip(replies, marks, strict=True):
        messages[i] = {"role": "assistant", "content": mark}
    try:
        marked = renderer.render_messages(messages, example.tools)
    except SkipRecord:
        return None
    pieces = [marked]
    for mark in marks:  # the template's text before, between and after the markers
        head, sep, tail = pieces[-1].partition(mark)
        if not sep:
            return None
        pieces[-1:] = [head, tail]
    if not (text.startswith(pieces[0]) and text.endswith(pieces[-1])):
        return None
    spans, at, stop = [], len(pieces[0]), len(text) - len(pieces[-1])
    for piece in pieces[1:-1]:
        end = text.find(piece, at, stop)
        if end < 0 or not piece:
            return None  # an empty piece cannot be found: ambiguous, let the caller decide
        spans.append((at, end + len(renderer.special_at(text, end))))
        at = end + len(piece)
    if at > stop:
        return None
    spans.append((at, stop + len(renderer.special_at(text, stop))))
    return spans


def _render_marked(example: Conversation, i: int, renderer: Renderer, keep_calls: bool = False) -> tuple[str, bool]:
    """The rendering with message i's output replaced by the marker, and whether its tool calls had to be kept:
    dropped, or — when the template refuses that — kept with marker names and arguments."""
    marked = {"role": "assistant", "content": MARK}
    calls = example.messages[i].get("tool_calls")
    if keep_calls and calls:
        marked["tool_calls"] = [{"type": "function", "function": {"name": MARK, "arguments": {MARK: MARK}}}] * len(
            calls
        )
    messages = [*example.messages[:i], marked, *example.messages[i + 1 :]]
    try:
        return renderer.render_messages(messages, example.tools), bool(keep_calls and calls)
    except SkipRecord:
        if keep_calls or not calls:
            raise
        return _render_marked(example, i, renderer, keep_calls=True)


def _differing(a: str, b: str) -> tuple[int, int]:
    """[start, end) of the part of `a` that differs from `b` once their common prefix and suffix are cut off;
    (-1, -1) when they are equal.

    >>> _differing("<s>hi</s>", "<s>\ue000</s>"), _differing("<s></s>", "<s>\ue000</s>"), _differing("x", "x")
    ((3, 5), (3, 3), (-1, -1))
    """
    if a == b:
        return -1, -1
    n = min(len(a), len(b))
    lo, hi = 0, n  # longest common prefix, by bisection on C-level slice comparisons
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    prefix = lo
    lo, hi = 0, n - prefix
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return prefix, len(a) - lo
