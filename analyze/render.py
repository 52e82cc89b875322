"""Render each example with the model's chat template, encode it, and find the supervised tokens.

A record's token ids are exactly `tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]`: the
template's rendering encoded with `add_special_tokens=False`, so BOS is never doubled.

The supervised tokens are each assistant turn's content and the end-of-turn token right after it (not the role
header). They are found in the *full* rendering — the content's character span, mapped to tokens through the fast
tokenizer's offsets — because templates are not prefix-stable: Qwen3 gives only the last assistant turn an empty
`<think>\\n\\n</think>\\n\\n` block, so rendering prefixes would give other tokens than training sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from analyze.errors import SkipRecord, UserError
from analyze.formats import Conversation, Example, Text

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
        try:
            return self.tok.apply_chat_template(example.messages, tokenize=False)
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
                    spans = self._token_spans(enc, assistant_char_spans(text, ex.messages, self))
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


def assistant_char_spans(text: str, messages: list[dict], renderer: Renderer) -> list[tuple[int, int]]:
    """Character spans of each assistant turn (content + its end-of-turn token) in the rendered `text`.

    Messages are looked up in order from a cursor, so a reply that repeats an earlier message is found in its own
    turn. Templates may rewrite content (Qwen3 moves `<think>` reasoning into its own block; Llama 3 and Gemma trim
    whitespace): those forms are tried too, and a reply that cannot be found at all is a skipped record.
    """
    spans = []
    cursor = 0
    for i, m in enumerate(messages):
        content, is_reply = m["content"], m["role"] == "assistant"
        if is_reply and not content.strip():
            # An empty reply still teaches the model to end its turn: supervise the next end-of-turn token.
            at = text.find(renderer.end_of_turn, cursor) if renderer.end_of_turn else -1
            if at >= 0:
                spans.append((at, at + len(renderer.end_of_turn)))
                cursor = at + len(renderer.end_of_turn)
            continue
        found = _find_content(text, content, cursor)
        if found is None:
            if is_reply:
                raise SkipRecord(
                    "reply_not_in_rendering",
                    f"assistant message {i} does not appear in the chat template's rendering",
                )
            continue
        start, end = found
        end += len(renderer.special_at(text, end))
        if is_reply:
            spans.append((start, end))
        cursor = end
    return spans


def _find_content(text: str, content: str, cursor: int) -> tuple[int, int] | None:
    if not content:
        return None
    at = text.find(content, cursor)
    if at >= 0:
        return at, at + len(content)
    if "</think>" in content:  # reasoning and answer rendered apart (Qwen3 style): span from one to the other
        answer = content.split("</think>")[-1].lstrip("\n")
        reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
        r_at = text.find(reasoning, cursor) if reasoning.strip() else -1
        a_at = text.find(answer, max(cursor, r_at)) if answer else -1
        if a_at >= 0:
            return (r_at if r_at >= 0 else a_at), a_at + len(answer)
    stripped = content.strip()
    if stripped and stripped != content:
        at = text.find(stripped, cursor)
        if at >= 0:
            return at, at + len(stripped)
    return None
