"""Where records come from: files (JSON lines, JSON arrays, parquet, arrow; gzip or zstd), folders, globs, a
`datasets.save_to_disk` folder, and Hugging Face datasets — a hub id or a folder laid out like a hub dataset
repository (data files and a README card), read through `datasets`, streamed.

`resolve` turns what the user typed into a list of inputs: `Path`s of files, each read by its suffix, and
`DatasetSource`s. Every record keeps its place: `file:line` for JSON lines, the record's number for JSON arrays,
`file:row` for parquet and arrow, `dataset[split]:row` for a dataset.

>>> DatasetSource("HuggingFaceH4/no_robots", "train").name
'HuggingFaceH4/no_robots[train]'
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyze.errors import UserError
from analyze.schema import DEFAULT_SPLIT

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
COMPRESSIONS = ("", ".gz", ".zst")
TABLE_SUFFIXES = (".parquet", ".arrow")
SUFFIXES = tuple(s + c for s in JSON_SUFFIXES for c in COMPRESSIONS) + TABLE_SUFFIXES
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # owner/name, or a canonical name
ROWS_PER_BATCH = 1024
DATASETS_METADATA = ("state.json", "dataset_info.json", "dataset_dict.json")  # save_to_disk's files, not data
SPLIT_SUFFIX = re.compile(r"^(?P<name>.+)\[(?P<split>[\w.-]+)\]$")  # "org/data[test]": a dataset's split


@dataclass(frozen=True)
class DatasetSource:
    """A Hugging Face dataset: a hub id, or a local folder laid out like a hub dataset repository."""

    id: str
    split: str = DEFAULT_SPLIT
    subset: str | None = None

    @property
    def name(self) -> str:
        subset = f"/{self.subset}" if self.subset else ""
        return f"{self.id}{subset}[{self.split}]"

    @property
    def local(self) -> bool:
        return Path(self.id).is_dir()

    def __str__(self) -> str:
        return self.name

    def rows(self) -> Iterator[tuple[int, Any]]:
        """(row, record) over the split, streamed (nothing is converted or cached on disk)."""
        import datasets

        datasets.logging.set_verbosity_error()
        datasets.disable_progress_bars()
        try:
            stream = datasets.load_dataset(self.id, self.subset, split=self.split, streaming=True)
            yield from enumerate(stream, 1)
        except Exception as e:  # hub, network, card and split errors all mean "cannot read this dataset"
            from analyze.load_errors import first_line, load_error

            known = load_error(e, "dataset", self.id)
            if known.cause in ("gated", "offline", "missing", "no_folder"):
                raise known from None
            text = first_line(e)
            where = "folder" if self.local else "hub id"
            raise UserError(
                f"{self.name}: cannot read the dataset ({text}); check the {where}, --split and --subset"
                + ("" if self.local else ", the network (offline: download it first and pass its folder)")
            ) from None


def is_hub_id(text: str, base: Path = Path(".")) -> bool:
    """Whether a data entry names a Hugging Face dataset rather than a path (relative to `base`): no such file or
    folder there, no glob, and the shape of a hub id.

    >>> is_hub_id("HuggingFaceH4/no_robots"), is_hub_id("data/*.jsonl"), is_hub_id("data/train.jsonl")
    (True, False, False)
    """
    return (
        not (base / text).exists()
        and not glob.has_magic(text)
        and bool(HUB_ID.match(text))
        and not text.lower().endswith(SUFFIXES)
    )


def is_dataset_repo(folder: Path) -> bool:
    """A folder laid out like a hub dataset repository: a dataset card (README.md with YAML front matter) beside data
    files."""
    card = folder / "README.md"
    if not card.is_file() or not card.read_text(encoding="utf-8", errors="replace").startswith("---"):
        return False
    return any(_supported(p) for p in folder.rglob("*") if p.is_file())


def resolve(inputs: list, split: str = DEFAULT_SPLIT, subset: str | None = None) -> list[Path | DatasetSource]:
    """What the user named → files and datasets, in order; a one-line error for anything that is not there."""
    out: list[Path | DatasetSource] = []
    for item in inputs:
        if isinstance(item, DatasetSource):
            out.append(item)
            continue
        text = str(item)
        if (m := SPLIT_SUFFIX.match(text)) and not Path(text).exists():  # "org/data[test]": that split
            text, item_split = m["name"], m["split"]
        else:
            item_split = split
        path = Path(text).expanduser()
        if path.is_dir():
            out += _folder(path, item_split, subset)
        elif path.is_file():
            out.append(_file(path))
        elif glob.has_magic(text):
            matches = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
            files = [p for p in matches if _supported(p)]
            if not files:
                raise UserError(f"{text}: no .jsonl, .json, .parquet or .arrow file matches; check the pattern")
            out += [_file(p) for p in files]
        elif is_hub_id(text):
            out.append(DatasetSource(text, item_split, subset))
        else:
            raise UserError(f"{path}: no such file; check the path")
    if not out:
        raise UserError("no data files given: pass one or more files, a folder or a dataset (or set data.train)")
    return out


def _supported(path: Path) -> bool:
    return path.name.lower().endswith(SUFFIXES)


def _file(path: Path) -> Path:
    if not _supported(path):
        raise UserError(
            f"{path}: unknown file type; use .jsonl/.ndjson/.json (optionally .gz or .zst), .parquet or .arrow"
        )
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty; point at a file with records")
    return path


def _folder(folder: Path, split: str, subset: str | None) -> list[Path | DatasetSource]:
    """A `save_to_disk` folder's arrow files; a dataset repository as a `DatasetSource`; else the supported files
    under it, in sorted order."""
    if (folder / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk: one folder per split
        if not (folder / split).is_dir():
            raise UserError(f"{folder}: no split {split!r} in this saved dataset; pick one with --split")
        return _folder(folder / split, split, subset)
    state = folder / "state.json"
    if state.is_file() and (folder / "dataset_info.json").is_file():
        try:
            names = [f["filename"] for f in json.loads(state.read_text())["_data_files"]]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{state}: not a datasets save_to_disk state file; re-save the dataset") from None
        return [_file(folder / n) for n in names]
    if is_dataset_repo(folder):
        return [DatasetSource(str(folder), split, subset)]
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and _supported(p) and p.name not in DATASETS_METADATA
        and not p.name.startswith("cache-")
    )  # fmt: skip
    if not files:
        raise UserError(f"{folder}: no .jsonl, .json, .parquet or .arrow files in this folder")
    return [_file(p) for p in files]


def table_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(row, record) of a parquet or arrow file, a batch at a time; a corrupt file is a one-line error."""
    import pyarrow as pa

    try:
        yield from enumerate(_batches_to_rows(_batches(path)), 1)
    except (pa.ArrowException, OSError) as e:
        text = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: cannot read this {path.suffix[1:]} file ({text}); re-export it") from None


def _batches(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix.lower() == ".parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=ROWS_PER_BATCH)
        return
    with pa.memory_map(str(path)) as source:  # datasets writes the IPC stream format; others the file format
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
            return
        yield from reader


def _batches_to_rows(batches) -> Iterator[dict]:
    for batch in batches:
        yield from batch.to_pylist()


def compressed(path: Path) -> str:
    """'' , 'gz' or 'zst', from the suffix."""
    name = path.name.lower()
    return "gz" if name.endswith(".gz") else "zst" if name.endswith(".zst") else ""
