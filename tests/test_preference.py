"""Preference pairs (DPO data): every format is recognised, each pair's prompt, chosen and rejected tokens equal what
TRL's own DPOTrainer tokenization gives on the same pairs (real tokenizers and templates: Qwen3, Llama 3.1, Gemma 3,
and a tokenizer that adds BOS to plain text), `train` refuses pairs in one line naming the format, and data where
most records have nothing to train stops both commands."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from analyze.analysis import analyze_files
from analyze.errors import UserError
from analyze.formats import PREFERENCE_FORMATS
from analyze.preference import PairTable, suggest_pairs, tokenize_pairs
from tests.families import make_family

# TRL 1.16's DPOConfig passes transformers 5 the old name `gradient_checkpointing` (the reference's, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")

Q = "What is the boiling point of water at sea level, in Celsius?"
GOOD, BAD = "It is 100 degrees Celsius.", "Water boils at about 50 degrees, I think, though it depends on the pot."


def _trl(records: list[dict], tok) -> list[tuple[int, int, int]]:
    """(prompt, chosen, rejected) tokens as TRL's DPOTrainer prepares these records (its own code, no truncation)."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    # `use_cpu`: TRL's bf16 default needs a GPU; `_prepare_dataset` uses only the trainer's tokenizer from `self`
    args = DPOConfig(output_dir="unused", report_to=[], use_cpu=True, bf16=False, max_length=None)
    ds = DPOTrainer._prepare_dataset(SimpleNamespace(_tokenizer=tok), Dataset.from_list(records), tok, args, "t")
    return [(len(r["prompt_ids"]), len(r["chosen_ids"]), len(r["rejected_ids"])) for r in ds]


def _ours(path, tok) -> list[tuple[int, int, int]]:
    pairs = tokenize_pairs([path], tok)
    assert pairs.skips.total == 0, pairs.skips.examples
    t = pairs.table
    return list(zip(t.prompt.tolist(), t.chosen.tolist(), t.rejected.tolist(), strict=True))


def _user(text):
    return {"role": "user", "content": text}


def _bot(text):
    return {"role": "assistant", "content": text}


CONVERSATIONAL = [  # TRL's explicit-prompt conversational pairs, multi-turn and with a system prompt
    {"prompt": [_user(Q)], "chosen": [_bot(GOOD)], "rejected": [_bot(BAD)]},
    {
        "prompt": [{"role": "system", "content": "Be brief."}, _user("Hi"), _bot("Hello!"), _user(Q)],
        "chosen": [_bot(GOOD)],
        "rejected": [_bot(BAD)],
    },
]
STANDARD = [  # strings, HH-RLHF style
    {"prompt": f"\n\nHuman: {Q}\n\nAssistant:", "chosen": f" {GOOD}", "rejected": f" {BAD}"},
    {"prompt": "\n\nHuman: 2+2?\n\nAssistant:", "chosen": " 4", "rejected": " 5"},
]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory, qwen3):
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer

    out = {"qwen3": qwen3}
    for family in ("llama", "gemma3"):
        folder = make_family(family, tmp_path_factory.mktemp(family))
        out[family] = AutoTokenizer.from_pretrained(folder)
    bos = AutoTokenizer.from_pretrained(make_family("llama", tmp_path_factory.mktemp("bos")))
    bos_id = bos.convert_tokens_to_ids("<|begin_of_text|>")  # plain text gets BOS, as Llama's tokenizer.json does
    bos.backend_tokenizer.post_processor = TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos_id)]
    )
    out["bos"] = bos
    return out


@pytest.mark.integration  # TRL's own code is the reference: seconds each
@pytest.mark.parametrize("name", ["qwen3", "llama", "gemma3", "bos"])
def test_trl_pairs_measure_as_dpo_trainer_tokenizes_them(name, tokenizers, write_jsonl):
    tok = tokenizers[name]
    for records in (CONVERSATIONAL, STANDARD):
        assert _ours(write_jsonl(records), tok) == _trl(records, tok)


@pytest.mark.integration  # TRL's own code is the reference: seconds each
@pytest.mark.parametrize("name", ["qwen3", "gemma3"])
def test_implicit_prompts_split_as_trl_splits_them(name, tokenizers, write_jsonl):
    tok = tokenizers[name]
    conversational = [
        {"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in CONVERSATIONAL
    ]
    standard = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in STANDARD]
    for records in (conversational, standard):
        assert _ours(write_jsonl(records), tok) == _trl(records, tok)


