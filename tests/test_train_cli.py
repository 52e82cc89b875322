"""`train` command line: overrides with provenance, one-line errors with the fix, --auto-maxlen write-back."""

import pytest

from analyze.config import load_config
from tests.conftest import SAMPLE
from train.cli import main, run_from_args
from train.memory_check import oom_message


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_unknown_option_names_the_nearest_key(capsys):
    err = _error(capsys, ["--lora.rank", "32", "--data.train", str(SAMPLE)])
    assert "--lora.rank" in err and "did you mean --lora.r?" in err
    err = _error(capsys, ["--optim.learnig-rate=1e-4"])
    assert "did you mean --optim.learning_rate?" in err


def test_unknown_key_in_the_config_file(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("max_lenght: 1024\n")
    assert "did you mean 'max_length'?" in _error(capsys, ["--config", str(path)])


def test_missing_data(tmp_path, capsys):
    assert "no training data" in _error(capsys, ["--smoke"])
    err = _error(capsys, ["--smoke", "--data.train", str(tmp_path / "nope.jsonl")])
    assert "nope.jsonl" in err


def test_no_cuda_says_how_to_run_on_cpu(capsys):
    err = _error(capsys, ["--data.train", str(SAMPLE)])
    assert "no CUDA device" in err and "--smoke" in err and "--device cpu" in err


def test_model_that_cannot_be_loaded(tmp_path, capsys):
    err = _error(capsys, ["--data.train", str(SAMPLE), "--device", "cpu", "--tokenizer", "bundled:qwen3",
                          "--model", str(tmp_path / "no-model")])  # fmt: skip
    assert "model folder" in err and "no-model' does not exist" in err and "set `model`" in err
    err = _error(capsys, ["--data.train", str(SAMPLE), "--device", "cpu", "--model", str(tmp_path / "no-model")])
    assert "no-model' does not exist" in err  # its config is read first: it is small, and says what the model is


def test_max_length_above_the_model_limit(write_jsonl, capsys, tmp_path):
    data = write_jsonl([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}])
    err = _error(
        capsys, ["--smoke", "--data.train", str(data), "--max_length", "50000", "--output-dir", str(tmp_path / "o")]
    )
    assert "max_length 50000 is above" in err and "40960" in err


def test_output_dir_with_checkpoints_needs_resume(tmp_path, capsys):
    (tmp_path / "checkpoint-3").mkdir()
    err = _error(capsys, ["--device", "cpu", "--data.train", str(SAMPLE), "--output-dir", str(tmp_path)])
    assert "--resume" in err
    # a smoke run never writes into a folder that is not empty and not an earlier smoke run's
    err = _error(capsys, ["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(tmp_path)])
    assert "not empty and holds no --smoke run" in err
    err = _error(capsys, ["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(tmp_path.parent)])
    assert "not empty" in err and tmp_path.is_dir()
    err = _error(capsys, ["--smoke", "--resume", "--data.train", str(SAMPLE), "--output-dir", str(tmp_path / "new")])
    assert "no complete checkpoint" in err
    err = _error(capsys, ["--smoke", "--resume", "--data.train", str(SAMPLE), "--output-dir", str(tmp_path)])
    assert "no complete checkpoint" in err  # checkpoint-3 was never finished (no trainer_state.json)


def test_oom_message_names_the_levers():
    from analyze.schema import Config

    msg = oom_message(Config())
    for lever in ("--optim.micro_batch_size", "--optim.grad_accum_steps", "--max_length", "gradient_checkpointing"):
        assert lever in msg


@pytest.mark.training
def test_auto_maxlen_sets_writes_and_tokenizes_once(tmp_path, write_jsonl, capsys, monkeypatch):
    import analyze.pipeline
    import train.data

    chats = [
        {"messages": [{"role": "user", "content": "Question " * k}, {"role": "assistant", "content": "Answer " * k}]}
        for k in range(1, 40)
    ]
    data = write_jsonl(chats)
    config = tmp_path / "run.yaml"
    config.write_text(f"# my run\nmax_length: 2048  # keep this comment\nlora:\n  r: 8\ndata:\n  train: [{data}]\n")
    calls = []
    real = analyze.pipeline.tokenize_files
    monkeypatch.setattr(train.data, "tokenize_files", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = run_from_args(["--config", str(config), "--smoke", "--auto-maxlen", "--max-steps", "1",
                            "--output-dir", str(tmp_path / "out"), "--lora.r", "4"])  # fmt: skip
    out = capsys.readouterr().out
    assert calls == [1]  # analysis and packing share one tokenization
    cfg = load_config(config)
    assert cfg.max_length < 2048 and cfg.max_length % 64 == 0
    assert cfg.max_length_source["set_by"].startswith("train --auto-maxlen")
    assert cfg.lora.r == 8  # the command-line override is not written back
    text = config.read_text()
    assert "# my run" in text and "# keep this comment" in text
    assert f"auto-maxlen: max_length 256 -> {cfg.max_length} (p99 of record lengths" in out  # 256: --smoke cap
    assert result.data.plan.max_length == cfg.max_length
    # the resolved config printed at start says where values came from
    assert "lora.r                     = 4  (--lora.r)" in out
    assert "lora.alpha                 = 16  (default)" in out
    saved = (tmp_path / "out" / "config.yaml").read_text()
    assert "max_length: " + str(cfg.max_length) in saved and "# auto: p99" in saved


def test_a_fresh_run_starts_its_logs_anew(tmp_path):
    from train.checkpoints import check_output_dir

    (tmp_path / "log.csv").write_text("step,train_loss\n1,3.0\n")  # a run stopped before its first checkpoint
    (tmp_path / "plateau.json").write_text("{}")
    (tmp_path / "watch.jsonl").write_text('{"step": 0, "verdict": "too_early"}\n')
    (tmp_path / "notes.txt").write_text("mine")
    assert check_output_dir(tmp_path, resume=False, smoke=False) is None
    assert not (tmp_path / "log.csv").exists() and not (tmp_path / "plateau.json").exists()
    assert not (tmp_path / "watch.jsonl").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_several_gpus_in_a_notebook_say_how_instead_of_restarting(monkeypatch):
    import pytest
    import torch

    from analyze.errors import UserError
    from train.launch import restart_on_one_gpu_if_needed

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(UserError, match=r"CUDA_VISIBLE_DEVICES=0 .* accelerate launch --multi_gpu --num_processes 2"):
        restart_on_one_gpu_if_needed(["--config", "not-the-command-line.yaml"])
