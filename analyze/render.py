"""Render each example with the model's chat template, encode it, and find the supervised tokens.

A record's token ids are exactly `tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]`: the
template's rendering encoded with `add_special_tokens=False`, so BOS is never doubled.

The supervised tokens are each assistant turn's output — its reasoning as rendered, content and tool calls — and
the end-of-turn token right after it (not the role header). They are located from the template's own structure,
never by searching for the reply's text (a reply "a" is inside the `assistant` header, "hi" inside `<think>`, and
reasoning repeated in every turn would be found in the wrong one): messages are replaced by markers, and what the
full rendering holds where a reply's marker stood is that reply's output (`reply_char_spans`; usually without any
extra rendering). The full rendering is what training sees (templates are not prefix-stable: Qwen3 gives
only the last assistant turn an empty `<think>` block); its character spans map to tokens through the fast
tokenizer's offsets.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass

import numpy as np

from analyze.errors import SkipRecord, UserError, raised_in
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
        self._pieces: dict = {}  # (roles, tools) → the marked rendering and the template's text around messages
        self.end_of_turn = self._probe_end_of_turn() if self.has_template else ""

    def render(self, example: Example) -> str:
        """The text the trainer encodes for one example (raises `SkipRecord` if the template refuses it)."""
        if isinstance(example, Text):
            return example.text
        self.require_template()
        return self.render_messages(example.messages, example.tools)

    def require_template(self) -> None:
        """A one-line error when there is no chat template to render messages with."""
        if not self.has_template:
            raise UserError(
                "the tokenizer has no chat template, so chat data cannot be rendered; pass --chat-template FILE "
                "(a Jinja template) or use a chat model's tokenizer"
            )

    def pieces(self, roles: tuple[str, ...], tools: list[dict] | None) -> list[str] | None:
        """The template's text before, between and after messages of these roles (each message a marker): rendered
        once per role sequence and tools; None if the template refuses it or drops a message."""
        return self._marked(roles, tools)[1]

    def marked(self, roles: tuple[str, ...], tools: list[dict] | None) -> str | None:
        """The template's rendering of messages of these roles, each message a marker (`pieces` before it is
        split); None if the template refuses it."""
        return self._marked(roles, tools)[0]

    def _marked(self, roles: tuple[str, ...], tools: list[dict] | None) -> tuple[str | None, list[str] | None]:
        key = (roles, json.dumps(tools, sort_keys=True) if tools else None)
        if key not in self._pieces:
            if len(self._pieces) >= PIECES_KEPT:
                self._pieces.pop(next(iter(self._pieces)))
            marks = MARK_CHARS[: len(roles)]
            try:
                text = self.render_messages(
                    [{"role": r, "content": c} for r, c in zip(roles, marks, strict=True)], tools
                )
            except SkipRecord:
                text = None
            self._pieces[key] = (text, None if text is None else _split_at(text, marks))
        return self._pieces[key]

    def render_fixing(self, example: Example, fix_roles: bool) -> tuple[str, Example, tuple[str, ...]]:
        """`render`, and when the template refuses the roles and `fix_roles` is on, the `ROLE_FIXES` in order
        until it accepts: (text, the example as rendered, the fixes applied). With `fix_roles` off, a refusal the
        fixes would cure says so in its detail (`FIXABLE`), so the skip names the flag that exists."""
        try:
            return self.render(example), example, ()
        except SkipRecord as refused:
            fixed = self._fixed(example) if isinstance(example, Conversation) else None
            if fixed is None:
                raise
            if not fix_roles:
                raise SkipRecord(refused.reason, refused.detail + FIXABLE) from None
            return fixed

    def _fixed(self, example: Conversation) -> tuple[str, Example, tuple[str, ...]] | None:
        """The first rendering the `ROLE_FIXES` (each on top of the one before) get the template to accept, or None."""
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
        return None

    def render_messages(self, messages: list[dict], tools: list[dict] | None = None, generation_prompt=False) -> str:
        """The template's text for these messages (then the assistant's header with `generation_prompt`);
        `SkipRecord` when the template refuses them (any other error is a bug and is raised as it is)."""
        try:
            return self.tok.apply_chat_template(
                messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
            )
        except Exception as e:
            if not template_refused(e):
                raise
            from jinja2 import TemplateSyntaxError  # only on an error: a cached rerun never imports jinja2

            if isinstance(e, TemplateSyntaxError):
                raise UserError(
                    f"the chat template is not valid Jinja (line {e.lineno}: {e.message}); fix it, or pass "
                    "--chat-template FILE with a working template"
                ) from None
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
            text = self.render_messages(PROBE)
        except SkipRecord:  # a template that wants other roles (a system turn first…): no end-of-turn token known
            return ""
        end = text.find(PROBE[1]["content"])
        return self.special_at(text, end + len(PROBE[1]["content"])) if end >= 0 else ""

    def special_at(self, text: str, pos: int) -> str:
        """The added/special token starting at `pos` in `text`, or ''."""
        m = self._special.match(text, pos) if self._special else None
        return m.group() if m else ""


def template_refused(e: BaseException) -> bool:
    """Whether an error is the chat template's own: Jinja's errors (its `raise_exception`, an undefined value, a
    syntax error) or an operation of the template's code on this record's values (a frame of the compiled
    template is in the traceback). Anything else is not the data's fault, so it is not counted as a skip.

    >>> import jinja2
    >>> env = jinja2.Environment()
    >>> def error(source, **values):
    ...     try:
    ...         env.from_string(source).render(**values)
    ...     except Exception as e:
    ...         return e
    >>> template_refused(error("{{ x + 1 }}", x="a")), template_refused(ValueError("not from a template"))
    (True, False)
    """
    from jinja2 import TemplateError

    return isinstance(e, TemplateError) or raised_in(e, lambda f: f == TEMPLATE_FILENAME)


FIXABLE = " (--fix-roles renders it)"  # ends a template_error whose roles `data.fix_roles` would fix
TEMPLATE_FILENAME = "<template>"  # the file name Jinja gives the code of a template compiled from a string
MARKS = 6400  # private-use characters U+E000…: one distinct marker per message
MARK_CHARS = "".join(chr(0xE000 + k) for k in range(MARKS))
MARK = MARK_CHARS[0]  # the marker of `_render_marked`, which replaces one message at a time
PIECES_KEPT = 4096  # role sequences whose template text `Renderer.pieces` keeps


def reply_char_spans(text: str, example: Conversation, renderer: Renderer) -> list[tuple[int, int]]:
    """Character spans of each assistant turn's output (and its end-of-turn token) in the rendered `text`.

    First the quick ways (`_spans_from_structure`, `_spans_from_one_rendering`), which answer for most records.
    Otherwise, for assistant message i the conversation is rendered again with that message's content replaced by a
    marker and its tool calls and reasoning removed; the rendering differs from `text` exactly where message i's output
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
        start, end = _with_end_of_turn(text, (start, end), renderer)
        if spans and start < spans[-1][1]:
            raise SkipRecord("turns_not_located", f"assistant message {i} overlaps the one before it in the rendering")
        spans.append((start, end))
    return spans


