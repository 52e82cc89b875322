"""Tool calls, content parts and reasoning: every record's tokens are apply_chat_template's on the normalised
messages (with the schemas as `tools=`), and the supervised tokens are located from the template's structure —
checked against token positions worked out by hand."""

import json

import pytest

from analyze.formats import to_example
from analyze.pipeline import tokenize_files
from analyze.tokenizer import load_tokenizer
from tests.families import make_family

WEATHER = {"type": "function", "function": {"name": "weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip
CALL = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}

RECORDS = {
    "openai, content null, arguments a JSON string": {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "name": "weather", "content": '{"temp": 18}'},
            {"role": "assistant", "content": "18 degrees."},
        ],
        "tools": [WEATHER],
    },
    "openai, content absent, arguments an object": {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "tool_calls": [{**CALL, "function": {"name": "weather", "arguments": {"city": "P"}}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "18"},
            {"role": "assistant", "content": "18."},
        ],
        "tools": [WEATHER],
    },
    "content parts": {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
        ]
    },
    "reasoning_content": {
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "reasoning_content": "Add them.", "content": "4"},
        ]
    },
    "sharegpt with system and tools (LLaMA-Factory)": {
        "system": "You are helpful.",
        "tools": json.dumps([WEATHER["function"]]),
        "conversations": [
            {"from": "human", "value": "Weather in Oslo?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
            {"from": "observation", "value": '{"temp": 3}'},
            {"from": "gpt", "value": "3 degrees."},
        ],
    },
}


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return load_tokenizer(str(make_family("llama", tmp_path_factory.mktemp("llama"))))


def _table(tmp_path, tok, records):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = tokenize_files([path], tok, keep_ids=True, cache=False)
    assert result.skips.total == 0, list(result.skips.examples)
    return result.table


@pytest.mark.parametrize("name", sorted(RECORDS))
@pytest.mark.parametrize("family", ["qwen3", "llama"])
def test_tokens_are_apply_chat_template_on_the_normalised_record(name, family, tmp_path, qwen3, llama):
    tok = {"qwen3": qwen3, "llama": llama}[family]
    record = RECORDS[name]
    table = _table(tmp_path, tok, [record])
    example = to_example(record)
    want = tok.apply_chat_template(example.messages, tools=example.tools, tokenize=True)["input_ids"]
    assert table.row_ids(0).tolist() == want
    if example.tools:  # the schemas are counted: the same record without them is shorter
        bare = tok.apply_chat_template(example.messages, tokenize=True)["input_ids"]
        assert len(want) > len(bare)


def _spans(table, i=0) -> list[tuple[int, int]]:
    return [(int(s), int(e)) for s, e in zip(*table.spans(i), strict=True)]


def _supervised(tok, table, i=0) -> list[str]:
    ids = table.row_ids(i).tolist()
    return [tok.decode(ids[s:e]) for s, e in _spans(table, i)]


@pytest.mark.parametrize("reply", ["a", "hi", "user", "assistant", "think", "<", "im", "Hi"])
def test_a_reply_found_in_headers_or_special_tokens_is_supervised_in_its_own_place(reply, tmp_path, qwen3):
    """Qwen3 renders the last turn as `<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n` + reply +
    `<|im_end|>\\n`: the supervised tokens are the reply's own and `<|im_end|>`, at the end, nothing else."""
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": reply}]
    table = _table(tmp_path, qwen3, [{"messages": chat}])
    ids = table.row_ids(0).tolist()
    reply_ids = qwen3.encode(reply, add_special_tokens=False)
    n = len(ids)
    # by hand: ... reply_ids, <|im_end|>, "\n"  →  supervised positions n-2-len(reply) .. n-2
    assert ids[n - 2 - len(reply_ids) : n - 2] == reply_ids and ids[n - 2] == qwen3.convert_tokens_to_ids("<|im_end|>")
    assert _spans(table) == [(n - 2 - len(reply_ids), n - 1)]


@pytest.mark.parametrize("reply", ["", "\n"])  # Qwen3 strips a reply's leading newlines: "\n" renders empty
def test_an_empty_reply_supervises_its_end_of_turn(reply, tmp_path, qwen3):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": reply}]
    table = _table(tmp_path, qwen3, [{"messages": chat}])
    assert _supervised(qwen3, table) == ["<|im_end|>"]
    assert _spans(table) == [(len(table.row_ids(0)) - 2, len(table.row_ids(0)) - 1)]