@pytest.mark.integration  # TRL's own code is the reference: seconds each
def test_llamafactory_pairs_measure_as_the_same_pairs_in_trls_form(tokenizers, write_jsonl):
    """LLaMA-Factory's ShareGPT and Alpaca pairs equal TRL's conversational pairs written by hand from them."""
    tok = tokenizers["qwen3"]
    sharegpt = [
        {
            "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
                              {"from": "human", "value": Q}],
            "system": "Be brief.",
            "chosen": {"from": "gpt", "value": GOOD},
            "rejected": {"from": "gpt", "value": BAD},
        }
    ]  # fmt: skip
    alpaca = [{"instruction": Q, "input": "Answer in one line.", "chosen": GOOD, "rejected": BAD}]
    by_hand = [
        CONVERSATIONAL[1],
        {"prompt": [_user(f"{Q}\n\nAnswer in one line.")], "chosen": [_bot(GOOD)], "rejected": [_bot(BAD)]},
    ]
    ours = _ours(write_jsonl(sharegpt, "sg.jsonl"), tok) + _ours(write_jsonl(alpaca, "al.jsonl"), tok)
    assert ours == _trl(by_hand[:1], tok) + _trl(by_hand[1:], tok)


def test_lengthscan_recognises_each_format_and_suggests_dpo_lengths(write_jsonl, qwen3):
    records = [
        *CONVERSATIONAL,
        {"chosen": CONVERSATIONAL[0]["prompt"] + [_bot(GOOD)], "rejected": CONVERSATIONAL[0]["prompt"] + [_bot(BAD)]},
        {"conversations": [{"from": "human", "value": Q}], "chosen": {"from": "gpt", "value": GOOD},
         "rejected": {"from": "gpt", "value": BAD}},
        {"instruction": Q, "chosen": GOOD, "rejected": BAD},
        {"messages": [_user(Q), _bot(GOOD)]},  # not a pair: counted as skipped, not lost
    ]  # fmt: skip
    a = analyze_files([write_jsonl(records)], cache=False, **{"data.max_skip": 0.5})
    doc = a.as_json()
    assert doc["kind"] == "preference" and doc["pairs"] == 5 and doc["skipped_reasons"] == {"not_a_pair": 1}
    assert doc["formats"] == {
        PREFERENCE_FORMATS["trl"]: 2,
        PREFERENCE_FORMATS["trl_implicit"]: 1,
        PREFERENCE_FORMATS["llamafactory"]: 1,
        PREFERENCE_FORMATS["llamafactory_alpaca"]: 1,
    }
    t = a.pairs.table
    rows = t.prompt + np.maximum(t.chosen, t.rejected)
    s = a.suggestion
    assert s.max_length % 64 == 0 and s.max_length >= rows.max() and s.truncated == s.dropped == 0  # p99 of 5 = max
    assert doc["lengths"]["prompt"]["max"] == t.prompt.max() and s.max_prompt_length >= t.prompt.max()


def test_the_suggestion_counts_what_dpo_trainer_cuts_and_drops():
    """At max_length 64: a pair whose prompt fills it is dropped whole; one whose longer reply crosses it is cut."""
    t = PairTable(*np.zeros((2, 3), np.int64), np.array([70, 40, 10]), np.array([5, 30, 5]), np.array([5, 10, 20]))
    s = suggest_pairs(t, 0.3, 64, None)  # p30 of rows (75, 70, 30) = 30 → 64
    assert (s.max_length, s.dropped, s.truncated) == (64, 1, 1)
    assert s.reply_tokens_lost == pytest.approx((5 + 5 + (40 + 30 - 64)) / (40 + 35))


def test_train_refuses_pairs_naming_the_format(write_jsonl, qwen3):
    from analyze.config import with_values
    from analyze.schema import Config
    from train.data import tokenize

    path = write_jsonl([{"conversations": [{"from": "human", "value": Q}], "chosen": {"from": "gpt", "value": GOOD},
                         "rejected": {"from": "gpt", "value": BAD}}] * 3)  # fmt: skip
    cfg = with_values(Config(), {"data.train": [str(path)]})
    with pytest.raises(UserError) as e:
        tokenize(cfg, qwen3, [path])
    msg = str(e.value)
    assert "\n" not in msg and PREFERENCE_FORMATS["llamafactory"] in msg and "3 of 3" in msg and "DPOTrainer" in msg


def test_a_few_pairs_among_conversations_are_skips_in_both_commands(write_jsonl, qwen3):
    """The rule is train's (pairs must outnumber conversations), even when the file starts with a pair."""
    from analyze.analysis import check_skips
    from analyze.pipeline import tokenize_files

    conversations = [{"messages": [_user(f"q{i}"), _bot(f"a{i}")]} for i in range(20)]
    path = write_jsonl([{"prompt": "Q", "chosen": "A", "rejected": "B"}, *conversations])
    a = analyze_files([path], cache=False, **{"data.max_skip": 0.1})
    assert a.as_json()["kind"] == "conversations" and a.tokenized.skips.counts == {"preference_pair": 1}
    check_skips(tokenize_files([path], qwen3, cache=False), 0.1)  # train's checks pass too
    with pytest.raises(UserError, match=r"data.jsonl:1: a preference pair .*--strict stops"):
        analyze_files([path], cache=False, strict=True)  # under --strict, the pair is a bad record
    pairs = write_jsonl([*CONVERSATIONAL * 3, conversations[0]], "pairs.jsonl")
    assert analyze_files([pairs], cache=False, strict=False, **{"data.max_skip": 0.2}).as_json()["kind"] == "preference"
    with pytest.raises(UserError, match=r"pairs.jsonl:7: .*\[not_a_pair\].*--strict"):
        analyze_files([pairs], cache=False, strict=True)  # a file of pairs: now the conversation is the bad record


