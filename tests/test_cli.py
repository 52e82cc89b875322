"""The command line: the report, --json, --lengths-out, --write-config, as a user runs them."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analyze.cli import main
from tests.conftest import REPO, SAMPLE

JSON_KEYS = {
    "records", "skipped", "skipped_reasons", "tokenizer", "tokens", "lengths", "max_length", "truncation",
    "padding_waste", "packed_rows", "suggested_max_length", "suggestion_reason", "candidates",
}  # fmt: skip


def run_json(capsys, *args) -> dict:
    assert main([*map(str, args), "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # stdout is exactly one JSON document


@pytest.fixture(scope="module")
def sample_json():
    out = subprocess.run(
        [sys.executable, "-m", "analyze", str(SAMPLE), "--json"], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(out.stdout)


@pytest.mark.cli
def test_json_document_on_the_bundled_sample(sample_json):
    doc = sample_json
    assert doc.keys() >= JSON_KEYS
    assert doc["records"] == 2354 and doc["skipped"] == 0 and doc["tokenizer"] == "bundled:qwen3"
    assert set(doc["lengths"]) == {"min", "mean", "p50", "p90", "p95", "p99", "max"}
    assert doc["lengths"]["min"] <= doc["lengths"]["p50"] <= doc["lengths"]["p99"] <= doc["lengths"]["max"]
    assert doc["max_length"] == 512
    assert set(doc["truncation"]) >= {
        "records", "rate", "tokens_lost", "tokens_lost_rate", "supervised_tokens_lost", "records_without_supervised"
    }  # fmt: skip
    waste = doc["padding_waste"]
    assert 0 <= waste["packed"] < waste["dynamic"] < waste["pad_to_max"] < 1
    assert doc["tokens"]["supervised"] < doc["tokens"]["total"]
    # coverage policy: the suggestion is p99 rounded up to 64
    assert doc["suggested_max_length"] == -(-doc["lengths"]["p99"] // 64) * 64
    assert "p99" in doc["suggestion_reason"]
    for c in doc["candidates"]:
        assert {"max_length", "truncation_rate", "tokens_lost_rate", "padding_waste_packed", "packed_rows"} <= c.keys()
    lengths = [c["max_length"] for c in doc["candidates"]]
    assert lengths == sorted(lengths) and 512 in lengths and doc["suggested_max_length"] in lengths
    rates = [c["truncation_rate"] for c in doc["candidates"]]
    assert rates == sorted(rates, reverse=True)  # longer rows never cut more


def test_terminal_report_names_the_numbers(capsys):
    assert main([str(SAMPLE), "--max-length", "256"]) == 0
    out = capsys.readouterr().out
    for text in ("2,354 analysed", "p99", "at max_length 256", "padding waste", "packed", "suggested max_length",
                 "why:", "candidate max_lengths"):  # fmt: skip
        assert text in out


def test_formats_and_gzip_and_json_array(tmp_path, capsys):
    records = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
        {"instruction": "Hi", "input": "", "output": "Hello"},
        {"prompt": "Hi", "completion": "Hello"},
    ]
    gz = tmp_path / "a.jsonl.gz"
    with gzip.open(gz, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    arr = tmp_path / "b.json"
    arr.write_text(json.dumps(records))
    doc = run_json(capsys, gz, arr)
    assert doc["records"] == 8 and doc["skipped"] == 0
    assert doc["lengths"]["min"] == doc["lengths"]["max"]  # the four formats render to the same conversation


def test_lengths_out_csv_and_parquet(tmp_path, capsys, write_jsonl):
    path = write_jsonl([
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
        "not json",
        {"text": "plain"},
    ])  # fmt: skip
    csv, parquet = tmp_path / "l.csv", tmp_path / "l.parquet"
    run_json(capsys, path, "--lengths-out", csv, "--max-skip", "1")  # a third is skipped on purpose
    run_json(capsys, path, "--lengths-out", parquet, "--max-skip", "1")
    for frame in (pd.read_csv(csv), pd.read_parquet(parquet)):
        assert list(frame.columns) == ["file", "line", "tokens", "supervised_tokens"]
        assert frame["line"].tolist() == [1, 3]  # line 2 was skipped, the others keep their own line numbers
        assert (frame["supervised_tokens"] <= frame["tokens"]).all()
        assert frame["file"].astype(str).tolist() == [str(path)] * 2


def test_write_config_then_read_back(tmp_path, capsys):
    cfg = tmp_path / "lengthscan.yaml"
    cfg.write_text("# keep me\nmax_length: 512  # old\nlora:\n  r: 32\n")
    doc = run_json(capsys, SAMPLE, "--config", cfg, "--write-config")
    text = cfg.read_text()
    assert "# keep me" in text and "r: 32" in text
    from analyze.config import load_config

    loaded = load_config(cfg)
    assert loaded.max_length == doc["suggested_max_length"]
    src = loaded.max_length_source
    assert src["tokenizer"] == "bundled:qwen3" and src["data_fingerprint"].startswith("sha256:")
    assert len(src["tokenizer_fingerprint"]) == 16 and src["date"][:4].isdigit() and src["records"] == 2354
    # what train needs to measure the same way: format, overlong policy and the suggestion's settings
    assert (loaded.data.format, loaded.overlong, loaded.suggest.policy) == ("auto", "cut_turns", "coverage")
    # the written config is now the default max_length the next run evaluates
    assert run_json(capsys, SAMPLE, "--config", cfg)["max_length"] == doc["suggested_max_length"]


def test_write_config_default_path_is_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_json(capsys, SAMPLE, "--write-config", "--policy", "supervised", "--target", "0.999", "--round-to", "128")
    from analyze.config import load_config

    cfg = load_config(tmp_path / "lengthscan.yaml")
    assert cfg.max_length % 128 == 0
    assert (cfg.suggest.policy, cfg.suggest.target, cfg.suggest.round_to) == ("supervised", 0.999, 128)
    # a new config points at the data just analysed, for `train --config`
    assert [Path(p).resolve() for p in cfg.data.train] == [SAMPLE.resolve()]


def test_write_config_keeps_the_users_data_files(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("data:\n  train: [mine.jsonl]  # my data\n")
    run_json(capsys, SAMPLE, "--config", cfg, "--write-config")
    from analyze.config import load_config

    assert load_config(cfg).data.train == [str(tmp_path / "mine.jsonl")]  # read relative to the config file
    assert "# my data" in cfg.read_text()


def test_write_config_on_unparseable_file_exits_2_untouched(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lora: [\n")
    assert main([str(SAMPLE), "--config", str(cfg), "--write-config"]) == 2
    assert cfg.read_text() == "lora: [\n"
    err = capsys.readouterr().err
    assert err.startswith("lengthscan: error:") and "not valid YAML" in err and len(err.strip().splitlines()) == 1


def conversation(words: int) -> dict:
    return {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "word " * words}]}


@pytest.mark.parametrize("columns", [80, 120])
def test_candidate_table_is_readable_at_80_columns(write_jsonl, capsys, monkeypatch, columns):
    """No header of the report is cut with "…" on an 80-column terminal; at 120 the headers are the wide ones."""
    path = write_jsonl([conversation(n) for n in range(0, 600, 20)])
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "candidate max_lengths" in out and "peak" in out  # the widest table, with the memory column
    assert "…" not in out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= columns
    table = out.split("candidate max_lengths")[1].splitlines()[1:]
    header = " ".join(table[: next(i for i, line in enumerate(table) if line.split()[0][0].isdigit())]).split()
    wide = {"max_length", "assistant", "pad-to-max"}  # the headers the README's sample report shows, at 120
    assert wide <= set(header) if columns == 120 else not wide & set(header)
    assert {"cut", "lost", "packed", "rows", "epoch", "peak", "GiB", "(T4)"} <= set(header)


def test_the_report_ends_with_the_next_step(write_jsonl, tmp_path, monkeypatch, capsys):
    """On stderr, after the report (stdout stays the report the README shows): write the config, then check the run."""
    monkeypatch.chdir(tmp_path)
    path = write_jsonl([conversation(n) for n in range(0, 100, 20)])
    assert main([str(path)]) == 0
    out, err = capsys.readouterr()
    assert "next:" not in out
    assert err.splitlines()[-1] == (
        "next: the same lengthscan command with --write-config lengthscan.yaml; "
        "then train --config lengthscan.yaml --dry-run"
    )
    assert main([str(path), "--write-config", "run.yaml"]) == 0
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"lengthscan: created run.yaml: max_length = {load_config_max_length(tmp_path / 'run.yaml')}",
        "next: train --config run.yaml --dry-run (the run's plan, nothing trained), then without --dry-run to train",
    ]
    assert main([str(path), "--json"]) == 0
    assert "next:" not in capsys.readouterr().err  # --json is for scripts: stdout one document, no advice


def load_config_max_length(path: Path) -> int:
    from analyze.config import load_config

    return load_config(path).max_length


@pytest.mark.parametrize("name", ["data.json", "data.jsonl", "data.jsonl.gz"])
def test_write_config_given_the_data_file_says_so(tmp_path, monkeypatch, capsys, name):
    """`lengthscan --write-config data.json`: --write-config took the data for the config; one line with the fix,
    and the data file untouched."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / name
    body = json.dumps([conversation(3)]).encode()
    body = gzip.compress(body) if name.endswith(".gz") else body
    data.write_bytes(body)
    assert main(["--write-config", name]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"lengthscan: error: --write-config {name}: that is data, not a config (--write-config takes the YAML file to "
        f"write); did you mean `lengthscan {name} --write-config`?"
    )
    assert main([str(SAMPLE), "--write-config", name]) == 2
    assert "did you mean `--write-config lengthscan.yaml`?" in capsys.readouterr().err
    assert data.read_bytes() == body
    assert not (tmp_path / "lengthscan.yaml").exists()
