"""The config: defaults are the guide's run, the shipped YAML loads, write-back keeps the user's file intact."""

import pytest

from analyze.config import Config, default_yaml, from_dict, load_config, read_yaml
from analyze.config_write import write_max_length
from analyze.errors import UserError

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
    assert (o.warmup_steps, o.epochs, o.weight_decay, c.max_length, c.gpu) == (200, 3, 0.0, 512, "T4")


def test_default_yaml_loads_to_the_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(default_yaml())
    assert load_config(path) == Config()
    assert "# LoRA rank" in default_yaml()  # help text becomes comments


def test_unknown_key_names_the_nearest():
    with pytest.raises(UserError, match=r"unknown key 'lora.rank'; did you mean 'lora.r'"):
        from_dict({"lora": {"rank": 8}})
    with pytest.raises(UserError, match="expected int"):
        from_dict({"max_length": "long"})


def test_write_back_keeps_comments_order_and_values(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(USER_CONFIG)
    created = write_max_length(path, 768, {"set_by": "test", "data_fingerprint": "sha256:abc"})
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
    write_max_length(path, 1024, {"set_by": "again"})
    assert load_config(path).max_length == 1024 and path.read_text().count("max_length_source") == 1


def test_write_back_creates_a_commented_default(tmp_path):
    path = tmp_path / "new.yaml"
    assert write_max_length(path, 640, {"set_by": "test"})
    cfg = load_config(path)
    assert cfg.max_length == 640 and cfg.lora == Config().lora
    assert "# LoRA rank" in path.read_text()


@pytest.mark.parametrize("bad", ["model: [unclosed\n", "lora:\n  rnak: 3\n"])
def test_bad_config_is_left_untouched(tmp_path, bad):
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(UserError):
        write_max_length(path, 768, {})
    assert path.read_text() == bad
    assert [p.name for p in tmp_path.iterdir()] == ["bad.yaml"]  # no temporary file left behind


def test_package_files_are_never_edited():
    from pathlib import Path

    import analyze

    inside = Path(analyze.__file__).parent / "lengthscan.yaml"
    with pytest.raises(UserError, match="inside the installed package"):
        write_max_length(inside, 768, {})
    assert not inside.exists()


def test_read_yaml_reports_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: a\nlora: [\n")
    with pytest.raises(UserError, match=r"c.yaml:\d+: not valid YAML"):
        read_yaml(path)