def test_a_reply_equal_to_earlier_messages_is_supervised_in_its_turn(tmp_path, qwen3):
    chat = [
        {"role": "user", "content": "ok"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "ok"},
        {"role": "assistant", "content": "ok"},
    ]
    table = _table(tmp_path, qwen3, [{"messages": chat}])
    ids = table.row_ids(0).tolist()
    end = qwen3.convert_tokens_to_ids("<|im_end|>")
    ends = [i for i, t in enumerate(ids) if t == end]  # user, assistant, user, assistant
    assert _spans(table) == [(ends[1] - 1, ends[1] + 1), (ends[3] - 1, ends[3] + 1)]


def test_reasoning_repeated_in_every_turn_is_supervised_where_the_template_renders_it(tmp_path, qwen3):
    """Qwen3 drops the reasoning of turns before the last user message and renders the last turn's."""
    chat = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "reasoning_content": "Add.", "content": "2"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "reasoning_content": "Add.", "content": "4"},
    ]
    table = _table(tmp_path, qwen3, [{"messages": chat}])
    assert _supervised(qwen3, table) == ["2<|im_end|>", "Add.\n</think>\n\n4<|im_end|>"]


def test_the_tool_call_is_supervised_and_the_tools_result_is_not(tmp_path, qwen3, llama):
    record = RECORDS["openai, content null, arguments a JSON string"]
    table = _table(tmp_path, qwen3, [record])
    assert _supervised(qwen3, table) == [
        '<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
        "18 degrees.<|im_end|>",
    ]
    table = _table(tmp_path, llama, [record])  # Llama 3.1: the call as JSON in the assistant turn
    assert _supervised(llama, table) == [
        '{"name": "weather", "parameters": {"city": "Paris"}}<|eot_id|>',
        "18 degrees.<|eot_id|>",
    ]


def test_non_text_parts_and_bad_calls_are_named_skips(tmp_path, qwen3):
    records = [
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]},
        {"messages": [{"role": "user", "content": "x"}], "tools": "not json"},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = tokenize_files([path], qwen3, cache=False)
    assert dict(result.skips.counts) == {"non_text_content": 1, "bad_tool_call": 1, "bad_tools": 1}


