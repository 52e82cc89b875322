"""The config: defaults are the guide's run, the shipped YAML loads, write-back keeps the user's file intact."""

import pytest

from analyze.config import default_yaml, from_dict, load_config, with_values
from analyze.config_write import update_config
from analyze.errors import UserError
from analyze.schema import Config
from analyze.yaml_text import read_yaml

USER_CONFIG = """\
# my run on the office T4
model: Qwen/Qwen3-1.7B   # the base
max_length: 512  # a guess from the guide
lora:
  r: 32     # tried the first lever
  alpha: 32
optim:
  learning_rate: 1e-4  # lower
"""


def test_defaults_are_the_tuning_guide():
    c = Config()
    assert (c.lora.r, c.lora.alpha, c.lora.dropout, c.lora.target_modules) == (16, 16, 0.05, "all-linear")
    o = c.optim
    assert (o.micro_batch_size, o.grad_accum_steps, o.learning_rate, o.lr_scheduler) == (4, 4, 2e-4, "cosine")
    assert (c.schedule.warmup, o.epochs, o.weight_decay, c.max_length, c.gpu) == (200, 3, 0.0, 512, "T4")
    assert (c.schedule.eval_every, c.schedule.save_every, c.schedule.plateau_window) == (200, 200, 1000)  # guide steps


def test_default_yaml_loads_to_the_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(default_yaml())
    # the default output folder is relative to the config file, like every path in it
    assert load_config(path) == with_values(Config(), {"run.output_dir": str(tmp_path / "runs" / "lengthscan")})
    assert "# LoRA rank" in default_yaml()  # help text becomes comments


def test_unknown_key_names_the_nearest():
    with pytest.raises(UserError, match=r"unknown key 'lora.rank'; did you mean 'lora.r'"):
        from_dict({"lora": {"rank": 8}})
    with pytest.raises(UserError, match="expected int"):
        from_dict({"max_length": "long"})


