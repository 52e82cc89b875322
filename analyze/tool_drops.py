"""Tool schemas and tool calls the chat template drops: the lengths match the template, but the model never sees them.

Llama 3's plain template (and Gemma 3's) ignores `tools` and `tool_calls`: such records render, encode and train
without an error, and the model is never shown the schemas or taught to call. So each record that carries tool
schemas or tool calls is checked against its own rendering, per distinct situation rather than by rendering it again:

- schemas: the record's role sequence rendered with every message a marker, with its schemas and without
  (`Renderer.marked`, once per role sequence and tool set; the reply locator renders the first one anyway). Equal
  renderings mean the template drops the schemas.
- tool calls: the record's own rendering cut by the template's text around messages of its roles (`Renderer.pieces`,
  already rendered to locate the replies): an assistant message whose slot holds only its content had its calls
  dropped. Templates that render calls only in some positions are judged message by message this way. When the
  structure does not anchor the record (reasoning beside the calls, replies in a row, content the template
  changes), each called function's name must occur in the rendering more often than the template's text and the
  messages' strings can account for (then every call is rendered); failing that, the record is rendered once more
  without its calls and compared.

A record whose calls `data.fix_roles` folded into its text carries none any more: those calls reach the model as text
and are not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from analyze.errors import SkipRecord
from analyze.formats import Conversation, Example
from analyze.render import MARK_CHARS, MARKS, Renderer, message_gaps, replies_in_a_row

# records that carry tool schemas, and those whose schemas the template drops; the same for tool calls
COUNTS = ("tools", "tools_dropped", "tool_calls", "tool_calls_dropped")


def tool_drops(renderer: Renderer, text: str, example: Example) -> list[str]:
    """The `COUNTS` this record adds one to, given `text`, the template's rendering of `example`.

    >>> from analyze.tokenizer import load_tokenizer
    >>> r = Renderer(load_tokenizer("bundled:qwen3"))    # Qwen3's template renders both
    >>> call = {"type": "function", "function": {"name": "f", "arguments": {}}}
    >>> messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    >>> ex = Conversation(messages, [{"type": "function", "function": {"name": "f"}}])
    >>> tool_drops(r, r.render(ex), ex)
    ['tools', 'tool_calls']
    """
    if not isinstance(example, Conversation):
        return []
    out = []
    if example.tools:
        out.append("tools")
        if _tools_dropped(renderer, text, example):
            out.append("tools_dropped")
    if any(m.get("tool_calls") for m in example.messages):
        out.append("tool_calls")
        if _calls_dropped(renderer, text, example):
            out.append("tool_calls_dropped")
    return out


def _tools_dropped(renderer: Renderer, text: str, example: Conversation) -> bool:
    roles = tuple(m["role"] for m in example.messages)
    if len(roles) <= MARKS:
        with_tools, without = renderer.marked(roles, example.tools), renderer.marked(roles, None)
        if with_tools is not None and without is not None:
            return with_tools == without
    return _renders_as(renderer, text, example.messages, None)


def _calls_dropped(renderer: Renderer, text: str, example: Conversation) -> bool:
    slots = _slots(renderer, text, example)
    if slots is not None:
        return any(m.get("tool_calls") and slot in (m["content"], m["content"].strip()) for m, slot in slots)
    if _names_rendered(renderer, text, example):
        return False
    bare = [{k: v for k, v in m.items() if k != "tool_calls"} for m in example.messages]
    return _renders_as(renderer, text, bare, example.tools)


def _names_rendered(renderer: Renderer, text: str, example: Conversation) -> bool:
    """Whether `text` names each called function more often than anything but the calls can: the template's own
    text for these roles and schemas (`Renderer.marked`) and every string of the messages, each as often as it
    occurs. More occurrences than that come from the calls, so every call is rendered; without the calls there is
    nothing else to render them from. (A template rendering a message's text twice would defeat this; then the
    record's rendering without its calls decides.)"""
    roles = tuple(m["role"] for m in example.messages)
    marked = renderer.marked(roles, example.tools) if len(roles) <= MARKS else None
    if marked is None:
        return False
    calls = Counter(c["function"]["name"] for m in example.messages for c in m.get("tool_calls") or ())
    strings = [v for m in example.messages for k, v in m.items() if k != "tool_calls" and isinstance(v, str)]
    for name, n in calls.items():
        if not isinstance(name, str) or not name:
            return False
        elsewhere = marked.count(name) + sum(s.count(name) for s in strings)
        if text.count(name) < elsewhere + n:
            return False
    return True


def _slots(renderer: Renderer, text: str, example: Conversation) -> list[tuple[dict, str]] | None:
    """Each message with what `text` holds in its place between the template's pieces, when the structure anchors
    every message with tool calls (as `render._spans_from_structure` does the replies); else None."""
    messages = example.messages
    if len(messages) > MARKS or not set(MARK_CHARS[: len(messages)]).isdisjoint(text) or replies_in_a_row(messages):
        return None
    if any(m.get("tool_calls") and m.get("reasoning_content") for m in messages):
        return None  # the slot holds the reasoning too: it differs from the content with or without the calls
    pieces = renderer.pieces(tuple(m["role"] for m in messages), example.tools)
    gaps = None if pieces is None else message_gaps(text, pieces)
    if gaps is None:
        return None
    slots = [(m, text[start:end]) for m, (start, end) in zip(messages, gaps, strict=True)]
    if any(m["role"] != "assistant" and slot not in (m["content"], m["content"].strip()) for m, slot in slots):
        return None  # the template changed a message that anchors the replies: the pieces may not be where they seem
    return slots


def _renders_as(renderer: Renderer, text: str, messages: list[dict], tools: list[dict] | None) -> bool:
    """Whether these messages and tools render exactly as `text` (a refusal means the template noticed the change)."""
    try:
        return renderer.render_messages(messages, tools) == text
    except SkipRecord:
        return False


def warning(counts: Mapping[str, int]) -> str | None:
    """The one warning both commands print when the template drops records' tool schemas or calls; None if none.

    >>> print(warning({"tools": 3, "tools_dropped": 3, "tool_calls": 4, "tool_calls_dropped": 2})[:90])
    the chat template ignores tools: the tool schemas of 3 records (all 3 that carry them) and
    >>> print(warning({"tool_calls": 4, "tool_calls_dropped": 4})[:89])
    the chat template ignores tool calls: the tool calls of 4 records (all 4 that carry them)
    """
    parts = []
    for kind, what in (("tools", "the tool schemas of"), ("tool_calls", "the tool calls of")):
        dropped, carried = counts.get(f"{kind}_dropped", 0), counts.get(kind, 0)
        if dropped:
            number, share = f"{dropped:,}", f"{'all' if dropped == carried else 'of'} {carried:,}"
            if not parts:  # the first part names its unit
                number, share = f"{number} record{'s' * (dropped != 1)}", f"{share} that carry them"
            parts.append(f"{what} {number} ({share})")
    if not parts:
        return None
    ignored = "tools" if counts.get("tools_dropped") else "tool calls"
    return (
        f"the chat template ignores {ignored}: {' and '.join(parts)} never reach the model (the lengths count the "
        "template's text, without them); use a template that renders tools (--chat-template FILE) or write the "
        "schemas and calls into the messages' text"
    )


def as_json(counts: Mapping[str, int]) -> dict:
    """`--json`'s `tools`: the records that carry tool schemas and tool calls, those the template drops, the warning."""
    return {
        "records_with_tools": counts.get("tools", 0),
        "tools_dropped": counts.get("tools_dropped", 0),
        "records_with_tool_calls": counts.get("tool_calls", 0),
        "tool_calls_dropped": counts.get("tool_calls_dropped", 0),
        "warning": warning(counts),
    }
