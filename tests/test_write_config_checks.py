"""`lengthscan --write-config` checks the config it writes as `train` will: a tokenizer that is not the model's is
refused in train's own words (compared with what `train --dry-run` says, so the two cannot drift) and nothing is
written; the report says it when nothing is written; the memory plan names the model it was planned for and why.
"""

import json
import shutil

import pytest

from analyze.cli import main as lengthscan
from analyze.config import load_config
from tests.conftest import SAMPLE
from tests.families import make_family
from train.cli import main as train


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return make_family("llama", tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "data.jsonl"
    path.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:40]))
    return path


def _error(capsys, command, argv, prog) -> str:
    """The one line a command stops with (exit 2), without its `prog: error: ` prefix."""
    assert command(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error: ") and "\n" not in err and "Traceback" not in err
    return err.removeprefix(f"{prog}: error: ")


def _trains_words(capsys, argv) -> str:
    """What `train --dry-run` says of the same settings: its refusal."""
    return _error(capsys, train, ["--dry-run", *argv], "train")


def test_another_vocabulary_is_refused_when_written_in_trains_words(llama, data, tmp_path, capsys):
    """The issue's case: a Llama 3 tokenizer folder, the default model (Qwen3-1.7B)."""
    said = _trains_words(capsys, ["--tokenizer", str(llama), "--data.train", str(data)])
    assert "another vocabulary" in said

    target = tmp_path / "l.yaml"
    err = _error(capsys, lengthscan, [str(data), "--tokenizer", str(llama), "--write-config", str(target)],
                 "lengthscan")  # fmt: skip
    assert err.startswith(f"{target} not written: train would refuse this config: {said}; ")
    assert f"pass --model {llama} so the model and the tokenizer agree" in err  # its folder has a config.json
    assert not target.exists()

    # an existing config is left as it was, byte for byte
    target.write_text("# mine\nmax_length: 300\n")
    before = (target.read_bytes(), target.stat().st_mtime_ns)
    assert lengthscan([str(data), "--tokenizer", str(llama), "--write-config", str(target)]) == 2
    assert (target.read_bytes(), target.stat().st_mtime_ns) == before
    capsys.readouterr()


def test_the_report_warns_when_nothing_is_written(llama, data, capsys):
    said = _trains_words(capsys, ["--tokenizer", str(llama), "--data.train", str(data)])
    assert lengthscan([str(data), "--tokenizer", str(llama), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["train_check"] == {"refusal": said, "unchecked": None}
    # the plan is the config's model's, and says so: train trains it, not the tokenizer's
    memory = doc["memory"]
    assert memory["model"] == "Qwen/Qwen3-1.7B" and "bundled" in memory["model_config"]
    assert memory["model_reason"] == f"the default model, which train trains, not tokenizer {str(llama)!r}'s"

    assert lengthscan([str(data), "--tokenizer", str(llama)]) == 0
    report = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert f"warning: train would refuse this config: {said}" in report
    assert "planned for Qwen/Qwen3-1.7B (the default model, which train trains, not tokenizer" in report


def test_with_the_tokenizers_model_it_writes_and_the_plan_names_that_model(llama, data, tmp_path, capsys):
    target = tmp_path / "l.yaml"
    argv = [str(data), "--model", str(llama), "--tokenizer", str(llama), "--write-config", str(target)]
    assert lengthscan([*argv, "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["train_check"] is None  # the model's own tokenizer: nothing to check
    assert doc["memory"]["model"] == str(llama) and doc["memory"]["model_reason"] == "the config's model"
    assert doc["memory"]["model_config"] == str(llama / "config.json")
    assert f"created {target}" in out.err
    cfg = load_config(target)
    assert cfg.model == str(llama) and cfg.max_length == doc["suggested_max_length"]
    assert train(["--config", str(target), "--dry-run"]) == 0  # and train takes it

    assert lengthscan(argv) == 0
    report = " ".join(capsys.readouterr().out.split())
    assert f"planned for {llama} (the config's model; {llama}/config.json)" in report
    assert "train would refuse" not in report


def test_a_max_length_past_the_models_positions_is_refused_in_trains_words(llama, data, tmp_path, capsys):
    """Same vocabulary, but the model has fewer positions than the tokenizer's model that capped the suggestion."""
    short = tmp_path / "short"
    shutil.copytree(llama, short)
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps(config | {"max_position_embeddings": 256}))
    assert lengthscan([str(data), "--model", str(short), "--tokenizer", str(llama), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["train_check"] == {"refusal": None, "unchecked": None}  # same tokens, same ids
    wanted = doc["suggested_max_length"]
    assert wanted > 256

    said = _trains_words(capsys, ["--model", str(short), "--tokenizer", str(llama), "--max-length", str(wanted),
                                  "--data.train", str(data)])  # fmt: skip
    target = tmp_path / "l.yaml"
    err = _error(capsys, lengthscan, [str(data), "--model", str(short), "--tokenizer", str(llama), "--write-config",
                                      str(target)], "lengthscan")  # fmt: skip
    assert err == f"{target} not written: train would refuse this config: {said}"
    assert not target.exists()


def test_a_model_whose_config_cannot_be_read_is_said_unchecked_and_written(llama, data, tmp_path, capsys):
    target = tmp_path / "l.yaml"
    model = "nobody-xyz/no-such-model"  # offline in tests: its config.json cannot be read
    argv = [str(data), "--model", model, "--tokenizer", str(llama), "--write-config", str(target)]
    assert lengthscan(argv) == 0
    out = capsys.readouterr()
    notes = [line for line in out.out.splitlines() if "not checked" in line]
    assert len(notes) == 1 and notes[0].strip().startswith(f"note: not checked that tokenizer {str(llama)!r}")
    assert target.exists() and load_config(target).model == model
    assert lengthscan([*argv, "--json"]) == 0
    unchecked = json.loads(capsys.readouterr().out)["train_check"]["unchecked"]
    assert "(train checks it)" in unchecked and "hf download nobody-xyz/no-such-model" in unchecked


def test_the_verdict_is_kept_so_a_cached_rerun_loads_no_tokenizer(llama, tmp_path, monkeypatch):
    import analyze.train_check as tc
    from analyze.schema import Config

    monkeypatch.setenv("LENGTHSCAN_CACHE", str(tmp_path / "cache"))
    cfg = Config(tokenizer=str(llama))
    first = tc.train_check(cfg)
    assert "another vocabulary" in first.refusal

    def no_loading(*a, **k):
        raise AssertionError("the tokenizer was loaded again")

    monkeypatch.setattr(tc, "load_tokenizer", no_loading)
    assert tc.train_check(cfg) == first
    with pytest.raises(AssertionError, match="loaded again"):
        tc.train_check(cfg, cache=False)
    # another tokenizer file: another verdict, checked afresh
    other = tmp_path / "llama"
    shutil.copytree(llama, other)
    with pytest.raises(AssertionError, match="loaded again"):
        tc.train_check(Config(tokenizer=str(other)))
