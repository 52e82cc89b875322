"""Normalise one record of any supported dialogue format to a list of chat messages (or plain text).

Every format ends up as `Conversation(messages)` — a list of `{"role", "content"}` dicts for the chat
template — or as `Text(text)` for plain language-model data. Extra fields are ignored.

>>> to_example({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]})
Conversation(messages=[{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}])
>>> to_example({"instruction": "Add", "input": "2+2", "output": "4"}).messages[0]
{'role': 'user', 'content': 'Add\\n\\n2+2'}
>>> to_example({"prompt": "Q", "completion": "A"}).messages[-1]
{'role': 'assistant', 'content': 'A'}
>>> to_example({"text": "Once upon a time"})
Text(text='Once upon a time')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyze.errors import SkipRecord

FORMATS = ("auto", "messages", "sharegpt", "alpaca", "prompt_completion", "text")

# ShareGPT speaker names → chat roles. function_call is the assistant calling a tool (trained on);
# observation is the tool's answer (not trained on).
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
    messages: list[dict[str, str]]


@dataclass
class Text:
    text: str


Example = Conversation | Text


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


def to_example(record: Any, fmt: str = "auto") -> Example:
    """Turn one parsed JSON record into a `Conversation` or `Text`, or raise `SkipRecord`."""
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
    elif fmt == "alpaca":
        messages = _alpaca(record)
    elif fmt == "prompt_completion":
        messages = _prompt_completion(record)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not messages:
        raise SkipRecord("empty_conversation", "the conversation has no messages")
    return Conversation(messages)


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
        if not isinstance(turn, dict) or role_key not in turn or content_key not in turn:
            raise SkipRecord("unknown_format", f"message {i} lacks {role_key!r}/{content_key!r}")
        role, content = turn[role_key], turn[content_key]
        if not isinstance(role, str):
            raise SkipRecord("unknown_format", f"message {i}: {role_key!r} is not a string")
        if not isinstance(content, str):
            raise SkipRecord(
                "non_string_content",
                f"message {i}: {content_key!r} is {type(content).__name__}, not a string",
            )
        if roles is not None:
            if role.lower() not in roles:
                raise SkipRecord("unknown_format", f"message {i}: unknown speaker {role!r}")
            role = roles[role.lower()]
        messages.append({"role": role, "content": content})
    return messages


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