def test_write_back_keeps_comments_order_and_values(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(USER_CONFIG)
    created = update_config(
        path, {"max_length": 768, "max_length_source": {"set_by": "test", "data_fingerprint": "sha256:abc"}}
    )
    assert not created
    text = path.read_text()
    assert "# my run on the office T4" in text and "# tried the first lever" in text and "# lower" in text
    assert "learning_rate: 1e-4" in text  # the user's spelling is kept
    cfg = load_config(path)
    assert cfg.max_length == 768 and cfg.lora.r == 32 and cfg.optim.learning_rate == 1e-4
    assert cfg.max_length_source == {"set_by": "test", "data_fingerprint": "sha256:abc"}
    keys = [line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()]
    assert keys == ["model", "max_length", "max_length_source", "lora", "optim"]
    # a second write replaces the value and the record, nothing piles up
    update_config(path, {"max_length": 1024, "max_length_source": {"set_by": "again"}})
    assert load_config(path).max_length == 1024 and path.read_text().count("max_length_source") == 1


def test_write_back_creates_a_commented_default(tmp_path):
    path = tmp_path / "new.yaml"
    assert update_config(path, {"max_length": 640, "max_length_source": {"set_by": "test"}})
    cfg = load_config(path)
    assert cfg.max_length == 640 and cfg.lora == Config().lora
    assert "# LoRA rank" in path.read_text()


@pytest.mark.parametrize("bad", ["model: [unclosed\n", "lora:\n  rnak: 3\n"])
def test_bad_config_is_left_untouched(tmp_path, bad):
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(UserError):
        update_config(path, {"max_length": 768, "max_length_source": {}})
    assert path.read_text() == bad
    assert [p.name for p in tmp_path.iterdir()] == ["bad.yaml"]  # no temporary file left behind


def test_package_files_are_never_edited():
    from pathlib import Path

    import analyze

    inside = Path(analyze.__file__).parent / "lengthscan.yaml"
    with pytest.raises(UserError, match="inside the installed package"):
        update_config(inside, {"max_length": 768, "max_length_source": {}})
    assert not inside.exists()


def test_read_yaml_reports_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: a\nlora: [\n")
    with pytest.raises(UserError, match=r"c.yaml:\d+: not valid YAML"):
        read_yaml(path)


# (config text, the key, words of the allowed values or range, the nearest valid value)
BAD_VALUES = [
    ("data:\n  format: xml\n", "data.format", "choose one of auto, messages, sharegpt", None),
    ("optim:\n  lr_scheduler: cosin\n", "optim.lr_scheduler", "choose one of cosine,", "(nearest: 'cosine')"),
    ("lora:\n  r: 0\n", "lora.r", "must be ≥ 1", "nearest valid value: 1"),
    ("lora:\n  alpha: -16\n", "lora.alpha", "must be ≥ 1", "nearest valid value: 1"),
    ("lora:\n  dropout: 1.0\n", "lora.dropout", "must be ≥ 0 and < 1", "e.g. 0.05, the default"),
    ("optim:\n  learning_rate: -2e-4\n", "optim.learning_rate", "must be > 0 and ≤ 1", "e.g. 0.0002, the default"),
    ("optim:\n  micro_batch_size: 0\n", "optim.micro_batch_size", "must be ≥ 1", "nearest valid value: 1"),
    ("optim:\n  grad_accum_steps: -4\n", "optim.grad_accum_steps", "must be ≥ 1", "nearest valid value: 1"),
    ("optim:\n  epochs: 0\n", "optim.epochs", "must be > 0", "e.g. 3.0, the default"),
    ("schedule:\n  warmup: -1\n", "schedule.warmup", "must be ≥ 0", "nearest valid value: 0"),
    ("data:\n  eval_fraction: 0.7\n", "data.eval_fraction", "must be ≥ 0 and < 0.5", "e.g. 0.05, the default"),
    ("run:\n  device: gpu\n", "run.device", "choose one of auto, cuda, cpu", "(nearest: 'cpu')"),
    ("schedule:\n  eval_every: 0\n", "schedule.eval_every", "must be > 0", "e.g. 200, the default"),
    ("schedule:\n  warmup_max: 2\n", "schedule.warmup_max", "must be > 0 and ≤ 1", "nearest valid value: 1"),
    ("plateau:\n  action: halt\n", "plateau.action", "choose one of warn, stop", None),
    ("overlong: cut\n", "overlong", "choose one of cut_turns, truncate, drop", "(nearest: 'cut_turns')"),
    ("suggest:\n  target: 1.5\n", "suggest.target", "must be > 0 and ≤ 1", "nearest valid value: 1"),
    ("suggest:\n  policy: cover\n", "suggest.policy", "choose one of coverage, supervised", "(nearest: 'coverage')"),
    ("max_length: 0\n", "max_length", "must be ≥ 1", "nearest valid value: 1"),
]


@pytest.mark.parametrize(("text", "key", "allowed", "nearest"), BAD_VALUES, ids=[b[1] for b in BAD_VALUES])
def test_bad_values_name_the_key_the_allowed_values_and_the_nearest(tmp_path, text, key, allowed, nearest):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {key} is ") and allowed in msg and "\n" not in msg
    if nearest:
        assert nearest in msg


def test_bad_values_stop_both_commands_in_one_line(tmp_path, capsys):
    from analyze.cli import main as lengthscan
    from train.cli import main as train

    path = tmp_path / "run.yaml"
    path.write_text("optim:\n  lr_scheduler: cosin\n")
    for command, argv in ((lengthscan, ["--config", str(path)]), (train, ["--config", str(path), "--dry-run"])):
        assert command(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "optim.lr_scheduler is 'cosin'" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    # a command-line override is checked the same way
    assert train(["--lora.dropout", "1.5", "--dry-run"]) == 2
    assert "lora.dropout is 1.5" in capsys.readouterr().err


def test_the_schedules_offered_are_transformers_schedules():
    from transformers import SchedulerType

    from analyze.schema import LR_SCHEDULERS

    assert set(LR_SCHEDULERS) <= {s.value for s in SchedulerType}


def test_paths_in_a_config_file_are_relative_to_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "my-tokenizer").mkdir()
    path = folder / "run.yaml"
    path.write_text(
        "model: Qwen/Qwen3-1.7B\ntokenizer: my-tokenizer\nchat_template: t.jinja\n"
        "data:\n  train: [../data/a.jsonl, /abs/b.jsonl]\n  eval: [e.jsonl]\n"
    )
    monkeypatch.chdir(tmp_path / "configs" / "my-tokenizer")  # anywhere else
    cfg = load_config(path)
    assert cfg.data.train == [str(folder / "../data/a.jsonl"), "/abs/b.jsonl"]
    assert cfg.data.eval == [str(folder / "e.jsonl")] and cfg.chat_template == str(folder / "t.jinja")
    assert cfg.tokenizer == str(folder / "my-tokenizer")  # a folder beside the config
    assert cfg.model == "Qwen/Qwen3-1.7B"  # a hub id stays a hub id


# (a config with one typo, the line of the typo): the parser notices some typos only on the next line
YAML_TYPOS = [
    ("model: x\nmax_length 512\nlora:\n  r: 16\n", 2),  # a key without its colon
    ("data:\n  train: [a.jsonl\nmodel: x\n", 2),  # a bracket never closed
    ('model: "x\nmax_length: 512\n', 1),  # a quote never closed
    ("lora:\n    r: 16\n  alpha: 32\n", 3),  # a key dedented too little
    ("model: x\n\tmax_length: 512\n", 2),  # a tab
    ("model: a: b\n", 1),
]


@pytest.mark.parametrize(("text", "line"), YAML_TYPOS)
def test_read_yaml_names_the_line_of_the_typo(tmp_path, text, line):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=rf"c.yaml:{line}: not valid YAML \(") as e:
        read_yaml(path)
    assert "\n" not in str(e.value)
