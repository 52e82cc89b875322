"""The warning when the chat template drops tools: Llama 3's plain template (and Gemma 3's) ignores `tools` and
`tool_calls`, so the lengths match the template but the schemas and calls never reach the model. The counts are
checked against counts taken from the raw records, and every verdict against apply_chat_template itself: the
record rendered with and without its schemas, with and without its calls."""

import json

import pytest

from analyze.formats import Options, to_example
from analyze.pipeline import tokenize_files
from analyze.render import Renderer
from analyze.tokenizer import load_tokenizer
from analyze.tool_drops import tool_drops, warning
from tests.families import TEMPLATES, make_family

LLAMA3 = TEMPLATES / "llama3.jinja"  # Meta-Llama-3-8B-Instruct's: role, content, nothing else

WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip
TIME = {"name": "local_time", "description": "The time in a city", "parameters": {"type": "object"}}


def _call(name, **arguments):
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


RECORDS = [
    {  # schemas and a call (OpenAI: content null, arguments a JSON string), the tool's answer, the reply
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [_call("weather", city="Paris")]},
            {"role": "tool", "tool_call_id": "c1", "name": "weather", "content": '{"temp": 18}'},
            {"role": "assistant", "content": "18 degrees."},
        ],
        "tools": [WEATHER],
    },
    {  # schemas, no call
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "tools": [WEATHER],
    },
    {  # a call with text beside it, no schemas
        "messages": [
            {"role": "user", "content": "Time in Oslo?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [_call("local_time", city="Oslo")]},
            {"role": "tool", "content": "14:00"},
            {"role": "assistant", "content": "It is 14:00."},
        ]
    },
    {  # LLaMA-Factory's sharegpt: tools as a JSON string, function_call and observation turns
        "system": "You are helpful.",
        "tools": json.dumps([TIME]),
        "conversations": [
            {"from": "human", "value": "Time in Lima?"},
            {"from": "function_call", "value": '{"name": "local_time", "arguments": {"city": "Lima"}}'},
            {"from": "observation", "value": '{"time": "09:00"}'},
            {"from": "gpt", "value": "09:00."},
        ],
    },
    {  # reasoning beside the call: the template's structure does not anchor it (Qwen3 renders the reasoning)
        "messages": [
            {"role": "user", "content": "Weather in Rome?"},
            {
                "role": "assistant",
                "reasoning_content": "I should call weather.",
                "content": "",
                "tool_calls": [_call("weather", city="Rome")],
            },
            {"role": "tool", "content": "25"},
            {"role": "assistant", "content": "25 degrees."},
        ],
        "tools": [WEATHER],
    },
    {  # the last turn is the call: nothing follows it
        "messages": [
            {"role": "user", "content": "Weather in Nice?"},
            {"role": "assistant", "content": "", "tool_calls": [_call("weather", city="Nice")]},
        ],
        "tools": [WEATHER],
    },
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},  # no tools at all
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}], "tools": []},
]


def _carries_tools(raw: dict) -> bool:
    tools = raw.get("tools")
    return bool(json.loads(tools) if isinstance(tools, str) else tools)


def _carries_calls(raw: dict) -> bool:
    return any(m.get("tool_calls") for m in raw.get("messages", ())) or any(
        t["from"] == "function_call" for t in raw.get("conversations", ())
    )


def _has_tool_turns(raw: dict) -> bool:
    return any(m["role"] == "tool" for m in raw.get("messages", ())) or any(
        t["from"] == "observation" for t in raw.get("conversations", ())
    )


WITH_TOOLS = sum(map(_carries_tools, RECORDS))
WITH_CALLS = sum(map(_carries_calls, RECORDS))


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    return {name: make_family(name, tmp_path_factory.mktemp(name)) for name in ("llama", "gemma3")}


@pytest.fixture(scope="module")
def tokenizers(families, qwen3):
    return {
        "qwen3": qwen3,  # renders schemas and calls
        "llama3.1": load_tokenizer(str(families["llama"])),  # renders both (schemas in the first user turn)
        "llama3": load_tokenizer(str(families["llama"]), str(LLAMA3)),  # ignores both
        "gemma3": load_tokenizer(str(families["gemma3"])),  # ignores both; refuses the tool role
    }


@pytest.fixture
def data(write_jsonl):
    return write_jsonl(RECORDS)


def test_the_raw_counts_cover_every_kind_of_record():
    assert (WITH_TOOLS, WITH_CALLS) == (5, 5)


def test_qwen3_renders_the_tools_so_nothing_is_dropped(data, qwen3):
    result = tokenize_files([data], qwen3, cache=False)
    assert result.skips.total == 0
    assert dict(result.tool_drops) == {"tools": WITH_TOOLS, "tool_calls": WITH_CALLS}
    assert warning(result.tool_drops) is None


