"""Data from where people keep it: parquet, arrow, save_to_disk folders, .ndjson, zstd, folders, globs and
Hugging Face datasets (a folder laid out like a hub dataset repository, read through `datasets` exactly as a hub
id is) — every record analysed or counted with its file:row, the same numbers as the JSONL file."""

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from analyze.cli import main
from tests.conftest import SAMPLE

pytestmark = pytest.mark.integration

RECORDS = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:60]]


def _doc(capsys, *args) -> dict:
    assert main([*map(str, args), "--json", "--no-cache"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def reference(tmp_path, capsys):
    path = tmp_path / "ref.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return _doc(capsys, path)


def _same_numbers(doc, ref):
    assert doc["records"] == ref["records"] == len(RECORDS) and doc["skipped"] == 0
    assert doc["lengths"] == ref["lengths"] and doc["suggested_max_length"] == ref["suggested_max_length"]


def _write(kind, folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r) + "\n" for r in records).encode()
    table = pa.Table.from_pylist(records)
    if kind == "parquet":
        pq.write_table(table, folder / "d.parquet")
    elif kind == "arrow-stream":  # what datasets writes
        with pa.ipc.new_stream(str(folder / "d.arrow"), table.schema) as w:
            w.write_table(table)
    elif kind == "arrow-file":
        with pa.ipc.new_file(str(folder / "d.arrow"), table.schema) as w:
            w.write_table(table)
    elif kind == "ndjson":
        (folder / "d.ndjson").write_bytes(lines)
    elif kind == "jsonl.zst":
        (folder / "d.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines))
    elif kind == "json.zst":
        (folder / "d.json.zst").write_bytes(zstandard.ZstdCompressor().compress(json.dumps(records).encode()))
    elif kind == "save_to_disk":
        import datasets

        datasets.Dataset.from_list(records).save_to_disk(str(folder / "saved"))
        return folder / "saved"
    return next(p for p in folder.iterdir())


@pytest.mark.parametrize("kind", ["parquet", "arrow-stream", "arrow-file", "ndjson", "jsonl.zst", "json.zst",
                                  "save_to_disk"])  # fmt: skip
def test_every_kind_gives_the_numbers_of_the_jsonl_file(kind, tmp_path, capsys, reference):
    path = _write(kind, tmp_path / kind, RECORDS)
    _same_numbers(_doc(capsys, path), reference)


def test_a_folder_and_a_glob_read_their_files_in_sorted_order(tmp_path, capsys, reference):
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS[30:]))
    (folder / "a.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in RECORDS[:30]).encode()))
    (folder / "notes.txt").write_text("ignored")
    for source in (folder, f"{folder}/*.jsonl*"):
        doc = _doc(capsys, source)
        _same_numbers(doc, reference)
        assert [p.rsplit("/", 1)[-1] for p in doc["files"]] == ["a.jsonl.gz", "b.jsonl"]


def _repo(tmp_path):
    """A folder laid out like a hub dataset repository: data files per split and a README card."""
    repo = tmp_path / "my-dataset"
    (repo / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(RECORDS[:40]), repo / "data" / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(RECORDS[40:]), repo / "data" / "test-00000-of-00001.parquet")
    (repo / "README.md").write_text("---\nlicense: mit\n---\n# A chat dataset\n")
    return repo


def test_a_dataset_repository_is_read_through_datasets_by_split(tmp_path, capsys):
    repo = _repo(tmp_path)
    train = _doc(capsys, repo)
    test = _doc(capsys, repo, "--split", "test")
    assert (train["records"], test["records"]) == (40, 20)
    assert train["files"] == [f"{repo}[train]"]
    assert main([str(repo), "--split", "validation"]) == 2
    assert "cannot read the dataset" in capsys.readouterr().err


def test_a_hub_id_that_is_not_cached_offline_is_one_line_with_the_fix(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert main(["someone/not-a-cached-dataset"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lengthscan: error: someone/not-a-cached-dataset[train]: cannot read the dataset")
    assert "offline: download it first and pass its folder" in err and len(err.strip().splitlines()) == 1


def test_rows_of_the_wrong_shape_are_skips_with_their_row(tmp_path, capsys):
    rows = [*RECORDS[:38], {"messages": None}, {"messages": [{"role": "user", "content": None}]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    doc = _doc(capsys, tmp_path / "d.parquet", "--max-skip", "1")
    assert doc["records"] + doc["skipped"] == len(rows) and doc["skipped"] == 2
    assert [e.split(": ")[0].rsplit(":", 1)[-1] for e in doc["skipped_examples"]] == ["39", "40"]


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_a_corrupt_table_file_is_one_line_naming_it(suffix, tmp_path, capsys):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"PAR1 this is not a table" * 10)
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: cannot read this {suffix[1:]} file" in err and len(err.strip().splitlines()) == 1


def test_train_reads_a_parquet_file_like_lengthscan(tmp_path, capsys):
    from train.cli import main as train_main

    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), path)
    doc = _doc(capsys, path)
    assert train_main(["--data.train", str(path), "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["train_rows"] == doc["packed_rows"] and dry["train_conversations"] == doc["split"]["train_records"]


def test_subsets_and_the_written_config_keep_the_dataset_id(tmp_path, capsys):
    """A repository with two subsets (configs in its card); --write-config writes the id, split and subset so
    `train --config` reads the same records."""
    from analyze.config import load_config

    repo = tmp_path / "chats"
    for name, part in (("short", RECORDS[:10]), ("long", RECORDS[10:35])):
        (repo / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(part), repo / name / "train.parquet")
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: short\n  data_files: short/*.parquet\n"
        "- config_name: long\n  data_files: long/*.parquet\n---\n"
    )
    assert _doc(capsys, repo, "--subset", "long")["records"] == 25
    config = tmp_path / "cfg" / "run.yaml"
    config.parent.mkdir()
    assert main([str(repo), "--subset", "short", "--write-config", str(config)]) == 0
    capsys.readouterr()
    cfg = load_config(config)
    assert (cfg.data.split, cfg.data.subset) == ("train", "short")
    assert [Path(p).resolve() for p in cfg.data.train] == [repo.resolve()]  # relative to the file, read back
    from analyze.config import rebase_paths, relative_paths

    hub = {"data": {"train": ["HuggingFaceH4/no_robots"]}}
    assert relative_paths(hub, tmp_path / "cfg") == hub == rebase_paths(hub, tmp_path / "cfg")


def test_review_findings_empty_inputs_dataset_dicts_splits_and_plain_readmes(tmp_path, capsys):
    import datasets

    from analyze.sources import DatasetSource, resolve

    empty = tmp_path / "empty.parquet"  # no rows and no skips: a one-line error, not a traceback
    pq.write_table(pa.table({"messages": pa.array([], pa.list_(pa.struct([("role", pa.string())])))}), empty)
    assert main([str(empty)]) == 2
    assert "no records to analyse" in capsys.readouterr().err
    saved = tmp_path / "dd"  # DatasetDict.save_to_disk: one folder per split, chosen by --split
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(RECORDS[:30]), "test": datasets.Dataset.from_list(RECORDS[30:])}
    ).save_to_disk(str(saved))
    assert _doc(capsys, saved)["records"] == 30 and _doc(capsys, saved, "--split", "test")["records"] == 30
    plain = tmp_path / "plain"  # a README without a dataset card's front matter: just a folder of files
    plain.mkdir()
    (plain / "README.md").write_text("# my files\n")
    (plain / "a.jsonl").write_text(json.dumps(RECORDS[0]) + "\n")
    assert resolve([plain]) == [plain / "a.jsonl"]
    assert resolve(["org/data[test]"]) == [DatasetSource("org/data", "test")]  # a split named in the entry
    upper = tmp_path / "X.PARQUET"
    pq.write_table(pa.Table.from_pylist(RECORDS[:5]), upper)
    assert _doc(capsys, upper)["records"] == 5


def test_train_refuses_eval_data_that_is_the_training_data(tmp_path, capsys):
    from train.cli import main as train_main

    repo = _repo(tmp_path)
    assert train_main(["--data.train", str(repo), "--data.eval", str(repo), "--dry-run"]) == 2
    assert "data.eval reads the same data as data.train" in capsys.readouterr().err
    assert train_main(["--data.train", str(repo), "--data.eval", f"{repo}[test]", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["eval_conversations"] == 20