def test_a_named_format_reads_the_conversation_beside_a_pair(write_jsonl):
    """UltraFeedback's SFT splits carry `messages` beside a pair: --format messages trains on them; auto sees pairs,
    and its string prompt beside whole conversations is split off as TRL's `maybe_extract_prompt` does."""
    records = [
        {
            "prompt": Q,
            "chosen": [_user(Q), _bot(GOOD)],
            "rejected": [_user(Q), _bot(BAD)],
            "messages": [_user(Q), _bot(GOOD)],
        }
    ] * 3
    path = write_jsonl(records)
    assert analyze_files([path], cache=False, **{"data.format": "messages"}).as_json()["kind"] == "conversations"
    pairs = analyze_files([path], cache=False).pairs
    assert pairs.skips.total == 0 and pairs.records == 3


@pytest.mark.integration
def test_a_string_prompt_beside_whole_conversations_measures_as_trl_extracts_it(write_jsonl, qwen3):
    pytest.importorskip("trl")
    from trl.data_utils import maybe_extract_prompt

    records = [{"prompt": Q, "chosen": [_user(Q), _bot(GOOD)], "rejected": [_user(Q), _bot(BAD)]}]
    assert _ours(write_jsonl(records), qwen3) == _trl([maybe_extract_prompt(r) for r in records], qwen3)


def test_most_records_without_a_reply_stop_both_commands(write_jsonl, qwen3):
    """A prompt-only file is an error naming the count and the first record, not a max_length of 64."""
    from analyze.analysis import check_skips
    from analyze.pipeline import tokenize_files

    records = [{"messages": [_user(f"question {i}")]} for i in range(3)] + [{"messages": [_user("q"), _bot("a")]}]
    path = write_jsonl(records)
    with pytest.raises(
        UserError, match=rf"3 of 4 records have nothing to train: no assistant reply \(first: {path}:1\)"
    ):
        analyze_files([path], cache=False)
    with pytest.raises(UserError, match="3 of 4 records have nothing to train"):  # train runs the same check
        check_skips(tokenize_files([path], qwen3, cache=False), 0.05)
    few = write_jsonl([*records[2:], {"messages": [_user("x"), _bot("y")]}], "few.jsonl")  # 1 of 3: counted
    a = analyze_files([few], cache=False)
    assert a.as_json()["records_without_reply"] == 1


@pytest.mark.cli
def test_lengthscan_prints_the_pair_report_and_writes_no_config(tmp_path, write_jsonl):
    import subprocess
    import sys

    path = write_jsonl(CONVERSATIONAL * 3)
    run = [sys.executable, "-m", "analyze", str(path), "--no-cache"]
    done = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "6 preference pairs" in done.stdout and "DPOConfig(max_length=" in done.stdout
    target = tmp_path / "l.yaml"
    done = subprocess.run([*run, "--write-config", str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and not target.exists()
    assert done.stderr.count("\n") == 1 and "preference (DPO) data" in done.stderr
    out = tmp_path / "pairs.csv"
    done = subprocess.run([*run, "--json", "--lengths-out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    doc = json.loads(done.stdout)
    import pandas as pd

    frame = pd.read_csv(out)
    assert len(frame) == doc["pairs"] == 6 and frame["prompt_tokens"].max() == doc["lengths"]["prompt"]["max"]


@pytest.mark.integration
def test_real_hh_rlhf_pairs_measure_as_dpo_trainer_tokenizes_them(tokenizers):
    """300 real HH-RLHF transcripts (TRL's implicit-prompt strings): every pair equals TRL's preprocessing, and
    the one whose replies are the same (line 300, the source's line 722) is counted, not lost."""
    from tests.conftest import REPO

    path = REPO / "tests" / "fixtures" / "hh-rlhf-pairs-300.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    same = [i + 1 for i, r in enumerate(records) if r["chosen"] == r["rejected"]]
    for name in ("qwen3", "bos"):
        tok = tokenizers[name]
        pairs = tokenize_pairs([path], tok)
        assert same == [300] and pairs.skips.counts == {"same_replies": 1}
        kept = [r for r in records if r["chosen"] != r["rejected"]]
        t = pairs.table
        assert list(zip(t.prompt.tolist(), t.chosen.tolist(), t.rejected.tolist(), strict=True)) == _trl(kept, tok)