CALL_TAIL = 32  # at most this many characters between a marker call's end and the end-of-turn token


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
    if len(messages) > MARKS or not set(MARK_CHARS[: len(messages)]).isdisjoint(text) or replies_in_a_row(messages):
        return None
    pieces = renderer.pieces(tuple(m["role"] for m in messages), example.tools)
    gaps = None if pieces is None else message_gaps(text, pieces)
    if gaps is None:
        return None
    for m, (start, end) in zip(messages, gaps, strict=True):
        if m["role"] != "assistant" and text[start:end] not in (m["content"], m["content"].strip()):
            return None  # the template changed this message: the pieces may not be where they seem
    return [
        _with_end_of_turn(text, gap, renderer)
        for m, gap in zip(messages, gaps, strict=True)
        if m["role"] == "assistant"
    ]


def _split_at(marked: str, marks: str) -> list[str] | None:
    """The text before, between and after the marks, which must each occur once and in order; else None.

    >>> _split_at("<a>\ue000<b>\ue001<c>", "\ue000\ue001"), _split_at("\ue001\ue000", "\ue000\ue001")
    (['<a>', '<b>', '<c>'], None)
    """
    at = [marked.find(c) for c in marks]
    if any(marked.count(c) != 1 for c in marks) or at != sorted(at):
        return None
    return re.split("[" + re.escape(marks) + "]", marked) if marks else [marked]


def message_gaps(text: str, pieces: list[str]) -> list[tuple[int, int]] | None:
    """[start, end) of what lies between consecutive pieces when `text` is pieces[0] + gap + pieces[1] + … +
    pieces[-1], each piece found after the one before; None when that does not hold (or a piece between gaps is
    empty, so nothing says where it is).

    >>> message_gaps("<a>x<b>yy<c>", ["<a>", "<b>", "<c>"]), message_gaps("<a>x<c>", ["<a>", "<b>", "<c>"])
    ([(3, 4), (7, 9)], None)
    """
    if not (text.startswith(pieces[0]) and text.endswith(pieces[-1])):
        return None
    gaps, at, stop = [], len(pieces[0]), len(text) - len(pieces[-1])
    for piece in pieces[1:-1]:
        end = text.find(piece, at, stop) if piece else -1
        if end < 0:
            return None
        gaps.append((at, end))
        at = end + len(piece)
    if at > stop:
        return None
    return [*gaps, (at, stop)]


def _with_end_of_turn(text: str, gap: tuple[int, int], renderer: Renderer) -> tuple[int, int]:
    """A reply's span: its gap and the end-of-turn token right after it, if the template puts one there."""
    start, end = gap
    return start, end + len(renderer.special_at(text, end))


def replies_in_a_row(messages: list[dict]) -> bool:
    """Two replies with nothing between them have no anchor: a reply holding the template's separator would shift
    the boundary, so such records take one rendering per reply."""
    return any(a["role"] == b["role"] == "assistant" for a, b in itertools.pairwise(messages))


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
    if not replies or len(replies) > MARKS or replies_in_a_row(example.messages):
        return None
    marks = MARK_CHARS[: len(replies)]
    if not set(marks).isdisjoint(text):
        return None
    messages = list(example.messages)
    for i, mark in zip(replies, marks, strict=True):
        messages[i] = {"role": "assistant", "content": mark}
    try:
        pieces = _split_at(renderer.render_messages(messages, example.tools), marks)
    except SkipRecord:
        return None
    gaps = None if pieces is None else message_gaps(text, pieces)
    return None if gaps is None else [_with_end_of_turn(text, gap, renderer) for gap in gaps]


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
