"""lengthscan → config → train: what lengthscan measured is what train trains on, or train says it is not.

`lengthscan --write-config` records the model, the tokenizer when it is not the model's own, the format, the
overlong policy, the suggestion's settings and the fingerprints of data and tokenizer; paths are relative to the
config file. `train --dry-run --json` plans the same rows and steps lengthscan reported.
"""

import json
import shutil
from pathlib import Path

import pytest

from analyze.cli import main as lengthscan
from analyze.config import load_config
from tests.conftest import SAMPLE
from tests.families import make_family
from train.cli import main as train


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return make_family("llama", tmp_path_factory.mktemp("llama"))


def _json(capsys, command, argv) -> tuple[dict, str]:
    assert command(argv) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


@pytest.mark.integration
def test_a_config_written_for_another_model_trains_what_was_measured(tmp_path, llama, capsys, monkeypatch):
    project = tmp_path / "project"
    (project / "configs").mkdir(parents=True)
    data = project / "data.jsonl"
    shutil.copy(SAMPLE, data)
    config = project / "configs" / "run.yaml"
    monkeypatch.chdir(project)
    measured, _ = _json(capsys, lengthscan, ["data.jsonl", "--model", str(llama), "--policy", "supervised",
                                             "--target", "0.98", "--json", "--write-config", str(config)])  # fmt: skip
    text = config.read_text()
    assert "data.jsonl" in text and str(project) not in text.split("max_length_source")[0]  # relative paths
    cfg = load_config(config)
    assert cfg.model == str(llama) and cfg.tokenizer is None  # its own tokenizer: nothing to record
    assert (cfg.suggest.policy, cfg.suggest.target, cfg.overlong, cfg.data.format) == (
        "supervised", 0.98, "cut_turns", "auto"
    )  # fmt: skip
    assert cfg.max_length == measured["suggested_max_length"]

    monkeypatch.chdir(tmp_path)  # the config works from anywhere: its paths are read relative to it
    plan, err = _json(capsys, train, ["--config", str(config), "--dry-run", "--json"])
    assert "warning" not in err
    assert plan["model"] == str(llama) and plan["max_length"] == cfg.max_length
    assert plan["tokenizer"] == measured["tokenizer"]

    # the same config and data: lengthscan's train split is train's, row for row and step for step
    again, _ = _json(capsys, lengthscan, ["--config", str(config), "--json"])
    assert again["max_length"] == plan["max_length"]
    assert again["packed_rows"] == plan["train_rows"]
    assert again["steps_per_epoch"]["packed"] == plan["steps_per_epoch"]
    assert again["split"]["train_records"] == plan["train_conversations"]
    assert again["split"]["eval_records"] == plan["eval_conversations"] > 0  # eval keeps those that train

    # --auto-maxlen suggests by the recorded policy, so it finds the same max_length
    auto, err = _json(capsys, train, ["--config", str(config), "--dry-run", "--json", "--auto-maxlen"])
    assert auto["max_length"] == cfg.max_length and "at which 'cut_turns' keeps at least 98.0%" in err


@pytest.mark.integration
def test_train_says_when_the_data_or_tokenizer_is_not_what_was_measured(tmp_path, llama, capsys):
    config = tmp_path / "run.yaml"
    assert lengthscan([str(SAMPLE), "--write-config", str(config)]) == 0
    other = tmp_path / "other.jsonl"
    other.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:500]))
    capsys.readouterr()

    _, err = _json(capsys, train, ["--config", str(config), "--dry-run", "--json", "--data.train", str(other)])
    warning = [line for line in err.splitlines() if line.startswith("warning: max_length")]
    assert len(warning) == 1 and "other data" in warning[0]
    assert "--auto-maxlen" in warning[0] and f"lengthscan --config {config} --write-config" in warning[0]

    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m.role }}: {{ m.content }}<|im_end|>\n{% endfor %}")
    _, err = _json(capsys, train, ["--config", str(config), "--dry-run", "--json", "--chat_template", str(template)])
    assert "another tokenizer or chat template" in err

    _, err = _json(capsys, train, ["--config", str(config), "--dry-run", "--json", "--max_length", "256"])
    assert "warning: max_length" not in err  # set on the command line: the user's choice