def test_llama_factory_text_parts_keep_their_text_under_value(tmp_path, qwen3):
    """LLaMA-Factory's newer datasets write a text part as {"type": "text", "value": ...}: it is text, and the record
    renders exactly as the same conversation with string contents; a text part with neither key is a named skip."""
    parts = {"messages": [
        {"role": "user", "content": [{"type": "text", "value": "Hello"}, {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": [{"type": "text", "value": "Hi!"}]},
    ]}  # fmt: skip
    plain = {"messages": [{"role": "user", "content": "Hello\nthere"}, {"role": "assistant", "content": "Hi!"}]}
    empty = {"messages": [{"role": "user", "content": [{"type": "text", "image": "x.png"}]}]}
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (parts, plain, empty)))
    result = tokenize_files([path], qwen3, keep_ids=True, cache=False)
    assert result.records == 2 and dict(result.skips.counts) == {"non_string_content": 1}
    assert "a 'text' part has no 'text' or 'value' string" in result.skips.examples[0]
    assert result.table.row_ids(0).tolist() == result.table.row_ids(1).tolist()
    assert result.table.row_ids(1).tolist() == qwen3.apply_chat_template(plain["messages"], tokenize=True)["input_ids"]


@pytest.mark.integration
def test_the_position_limit_is_the_measured_models_never_the_configs_other_model(tmp_path, capsys):
    from analyze.cli import main
    from tests.conftest import SAMPLE

    folder = make_family("llama", tmp_path / "llama")  # config.json: 8,192 positions; Qwen3's would be 40,960
    assert main([str(SAMPLE), "--json", "--tokenizer", str(folder), "--max-skip", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model_max_positions"] == 8192
    (folder / "config.json").unlink()  # a tokenizer folder alone: its model_max_length, else unknown
    assert main([str(SAMPLE), "--json", "--tokenizer", str(folder), "--max-skip", "1", "--no-cache"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model_max_positions"] is None  # unknown, not Qwen3's 40,960


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    return load_tokenizer(str(make_family("gemma3", tmp_path_factory.mktemp("gemma3"))))


def test_fix_roles_is_opt_in_named_and_counted(tmp_path, gemma):
    """Gemma 3's template refuses two user turns in a row and the tool role: skipped by default; with
    data.fix_roles they are merged and folded, each change counted, and the tokens are the template's own on the
    fixed messages."""
    from analyze.formats import Options, fold_tools, merge_consecutive

    twice = {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "there"},
                          {"role": "assistant", "content": "Hello"}]}  # fmt: skip
    tools = RECORDS["openai, content null, arguments a JSON string"]
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(twice) + "\n" + json.dumps(tools) + "\n")

    off = tokenize_files([path], gemma, cache=False)
    assert off.records == 0 and dict(off.skips.counts) == {"template_error": 2} and not off.roles_fixed

    on = tokenize_files([path], gemma, keep_ids=True, cache=False, options=Options(fix_roles=True))
    assert on.records == 2 and on.skips.total == 0
    assert dict(on.roles_fixed) == {"merged_consecutive_roles": 1, "folded_tool_turns": 1}
    merged = merge_consecutive(to_example(twice).messages)
    assert merged[0]["content"] == "Hi\n\nthere"
    assert on.table.row_ids(0).tolist() == gemma.apply_chat_template(merged, tokenize=True)["input_ids"]
    folded = fold_tools(to_example(tools).messages)
    assert [m["role"] for m in folded] == ["user", "assistant", "user", "assistant"]
    want = gemma.apply_chat_template(folded, tools=to_example(tools).tools, tokenize=True)["input_ids"]
    assert on.table.row_ids(1).tolist() == want


def test_config_tools_go_to_records_without_their_own(tmp_path, qwen3, capsys):
    from analyze.cli import main

    chat = {"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Sunny."}]}
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(chat) + "\n" + json.dumps({**chat, "tools": []}) + "\n")
    (tmp_path / "tools.json").write_text(json.dumps([WEATHER]))
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  tools: tools.json\n")  # relative to the config file
    assert main([str(path), "--json", "--config", str(config)]) == 0
    doc = json.loads(capsys.readouterr().out)
    with_tools = len(qwen3.apply_chat_template(chat["messages"], tools=[WEATHER], tokenize=True)["input_ids"])
    assert doc["lengths"]["max"] == doc["lengths"]["min"] == with_tools  # an empty list means "none": defaults
    (tmp_path / "tools.json").write_text("{oops")
    assert main([str(path), "--config", str(config)]) == 2
    assert "tools.json: data.tools is not JSON" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["qwen3", "llama", "gemma"])
def test_the_quick_ways_to_locate_turns_agree_with_one_rendering_per_reply(family, qwen3, llama, gemma):
    """`_spans_from_structure` (no extra rendering) and `_spans_from_one_rendering` must give exactly the spans of
    the reference, a marker rendering per reply, wherever they give an answer."""
    from analyze import render as R
    from tests.conftest import SAMPLE

    tok = {"qwen3": qwen3, "llama": llama, "gemma": gemma}[family]
    renderer = R.Renderer(tok)
    records = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:150]] + list(RECORDS.values())
    answered = 0
    for record in records:
        example = to_example(record)
        try:
            text = renderer.render(example)
        except Exception:  # Gemma refuses the tool role: not a case for this test
            continue
        reference = []
        for i, m in enumerate(example.messages):
            if m["role"] == "assistant":
                marked, kept = R._render_marked(example, i, renderer)
                start, end = R._differing(text, marked)
                if kept:
                    end = text.find(renderer.end_of_turn, end)
                reference.append((start, end + len(renderer.special_at(text, end))))
        for quick in (R._spans_from_structure, R._spans_from_one_rendering):
            got = quick(text, example, renderer)
            if got is not None:
                answered += 1
                assert got == reference, (quick.__name__, record)
    assert answered >= 150  # the quick ways answer for nearly every record