def test_llama3s_plain_template_drops_every_schema_and_call(data, tokenizers):
    result = tokenize_files([data], tokenizers["llama3"], cache=False)
    assert result.skips.total == 0
    assert dict(result.tool_drops) == {
        "tools": WITH_TOOLS,
        "tools_dropped": WITH_TOOLS,
        "tool_calls": WITH_CALLS,
        "tool_calls_dropped": WITH_CALLS,
    }
    text = warning(result.tool_drops)
    assert f"the tool schemas of {WITH_TOOLS} records (all {WITH_TOOLS} that carry them)" in text
    assert f"the tool calls of {WITH_CALLS} (all {WITH_CALLS}) never reach the model" in text


def test_calls_folded_into_text_by_fix_roles_are_not_dropped(data, tokenizers):
    """Gemma 3 refuses the tool role: with data.fix_roles the calls become JSON in the assistant's text, which
    the model sees; only a call with no tool turn after it renders unfolded, and Gemma 3 drops it."""
    result = tokenize_files([data], tokenizers["gemma3"], cache=False, options=Options(fix_roles=True))
    assert result.skips.total == 0
    folded = sum(_carries_calls(r) and _has_tool_turns(r) for r in RECORDS)
    assert result.roles_fixed["folded_tool_turns"] == folded
    assert dict(result.tool_drops) == {
        "tools": WITH_TOOLS,
        "tools_dropped": WITH_TOOLS,
        "tool_calls": WITH_CALLS - folded,
        "tool_calls_dropped": WITH_CALLS - folded,
    }


@pytest.mark.parametrize("family", ["qwen3", "llama3.1", "llama3", "gemma3"])
def test_each_verdict_is_apply_chat_templates_with_and_without(family, tokenizers):
    """Whatever way a verdict is reached (the marked role sequence, the record's own slots, the names it renders,
    or one more rendering), it is what rendering the record without its schemas or calls says."""
    tok = tokenizers[family]
    renderer = Renderer(tok)
    checked = 0
    for raw in RECORDS:
        example = to_example(raw)
        try:
            text = renderer.render(example)
        except Exception:  # Gemma 3 refuses the tool role: such a record is skipped, never checked
            continue
        renderer.finish([example], [text], renderer.encode_batch([example], [text]))  # as the pipeline does
        got = tool_drops(renderer, text, example)
        messages, tools = example.messages, example.tools
        render = tok.apply_chat_template
        want = []
        if tools:
            want.append("tools")
            if render(messages, tools=tools, tokenize=False) == render(messages, tokenize=False):
                want.append("tools_dropped")
        if any(m.get("tool_calls") for m in messages):
            want.append("tool_calls")
            bare = [{k: v for k, v in m.items() if k != "tool_calls"} for m in messages]
            if render(messages, tools=tools, tokenize=False) == render(bare, tools=tools, tokenize=False):
                want.append("tool_calls_dropped")
        assert got == want, raw
        checked += 1
    assert checked >= 4


def test_the_counts_come_back_from_the_cache(data, tokenizers):
    first = tokenize_files([data], tokenizers["llama3"])
    again = tokenize_files([data], tokenizers["llama3"])
    assert again.from_cache and not first.from_cache
    assert again.tool_drops == first.tool_drops and again.tool_drops["tools_dropped"] == WITH_TOOLS


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.integration
def test_lengthscan_and_train_say_the_same_warning(data, families, capsys):
    from analyze.cli import main as lengthscan
    from train.cli import main as train

    model = ["--model", str(families["llama"]), "--chat-template", str(LLAMA3)]
    assert lengthscan([str(data), *model, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)["tools"]
    assert doc["records_with_tools"] == doc["tools_dropped"] == WITH_TOOLS
    assert doc["records_with_tool_calls"] == doc["tool_calls_dropped"] == WITH_CALLS
    said = doc["warning"]
    assert said.startswith("the chat template ignores tools:")

    assert lengthscan([str(data), *model]) == 0
    assert f"warning {_flat(said)}" in _flat(capsys.readouterr().out)

    assert train(["--data.train", str(data), *model, "--dry-run"]) == 0
    out = capsys.readouterr()
    assert f"warning: {said}" in (out.out + out.err).splitlines()

    assert lengthscan([str(data), "--json"]) == 0  # Qwen3 renders them: no warning
    doc = json.loads(capsys.readouterr().out)["tools"]
    assert (doc["tools_dropped"], doc["tool_calls_dropped"], doc["warning"]) == (0, 0, None)
    assert doc["records_with_tools"] == WITH_TOOLS