@pytest.mark.integration
def test_a_tokenizer_that_is_not_the_models_is_recorded(tmp_path, llama, capsys):
    """Another folder with the model's vocabulary: recorded, and train takes it. (One train would refuse is not
    written at all: tests/test_write_config_checks.py.)"""
    model = tmp_path / "model"
    shutil.copytree(llama, model)
    config = tmp_path / "run.yaml"
    argv = [str(SAMPLE), "--model", str(model), "--tokenizer", str(llama), "--write-config", str(config), "--json"]
    assert lengthscan(argv) == 0
    cfg = load_config(config)
    assert cfg.tokenizer == str(llama) and Path(cfg.model).resolve() == model.resolve()
    assert cfg.max_length_source["tokenizer"] == str(llama)
    capsys.readouterr()
    assert train(["--config", str(config), "--dry-run"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.integration
def test_eval_holds_out_the_same_conversations_at_any_max_length(qwen3):
    from analyze.config import with_values
    from analyze.pipeline import tokenize_files
    from analyze.schema import Config
    from train.data import build

    tokenized = tokenize_files([SAMPLE], qwen3, keep_ids=True)
    table = tokenized.table
    sides = {}
    for max_length in (256, 512, 704):
        data = build(with_values(Config(), {"max_length": max_length}), qwen3, tokenized)
        train_recs = {r for i in range(len(data.train)) for r in data.train.records_of(i)}
        eval_recs = {r for i in range(len(data.eval)) for r in data.eval.records_of(i)}
        assert not train_recs & eval_recs
        assert all(len(data.eval.records_of(i)) >= 1 for i in range(len(data.eval)))
        sides[max_length] = (train_recs, eval_recs)
    # the hold-out is a fixed set of conversations; a longer max_length only keeps more of them
    assert sides[256][1] <= sides[512][1] <= sides[704][1]
    assert not sides[704][1] & (sides[256][0] | sides[512][0])
    assert 0.04 < len(sides[704][1]) / len(table) < 0.06
    # a different seed holds out other conversations
    other = build(with_values(Config(), {"optim.seed": 7}), qwen3, tokenized)
    other_eval = {r for i in range(len(other.eval)) for r in other.eval.records_of(i)}
    assert len(other_eval & sides[512][1]) < len(other_eval) / 2


def test_duplicates_stay_on_one_side(tmp_path, qwen3, write_jsonl):
    from analyze.config import with_values
    from analyze.pipeline import tokenize_files
    from analyze.schema import Config
    from train.data import build

    chats = [
        {"messages": [{"role": "user", "content": f"Question {k}"}, {"role": "assistant", "content": f"Answer {k}"}]}
        for k in range(200)
    ]
    path = write_jsonl(chats + chats)  # every conversation twice
    tokenized = tokenize_files([path], qwen3, keep_ids=True)
    data = build(with_values(Config(), {"data.eval_fraction": 0.2}), qwen3, tokenized)
    held = {int(r) % 200 for i in range(len(data.eval)) for r in data.eval.records_of(i)}
    trained = {int(r) % 200 for i in range(len(data.train)) for r in data.train.records_of(i)}
    assert held and not held & trained


# 20 conversations; those at 0-based index 1, 4, 7, … (every third) have a long answer: 74-76 Qwen3 tokens, the
# others 22-24. At max_length 64 with `overlong: drop` the long ones are dropped, on either side of the split.
LONG = {1, 4, 7, 10, 13, 16, 19}
SPLIT = ["--data.eval_fraction", "0.25", "--max_length", "64", "--overlong", "drop"]
HELD = [2, 4, 8, 9, 13, 19]  # held out by content hash at seed 42, eval_fraction 0.25 (pinned here)
# by hand: 6 held out, of which 4, 13 and 19 are long and dropped → 3 evaluated; 14 train, 4 long (1, 7, 10, 16) → 10
EVAL_BY_HAND, TRAIN_BY_HAND = 3, 10


def _dropped_in_eval(write_jsonl):
    long = " Here is a much longer answer with many more words in it." * 4
    return write_jsonl(
        [{"messages": [{"role": "user", "content": f"Question {k}?"},
                       {"role": "assistant", "content": f"Answer {k}." + (long if k in LONG else "")}]}
         for k in range(20)]
    )  # fmt: skip


def test_a_held_out_record_the_overlong_policy_drops_counts_in_neither_eval(write_jsonl, qwen3):
    """lengthscan's eval count is train's: held-out records after the overlong policy (`analysis.eval_plan`)."""
    import numpy as np

    from analyze.analysis import analyze
    from analyze.config import with_values
    from analyze.pipeline import tokenize_files
    from analyze.schema import Config
    from train.data import build

    tokenized = tokenize_files([_dropped_in_eval(write_jsonl)], qwen3, keep_ids=True, cache=False)
    tokens = tokenized.table.tokens
    assert all((tokens[k] > 64) == (k in LONG) for k in range(20))
    cfg = with_values(Config(), {"data.eval_fraction": 0.25, "max_length": 64, "overlong": "drop"})
    analysis = analyze(tokenized, cfg)
    assert np.flatnonzero(analysis.held_out).tolist() == HELD
    data = build(cfg, qwen3, tokenized)
    assert analysis.eval_records == data.eval.conversations == EVAL_BY_HAND  # lengthscan said 6 before issue 25
    assert sorted(int(r) for i in range(len(data.eval)) for r in data.eval.records_of(i)) == [2, 8, 9]
    assert analysis.at_max_length.records_trained == data.train.conversations == TRAIN_BY_HAND


@pytest.mark.integration
def test_lengthscan_prints_the_eval_count_train_dry_run_reports(write_jsonl, capsys):
    path = _dropped_in_eval(write_jsonl)
    plan, _ = _json(capsys, train, ["--data.train", str(path), *SPLIT, "--dry-run", "--json"])
    report, _ = _json(capsys, lengthscan, [str(path), *SPLIT, "--json"])
    assert report["split"]["eval_records"] == plan["eval_conversations"] == EVAL_BY_HAND
    assert report["split"]["train_records"] == plan["train_conversations"] == TRAIN_BY_HAND
    assert lengthscan([str(path), *SPLIT]) == 0
    assert f"+ {EVAL_BY_HAND} held out for eval (data.eval_fraction 0.25)" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["--max_length", "704"],
        ["--optim.micro_batch_size", "2", "--optim.grad_accum_steps", "8"],
        ["--data.eval_fraction", "0"],
        ["--overlong", "truncate", "--max_length", "256"],
    ],
)
def test_lengthscan_reports_the_steps_train_will_take(tmp_path, capsys, overrides):
    config = tmp_path / "run.yaml"
    assert train([*overrides, "--data.train", str(SAMPLE), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    # the same settings as a config file for lengthscan
    from analyze.config import flatten, to_dict
    from analyze.config_write import update_config
    from train.overrides import parse_overrides, resolve

    cfg, _ = resolve({}, "test", parse_overrides(overrides))
    update_config(config, flatten(to_dict(cfg)))
    report, _ = _json(capsys, lengthscan, [str(SAMPLE), "--config", str(config), "--json"])
    assert report["steps_per_epoch"]["packed"] == plan["steps_per_epoch"]
    assert report["packed_rows"] == plan["train_rows"]
    assert report["split"]["train_records"] == plan["train_conversations"]


@pytest.mark.training
def test_the_trainer_takes_the_planned_steps(tmp_path, qwen3):
    """The schedule's steps per epoch are what transformers' Trainer computes from its own dataloader."""
    import math

    from transformers import AutoModelForCausalLM

    from analyze.config import with_values
    from analyze.model_facts import load_model_config
    from analyze.pipeline import tokenize_files
    from analyze.schema import Config
    from train.data import build
    from train.model import pick_precision
    from train.schedule import schedule
    from train.smoke import tiny_config
    from train.trainer_setup import make_trainer

    cfg = with_values(Config(), {"optim.micro_batch_size": 3, "optim.grad_accum_steps": 5, "max_length": 384})
    data = build(cfg, qwen3, tokenize_files([SAMPLE], qwen3, keep_ids=True))
    model = AutoModelForCausalLM.from_config(tiny_config(load_model_config(cfg.model), qwen3))
    trainer = make_trainer(cfg, data, model, qwen3, pick_precision("cpu"), tmp_path)
    batches = len(trainer.get_train_dataloader())
    planned = schedule(cfg, len(data.train), data.train.conversations, data.has_eval)
    assert math.ceil(batches / 5) == planned.steps_per_epoch
    assert planned.total_steps == math.ceil(3 * planned.steps_per_epoch)
    # and the Trainer is given the converted schedule
    args = trainer.args
    assert (args.warmup_steps, args.eval_steps, args.save_steps) == (
        planned.warmup_steps, planned.eval_steps, planned.save_steps
    )  # fmt: skip


def test_measuring_with_another_model_clears_the_old_tokenizer(tmp_path, llama, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("tokenizer: bundled:qwen3  # from an earlier try\n")
    assert lengthscan([str(SAMPLE), "--model", str(llama), "--write-config", str(config), "--json"]) == 0
    cfg = load_config(config)
    assert cfg.model == str(llama) and cfg.tokenizer is None  # train will use the model's own, as measured


def test_write_config_reads_the_file_it_edits(tmp_path, llama, capsys, monkeypatch):
    """`lengthscan DATA --write-config run.yaml` on an existing run.yaml measures under that file's settings and
    keeps its model: it is the run's config even without --config."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sub" / "run.yaml"
    config.parent.mkdir()
    config.write_text(
        f"model: {llama}\noverlong: drop\nsuggest:\n  policy: supervised\noptim:\n  micro_batch_size: 8\n"
    )
    report, _ = _json(capsys, lengthscan, [str(SAMPLE), "--json", "--write-config", str(config)])
    cfg = load_config(config)
    assert (cfg.model, cfg.overlong, cfg.suggest.policy) == (str(llama), "drop", "supervised")
    assert report["steps_per_epoch"]["micro_batch_size"] == 8 and report["overlong_policy"] == "drop"
    text = config.read_text()
    assert "&id" not in text and "*id" not in text  # no YAML aliases: each key stands on its own
    # a new config in a folder that does not exist yet
    new = tmp_path / "new" / "deeper" / "run.yaml"
    assert lengthscan([str(SAMPLE), "--write-config", str(new), "--json"]) == 0
    assert load_config(new).max_length_source["records"] == 2354


@pytest.mark.integration
def test_dry_run_plans_for_a_gpu_on_a_machine_without_one(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"data:\n  train: [{SAMPLE}]\nrun:\n  device: cuda\n  output_dir: out/x/\n")
    plan, _ = _json(capsys, train, ["--config", str(config), "--dry-run", "--json"])
    assert plan["output_dir"] == str(tmp_path / "out" / "x")
    smoke, _ = _json(capsys, train, ["--config", str(config), "--dry-run", "--json", "--smoke"])
    assert smoke["output_dir"] == str(tmp_path / "out" / "x-smoke")  # a trailing slash does not nest it


def test_a_bad_value_in_the_file_is_named_by_the_file(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("optim:\n  epochs: .inf\n")
    assert train(["--config", str(config), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"train: error: {config}: optim.epochs is inf") and len(err.strip().splitlines()) == 1


@pytest.mark.integration
def test_dry_run_of_the_default_config_on_the_sample_keeps_the_guides_schedule(capsys):
    plan, err = _json(capsys, train, ["--data.train", str(SAMPLE), "--dry-run", "--json"])
    assert plan["evals"] >= 9 and plan["checkpoints"] >= 8  # at step 0, and 8 or more after it
    assert plan["warmup_steps"] < 0.1 * plan["total_steps"]
    assert plan["plateau_steps"] <= plan["total_steps"]
    # each conversion printed with its source
    assert "warmup: 200 guide steps = 3,200 conversations = " in err and "(schedule.warmup_max)" in err
    assert "eval every: 200 guide steps" in err and "(schedule.min_evals)" in err
    assert "plateau window: 1000 guide steps = 16,000 conversations" in err
