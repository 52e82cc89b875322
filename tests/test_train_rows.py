"""Packed rows, collation and the loss: contents checked against the tokenizer, isolation proved on a real model."""

import numpy as np
import pytest
import torch

from analyze.pipeline import tokenize_files
from analyze.plan import make_plan
from train.collate import PackedCollator
from train.loss import token_loss_sum
from train.rows import IGNORE, PackedRows

CHATS = [
    [("user", "Hi!"), ("assistant", "Hello. How can I help?")],
    [("user", "Name a colour."), ("assistant", "Blue."), ("user", "Another?"), ("assistant", "Green.")],
    [("user", "What is 2 + 2?"), ("assistant", "4")],
    [("user", "Tell me a long story about a cat who " + "walks and " * 30), ("assistant", "Once " * 20)],
    [("user", "ok"), ("assistant", "Fine.")],
]


@pytest.fixture
def packed(qwen3, write_jsonl):
    path = write_jsonl([{"messages": [{"role": r, "content": c} for r, c in chat]} for chat in CHATS])
    tokenized = tokenize_files([path], qwen3, keep_ids=True)
    plan = make_plan(tokenized.table, 160, "cut_turns")
    return tokenized, plan, PackedRows(tokenized.table, plan)


def test_rows_hold_each_kept_conversation_once_with_its_own_positions_and_labels(qwen3, packed):
    tokenized, plan, rows = packed
    table = tokenized.table
    assert len(plan.rows) < len(plan.records) <= len(CHATS)  # something was packed together
    seen = []
    for i in range(len(rows)):
        item = rows[i]
        assert len(item["input_ids"]) <= plan.max_length
        at = 0
        for r in rows.records_of(i):
            n = int(plan.kept.tokens[r])
            ids = item["input_ids"][at : at + n].numpy()
            want = np.asarray(qwen3.apply_chat_template(_messages(CHATS[r]), tokenize=True)["input_ids"][:n])
            assert (ids == want).all()
            assert item["position_ids"][at : at + n].tolist() == list(range(n))
            labels = item["labels"][at : at + n].numpy()
            mask = table.supervised_mask(r)[:n]
            assert labels[0] == IGNORE
            assert (labels[1:][mask[1:]] == ids[1:][mask[1:]]).all()
            assert (labels[1:][~mask[1:]] == IGNORE).all()
            # the supervised tokens are exactly the assistant replies and their end-of-turn token
            assert "Blue." in qwen3.decode(ids[mask]) or r != 1
            seen.append(r)
            at += n
        assert at == len(item["input_ids"])
    assert sorted(seen) == sorted(plan.records.tolist())
    assert rows.real_tokens == int(plan.lengths.sum())
    assert rows.supervised_tokens == sum(int((rows[i]["labels"] != IGNORE).sum()) for i in range(len(rows)))


def test_overlong_record_is_kept_as_the_plan_says(qwen3, write_jsonl):
    path = write_jsonl([{"messages": [{"role": r, "content": c} for r, c in chat]} for chat in CHATS])
    tokenized = tokenize_files([path], qwen3, keep_ids=True)
    long_len = int(tokenized.table.tokens[3])
    plan = make_plan(tokenized.table, long_len - 5, "truncate")
    rows = PackedRows(tokenized.table, plan)
    lengths = {r: len(rows.conversation(r)[0]) for i in range(len(rows)) for r in rows.records_of(i)}
    assert lengths[3] == long_len - 5


def _messages(chat):
    return [{"role": r, "content": c} for r, c in chat]


@pytest.fixture(scope="module")
def tiny_model(qwen3):
    from transformers import AutoModelForCausalLM

    from analyze.model_facts import load_model_config
    from train.smoke import tiny_config

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        tiny_config(load_model_config("Qwen/Qwen3-1.7B"), qwen3), attn_implementation="sdpa"
    )
    return model.eval()


@pytest.mark.training
def test_packed_conversation_logits_equal_its_logits_alone(packed, tiny_model, qwen3):
    _, plan, rows = packed
    batch = PackedCollator(qwen3.pad_token_id, plan.max_length)([rows[i] for i in range(len(rows))])
    assert "attention_mask" not in batch
    with torch.no_grad():
        logits = tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        leaky = tiny_model(input_ids=batch["input_ids"], attention_mask=torch.ones_like(batch["input_ids"])).logits
    checked = leaked = 0
    for i in range(len(rows)):
        at = 0
        for r in rows.records_of(i):
            ids, _ = rows.conversation(r)
            with torch.no_grad():
                alone = tiny_model(input_ids=torch.from_numpy(ids)[None], use_cache=False).logits[0]
            inside = logits[i, at : at + len(ids)]
            torch.testing.assert_close(inside, alone, atol=1e-4, rtol=1e-4)
            leaked += at > 0 and not torch.allclose(leaky[i, at : at + len(ids)], alone, atol=1e-4)
            checked += at > 0
            at += len(ids)
    assert checked >= 1  # at least one conversation sat behind another in its row
    assert leaked == checked  # control: with a 2D attention mask the same rows do contaminate each other


@pytest.mark.training
def test_packed_loss_equals_loss_of_conversations_run_separately(packed, tiny_model, qwen3):
    _, plan, rows = packed
    batch = PackedCollator(qwen3.pad_token_id, plan.max_length)([rows[i] for i in range(len(rows))])
    with torch.no_grad():
        logits = tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        total, count = token_loss_sum(logits, batch["labels"])
        sep_total, sep_count = 0.0, 0
        for i in range(len(rows)):
            for r in rows.records_of(i):
                ids, labels = rows.conversation(r)
                alone = tiny_model(input_ids=torch.from_numpy(ids)[None], use_cache=False).logits
                t, c = token_loss_sum(alone, torch.from_numpy(labels)[None])
                sep_total, sep_count = sep_total + t.item(), sep_count + int(c)
    assert int(count) == sep_count == rows.supervised_tokens
    assert abs(total.item() / int(count) - sep_total / sep_count) < 1e-5
