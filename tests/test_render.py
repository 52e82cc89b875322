"""Exactness: a record's tokens are apply_chat_template's, and its supervised tokens are the assistant turns."""

import json

import numpy as np
import pytest

from analyze.formats import to_example
from analyze.pipeline import tokenize_files

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "How are you?"},
    {"role": "assistant", "content": "Fine, thanks."},
]

RECORDS = {
    "messages": {"messages": CHAT, "label": True},
    "sharegpt": {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Weather in Oslo?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
            {"from": "observation", "value": '{"temp": 3}'},
            {"from": "gpt", "value": "It is 3 degrees."},
        ]
    },
    "alpaca": {
        "instruction": "Translate to French",
        "input": "cat",
        "output": "chat",
        "system": "You translate.",
        "history": [["Translate to German: dog", "Hund"]],
    },
    "prompt_completion": {"prompt": "2+2?", "completion": "4"},
}


def analysed(write_jsonl, qwen3, records, **kw):
    path = write_jsonl(records)
    return tokenize_files([path], qwen3, keep_ids=True, **kw)


@pytest.mark.parametrize("fmt", sorted(RECORDS))
def test_tokens_equal_apply_chat_template(fmt, write_jsonl, qwen3):
    record = RECORDS[fmt]
    result = analysed(write_jsonl, qwen3, [record])
    example = to_example(record)
    expected = qwen3.apply_chat_template(example.messages, tools=example.tools, tokenize=True)["input_ids"]
    assert result.table.row_ids(0).tolist() == expected
    assert result.table.tokens[0] == len(expected)


def test_text_format_is_tokenizer_output_plus_eos(write_jsonl, qwen3):
    result = analysed(write_jsonl, qwen3, [{"text": "Once upon a time"}])
    expected = qwen3("Once upon a time")["input_ids"] + [qwen3.eos_token_id]
    assert result.table.row_ids(0).tolist() == expected
    assert result.table.supervised[0] == len(expected)  # language modelling: every token is trained


def decode_supervised(table, row, tok) -> list[str]:
    """The supervised spans of a row, decoded, one string per contiguous span."""
    mask, ids = table.supervised_mask(row), table.row_ids(row)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    return [tok.decode(ids[s:e]) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def test_supervised_tokens_are_replies_and_their_end_of_turn(write_jsonl, qwen3):
    result = analysed(write_jsonl, qwen3, [{"messages": CHAT}])
    assert decode_supervised(result.table, 0, qwen3) == ["Hello!<|im_end|>", "Fine, thanks.<|im_end|>"]
    # hand count: "Hello" "!" <|im_end|> + "Fine" "," " thanks" "." <|im_end|>
    assert result.table.supervised[0] == 3 + 5


def test_qwen3_think_block_is_not_prefix_stable_and_not_supervised(write_jsonl, qwen3):
    """Qwen3 puts an empty <think> block only before the last reply: prefixes render the first reply differently."""
    full = qwen3.apply_chat_template(CHAT, tokenize=False)
    prefix = qwen3.apply_chat_template(CHAT[:3], tokenize=False)
    assert "<think>\n\n</think>\n\nHello!" in prefix and "<think>\n\n</think>\n\nHello!" not in full
    assert full.count("<think>") == 1

    table = analysed(write_jsonl, qwen3, [{"messages": CHAT}]).table
    think = qwen3.convert_tokens_to_ids(["<think>", "</think>"])
    ids, mask = table.row_ids(0), table.supervised_mask(0)
    assert set(think) <= set(ids.tolist())
    assert not mask[np.isin(ids, think)].any()  # the template's scaffolding is not trained


def test_reasoning_in_content_is_supervised(write_jsonl, qwen3):
    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"}]
    table = analysed(write_jsonl, qwen3, [{"messages": chat}]).table
    assert table.row_ids(0).tolist() == qwen3.apply_chat_template(chat, tokenize=True)["input_ids"]
    (span,) = decode_supervised(table, 0, qwen3)
    # the template opens a <think> block for the last turn whatever the reply: scaffolding, like the role header
    assert span == "add them\n</think>\n\n4<|im_end|>"


def test_repeated_text_is_found_in_its_own_turn(write_jsonl, qwen3):
    chat = [{"role": "user", "content": "yes"}, {"role": "assistant", "content": "yes"}]
    table = analysed(write_jsonl, qwen3, [{"messages": chat}]).table
    ids, mask = table.row_ids(0), table.supervised_mask(0)
    assert qwen3.decode(ids[mask]) == "yes<|im_end|>"
    assert int(np.flatnonzero(mask)[0]) > int(np.flatnonzero(ids == qwen3.convert_tokens_to_ids("yes"))[0])


def test_empty_reply_trains_only_its_end_of_turn(write_jsonl, qwen3):
    chat = [{"role": "user", "content": "Say nothing"}, {"role": "assistant", "content": ""}]
    table = analysed(write_jsonl, qwen3, [{"messages": chat}]).table
    assert decode_supervised(table, 0, qwen3) == ["<|im_end|>"]
    last_im_end = len(table.row_ids(0)) - 2  # "...<|im_end|>\n": the reply's own end-of-turn, not the user's
    assert table.supervised_mask(0)[last_im_end]


@pytest.mark.integration
def test_bos_is_not_doubled_with_a_template_that_adds_it(tmp_path, write_jsonl, qwen3):
    """Llama-3-style template that starts with a BOS-like special token: it appears once, as in apply_chat_template."""
    template = tmp_path / "bos.jinja"
    template.write_text(
        "{{ '<|endoftext|>' }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    )
    from analyze.tokenizer import load_tokenizer

    tok = load_tokenizer("bundled:qwen3", chat_template_file=template)
    table = tokenize_files([write_jsonl([{"messages": CHAT}])], tok, keep_ids=True).table
    ids = table.row_ids(0).tolist()
    assert ids == tok.apply_chat_template(CHAT, tokenize=True)["input_ids"]
    assert ids.count(tok.convert_tokens_to_ids("<|endoftext|>")) == 1
    assert decode_supervised(table, 0, tok) == ["Hello!<|im_end|>", "Fine, thanks.<|im_end|>"]


@pytest.mark.integration
def test_every_bundled_sample_record_matches_apply_chat_template(qwen3):
    """The whole bundled sample: ids exact, and supervised spans equal a Qwen3-specific regex's spans."""
    import re

    from tests.conftest import SAMPLE

    result = tokenize_files([SAMPLE], qwen3, keep_ids=True)
    records = [json.loads(line)["messages"] for line in SAMPLE.open()]
    assert result.records == len(records) and result.skips.total == 0
    reply = re.compile(r"<\|im_start\|>assistant\n(?:<think>\n\n</think>\n\n)?(.*?<\|im_end\|>)", re.S)
    for row in range(0, len(records), 7):  # a spread of records keeps this quick
        text = qwen3.apply_chat_template(records[row], tokenize=False)
        enc = qwen3(text, add_special_tokens=False, return_offsets_mapping=True)
        assert result.table.row_ids(row).tolist() == enc["input_ids"]
        expected = np.zeros(len(enc["input_ids"]), bool)
        for m in reply.finditer(text):
            s, e = m.span(1)
            expected |= np.array([b > s and a < e for a, b in enc["offset_mapping"]])
        assert (result.table.supervised_mask(row) == expected).all(), row
