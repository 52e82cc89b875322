"""Normalise one record of any supported dialogue format to a list of chat messages (or plain text).

Every format ends up as `Conversation(messages, tools)` — messages as Hugging Face chat templates read them — or
as `Text(text)` for plain language-model data. Normalised messages have `role` and a string `content`; an
assistant message may have `tool_calls` (`[{"type": "function", "function": {"name", "arguments": {...}}}]`,
arguments an object) and `reasoning_content`; a tool message may have `tool_call_id` and `name`. `tools` is the
record's list of tool schemas (passed to the template as `tools=`), or None. Extra fields are ignored.

>>> to_example({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]})
Conversation(messages=[{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}], tools=None)
>>> to_example({"instruction": "Add", "input": "2+2", "output": "4"}).messages[0]
{'role': 'user', 'content': 'Add\\n\\n2+2'}
>>> to_example({"prompt": "Q", "completion": "A"}).messages[-1]
{'role': 'assistant', 'content': 'A'}
>>> to_example({"text": "Once upon a time"})
Text(text='Once upon a time')

OpenAI tool calling: `content` null beside `tool_calls`, arguments a JSON string, a `tool` reply:

>>> ex = to_example({"messages": [
...     {"role": "user", "content": "Weather in Paris?"},
...     {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
...      "function": {"name": "weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}]},
...     {"role": "tool", "tool_call_id": "c1", "content": "18 C"}],
...     "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}]})
>>> ex.messages[1]["content"], ex.messages[1]["tool_calls"]
('', [{'type': 'function', 'function': {'name': 'weather', 'arguments': {'city': 'Paris'}}, 'id': 'c1'}])
>>> ex.messages[2], len(ex.tools)
({'role': 'tool', 'content': '18 C', 'tool_call_id': 'c1'}, 1)

Content as a list of parts; ShareGPT with a top-level system prompt and a function call:

>>> to_example({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
...                                                        {"type": "text", "text": "b"}]}]}).messages
[{'role': 'user', 'content': 'a\\nb'}]
>>> sg = to_example({"system": "Be brief.", "conversations": [{"from": "human", "value": "2+2?"},
...      {"from": "function_call", "value": "{\\"name\\": \\"calc\\", \\"arguments\\": {\\"x\\": \\"2+2\\"}}"},
...      {"from": "observation", "value": "4"}, {"from": "gpt", "value": "4"}]})
>>> [m["role"] for m in sg.messages], sg.messages[2]["tool_calls"][0]["function"]["name"]
(['system', 'user', 'assistant', 'tool', 'assistant'], 'calc')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from analyze.errors import SkipRecord
from analyze.schema import AUTO, FORMATS


@dataclass(frozen=True)
class Options:
    """How records become examples, besides their format: tool schemas for records without their own (as JSON),
    and whether refused roles are fixed (`fix_roles`). Part of the cache key."""

    fmt: str = AUTO
    tools_json: str | None = None
    fix_roles: bool = False

    @property
    def tools(self) -> list[dict] | None:
        return json.loads(self.tools_json) if self.tools_json else None

    def key(self) -> str:
        return json.dumps([self.fmt, self.tools_json, self.fix_roles])


def load_tools(path: str | None) -> str | None:
    """The tool schemas of `data.tools` as canonical JSON, or a one-line error naming the file."""
    from pathlib import Path

    from analyze.errors import UserError

    if not path:
        return None
    try:
        tools = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"{path}: cannot read data.tools ({e.strerror}); check the path") from None
    except ValueError as e:
        raise UserError(f"{path}: data.tools is not JSON ({e}); it must be a list of tool schemas") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise UserError(f"{path}: data.tools must be a JSON list of tool schemas (objects)")
    return json.dumps(tools, sort_keys=True)


def merge_consecutive(messages: list[dict]) -> list[dict]:
    """Turns of one role in a row become one turn (contents joined by a blank line, tool calls kept in order).

    >>> merge_consecutive([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    [{'role': 'user', 'content': 'a\\n\\nb'}]
    """
    out: list[dict] = []
    for m in messages:
        if out and out[-1]["role"] == m["role"]:
            prev = dict(out[-1])
            prev["content"] = "\n\n".join(c for c in (prev["content"], m["content"]) if c)
            if m.get("tool_calls"):
                prev["tool_calls"] = [*prev.get("tool_calls", []), *m["tool_calls"]]
            out[-1] = prev
        else:
            out.append(dict(m))
    return out


def fold_tools(messages: list[dict]) -> list[dict]:
    """Tool turns as the roles every template accepts: a call becomes its JSON in the assistant's text, a tool's
    result a user turn; then turns of one role in a row are merged.

    >>> fold_tools([{"role": "assistant", "content": "", "tool_calls": [{"type": "function",
    ...             "function": {"name": "f", "arguments": {"x": 1}}}]}, {"role": "tool", "content": "2"}])
    [{'role': 'assistant', 'content': '{"name": "f", "arguments": {"x": 1}}'}, {'role': 'user', 'content': '2'}]
    """
    out = []
    for m in messages:
        if m["role"] == "tool":
            out.append({"role": "user", "content": m["content"]})
        elif m.get("tool_calls"):
            calls = [json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]})
                     for c in m["tool_calls"]]  # fmt: skip
            rest = {k: v for k, v in m.items() if k != "tool_calls"}
            out.append(rest | {"content": "\n".join(c for c in (m["content"], *calls) if c)})
        else:
            out.append(m)
    return merge_consecutive(out)


# the opt-in fixes for roles a template refuses, tried in this order (each on top of the one before)
ROLE_FIXES = (("merged_consecutive_roles", merge_consecutive), ("folded_tool_turns", fold_tools))

# ShareGPT speaker names → chat roles. function_call is the assistant calling a tool (trained on; its value a JSON
# call or list of calls); observation is the tool's answer (not trained on).
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}


@dataclass
class Conversation:
    messages: list[dict[str, Any]]
    tools: list[dict] | None = None


@dataclass
class Text:
    text: str


Example = Conversation | Text


# Preference data (pairs for DPO, not conversations for SFT), by its keys: every record with `chosen` and `rejected`.
PREFERENCE_FORMATS = {
    "trl": "TRL prompt/chosen/rejected",
    "trl_implicit": "TRL chosen/rejected with an implicit prompt",
    "llamafactory": "LLaMA-Factory conversations + chosen/rejected",
    "llamafactory_alpaca": "LLaMA-Factory instruction + chosen/rejected",
}
PREFERENCE_SKIP = "preference_pair"  # the skip reason of a pair in SFT data


def pair_format_named(detail: str) -> str:
    """The preference format a `PREFERENCE_SKIP`'s detail names (`to_example` writes it).

    >>> pair_format_named("a preference pair (TRL prompt/chosen/rejected) is DPO data; …")
    'TRL prompt/chosen/rejected'
    """
    return next(name for name in PREFERENCE_FORMATS.values() if f"({name})" in detail)


def preference_format(record: Any) -> str | None:
    """The preference format of a record (a key of `PREFERENCE_FORMATS`), or None when it is not a pair.

    >>> preference_format({"conversations": [], "chosen": {}, "rejected": {}}), preference_format({"text": "x"})
    ('llamafactory', None)
    """
    if not (isinstance(record, dict) and "chosen" in record and "rejected" in record):
        return None
    if "prompt" in record:
        return "trl"
    if "conversations" in record or "messages" in record:
        return "llamafactory"
    return "llamafactory_alpaca" if "instruction" in record else "trl_implicit"


def detect_format(record: Any) -> str:
    """Name the format of one record by its keys; `unknown_format` is a skip.

    >>> detect_format({"messages": [], "label": True})
    'messages'
    >>> detect_format({"instruction": "x", "output": "y"})
    'alpaca'
    """
    if not isinstance(record, dict):
        raise SkipRecord("unknown_format", f"a record must be a JSON object, got {type(record).__name__}")
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    if "text" in record:
        return "text"
    keys = ", ".join(sorted(map(str, record))[:6]) or "none"
    raise SkipRecord(
        "unknown_format",
        f"no known format (keys: {keys}); expected messages, conversations, instruction/output, "
        "prompt/completion or text, or pass --format",
    )


def to_example(record: Any, fmt: str = AUTO, default_tools: list[dict] | None = None) -> Example:
    """Turn one parsed JSON record into a `Conversation` or `Text`, or raise `SkipRecord`. `default_tools`: the
    schemas for a record without its own `tools` (`data.tools`)."""
    # with format auto, a pair is not a conversation; a named format reads the record's conversation (a dataset
    # such as UltraFeedback's train_sft carries `messages` beside its pair)
    if fmt == AUTO and (kind := preference_format(record)) is not None:
        detail = f"a preference pair ({PREFERENCE_FORMATS[kind]}) is DPO data; train is supervised fine-tuning"
        raise SkipRecord(PREFERENCE_SKIP, detail)
    if fmt == "auto":
        fmt = detect_format(record)
    elif not isinstance(record, dict):
        raise SkipRecord("unknown_format", f"a record must be a JSON object, got {type(record).__name__}")
    if fmt == "text":
        return Text(_string(record, "text"))
    if fmt == "messages":
        messages = _messages(_field(record, "messages"), "role", "content", roles=None)
    elif fmt == "sharegpt":
        messages = _messages(_field(record, "conversations"), "from", "value", roles=SHAREGPT_ROLES)
        system = record.get("system")
        if system is not None and not isinstance(system, str):
            raise SkipRecord("non_string_content", f"'system' is {type(system).__name__}, not a string")
        if system and not (messages and messages[0]["role"] == "system"):
            messages.insert(0, {"role": "system", "content": system})
    elif fmt == "alpaca":
        messages = _alpaca(record)
    elif fmt == "prompt_completion":
        messages = _prompt_completion(record)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not messages:
        raise SkipRecord("empty_conversation", "the conversation has no messages")
    return Conversation(messages, _tools(record.get("tools")) or default_tools)


def _tools(tools: Any) -> list[dict] | None:
    """A record's tool schemas: a list of objects, or that list as a JSON string (LLaMA-Factory); None for none."""
    if tools is None or tools == "" or tools == []:
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except ValueError:
            raise SkipRecord("bad_tools", "'tools' is a string but not JSON") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise SkipRecord("bad_tools", "'tools' must be a list of tool schemas (objects)")
    return tools or None


def _field(record: dict, key: str) -> Any:
    if key not in record:
        raise SkipRecord("unknown_format", f"missing field {key!r} for this format")
    return record[key]


def _string(record: dict, key: str) -> str:
    value = _field(record, key)
    if not isinstance(value, str):
        raise SkipRecord("non_string_content", f"{key!r} is {type(value).__name__}, not a string")
    return value


def _messages(turns: Any, role_key: str, content_key: str, roles: dict[str, str] | None) -> list[dict]:
    if not isinstance(turns, list):
        raise SkipRecord("unknown_format", f"expected a list of messages, got {type(turns).__name__}")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or role_key not in turn:
            raise SkipRecord("unknown_format", f"message {i} lacks {role_key!r}")
        role = turn[role_key]
        if not isinstance(role, str):
            raise SkipRecord("unknown_format", f"message {i}: {role_key!r} is not a string")
        if roles is not None:
            if role.lower() not in roles:
                raise SkipRecord("unknown_format", f"message {i}: unknown speaker {role!r}")
            speaker, role = role.lower(), roles[role.lower()]
            if speaker == "function_call":  # ShareGPT: the value is the call itself
                messages.append({"role": "assistant", "content": "", "tool_calls": _sharegpt_calls(turn, i)})
                continue
        calls = turn.get("tool_calls") or None
        if content_key not in turn and not calls:
            raise SkipRecord("unknown_format", f"message {i} lacks {content_key!r}")
        message: dict[str, Any] = {"role": role, "content": _content(turn.get(content_key), i, content_key, calls)}
        if calls:
            message["tool_calls"] = [_tool_call(c, i) for c in _as_list(calls, i)]
        reasoning = next((turn[k] for k in REASONING_KEYS if turn.get(k)), None)
        if reasoning is not None:
            if not isinstance(reasoning, str):
                raise SkipRecord("non_string_content", f"message {i}: its reasoning is not a string")
            message["reasoning_content"] = reasoning
        for key in ("tool_call_id", "name"):
            if role == "tool" and isinstance(turn.get(key), str):
                message[key] = turn[key]
        messages.append(message)
    return messages


REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")  # how exports name a reply's reasoning
TEXT_PARTS = ("text", "input_text", "output_text")  # content-part types that hold text
TEXT_KEYS = ("text", "value")  # where a text part keeps its text: OpenAI's `text`, LLaMA-Factory's `value`
PART_SEPARATOR = "\n"  # text parts are joined with this, so every template sees one string


def _content(content: Any, i: int, key: str, calls) -> str:
    """A message's content as one string: text parts joined; null only beside tool calls. A text part holds its
    text under `text` (OpenAI) or `value` (LLaMA-Factory's newer datasets).

    >>> _content([{"type": "text", "text": "x"}, "y", {"type": "text", "value": "z"}], 0, "content", None)
    'x\\ny\\nz'
    """
    if isinstance(content, str):
        return content
    if content is None and calls:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") in TEXT_PARTS and _part_text(part) is not None:
                texts.append(_part_text(part))
            elif isinstance(part, dict) and part.get("type") in TEXT_PARTS:
                detail = f"message {i}: a {part['type']!r} part has no 'text' or 'value' string"
                raise SkipRecord("non_string_content", detail)
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise SkipRecord("non_text_content", f"message {i}: a content part of type {kind!r} (not text)")
        return PART_SEPARATOR.join(texts)
    raise SkipRecord("non_string_content", f"message {i}: {key!r} is {type(content).__name__}, not a string")


def _part_text(part: dict) -> str | None:
    """A text part's text: its `text`, else its `value`; None when neither is a string."""
    return next((part[k] for k in TEXT_KEYS if isinstance(part.get(k), str)), None)


def _as_list(calls: Any, i: int) -> list:
    if isinstance(calls, dict):
        return [calls]
    if not isinstance(calls, list):
        raise SkipRecord("bad_tool_call", f"message {i}: 'tool_calls' must be a list")
    return calls


def _tool_call(call: Any, i: int) -> dict:
    """One call as templates read it: {"type": "function", "function": {"name", "arguments": object}}.
    Accepts OpenAI's nested form and the flat {"name", "arguments"} form; arguments as an object or JSON string."""
    if not isinstance(call, dict):
        raise SkipRecord("bad_tool_call", f"message {i}: a tool call is not an object")
    fn = call.get("function", call)
    name, arguments = (fn.get("name"), fn.get("arguments", fn.get("parameters", {}))) if isinstance(fn, dict) else (
        None, None)  # fmt: skip
    if not isinstance(name, str) or not name:
        raise SkipRecord("bad_tool_call", f"message {i}: a tool call has no function name")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            raise SkipRecord("bad_tool_call", f"message {i}: the arguments of {name!r} are not JSON") from None
    if not isinstance(arguments, dict):
        raise SkipRecord("bad_tool_call", f"message {i}: the arguments of {name!r} are not a JSON object")
    out: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if isinstance(call.get("id"), str):
        out["id"] = call["id"]
    return out


def _sharegpt_calls(turn: dict, i: int) -> list[dict]:
    value = turn.get("value")
    try:
        calls = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise SkipRecord("bad_tool_call", f"message {i}: the function_call value is not JSON") from None
    return [_tool_call(c, i) for c in _as_list(calls, i)]


def _alpaca(record: dict) -> list[dict]:
    """System, history pairs, then instruction (+ "\\n\\n" + input when not empty) → output."""
    instruction, output = _string(record, "instruction"), _string(record, "output")
    extra = record.get("input") or ""
    if not isinstance(extra, str):
        raise SkipRecord("non_string_content", "'input' is not a string")
    messages = []
    system = record.get("system") or ""
    if not isinstance(system, str):
        raise SkipRecord("non_string_content", "'system' is not a string")
    if system:
        messages.append({"role": "system", "content": system})
    history = record.get("history") or []
    if not isinstance(history, list):
        raise SkipRecord("unknown_format", "'history' must be a list of [user, assistant] pairs")
    for pair in history:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise SkipRecord("unknown_format", "'history' must be a list of [user, assistant] pairs")
        if not all(isinstance(x, str) for x in pair):
            raise SkipRecord("non_string_content", "a 'history' turn is not a string")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": output}]


def _prompt_completion(record: dict) -> list[dict]:
    """Strings become one user and one assistant turn; lists of messages are joined as they are."""
    prompt, completion = _field(record, "prompt"), _field(record, "completion")
    if isinstance(prompt, list) or isinstance(completion, list):
        prompt = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        completion = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        return _messages(prompt + completion, "role", "content", roles=None)
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise SkipRecord("non_string_content", "'prompt' and 'completion' must be strings or message lists")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
