"""Read records from the inputs `analyze.sources` resolves — JSON lines and arrays (plain, gzip or zstd), parquet,
arrow, Hugging Face datasets — counting every bad one.

Every record in the input is either yielded or counted in the `SkipLog` under a reason, with its place
(`file:line`, `file:row`; a JSON array's element shown as `file record N`) — so records read + skipped always equals
the records in the input. Blank lines are not records.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from analyze.errors import SkipRecord, UserError
from analyze.formats import PREFERENCE_SKIP
from analyze.schema import DEFAULT_SPLIT
from analyze.sources import DatasetSource, compressed, resolve, table_rows

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
STRICT_HINT = " (--strict stops at the first bad record; drop it to skip)"
# skips --strict decides after the whole pass: preference pairs, which make a file of pairs (`analyze.preference`)
STRICT_DEFERRED = (PREFERENCE_SKIP,)


@dataclass
class SkipLog:
    """Counts skipped records by reason, keeps the first few `file:line: detail [reason]` lines to show, and every
    skipped record's (place, reason, detail) for `--skipped-out`."""

    strict: bool = False
    keep: int = 5
    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    records: list[tuple[str, str, str]] = field(default_factory=list)  # (file:line, reason, detail), input order

    def add(self, where: str, reason: str, detail: str) -> None:
        line = f"{shown_place(where)}: {detail} [{reason}]"
        if self.strict and reason not in STRICT_DEFERRED:
            raise UserError(f"{line}{STRICT_HINT}")
        self.counts[reason] += 1
        self.records.append((where, reason, detail))
        if len(self.examples) < self.keep:
            self.examples.append(line)

    def summary(self, analysed: int) -> str:
        """'153 of 300 records skipped (51.0%): non_string_content 153, …'.

        >>> log = SkipLog()
        >>> log.add("a.jsonl:3", "malformed_json", "not valid JSON")
        >>> log.summary(3)
        '1 of 4 records skipped (25.0%): malformed_json 1'
        """
        n = analysed + self.total
        reasons = ", ".join(f"{k} {v:,}" for k, v in self.counts.most_common())
        return f"{self.total:,} of {n:,} records skipped ({self.total / max(n, 1):.1%}): {reasons}"

    def replay_strict(self, deferred: bool = False) -> None:
        """Under --strict, fail on the first skip recorded earlier (a cached result keeps them); with `deferred`,
        also on a `STRICT_DEFERRED` one (once the data is known to be conversations, a pair among them is bad)."""
        if not self.strict:
            return
        for where, reason, detail in self.records:
            if deferred or reason not in STRICT_DEFERRED:
                raise UserError(f"{shown_place(where)}: {detail} [{reason}]{STRICT_HINT}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def shown_place(where: str) -> str:
    """How a record's place (`file:N`) reads in a message: `file:line` for JSON lines, but a JSON array's N is the
    element's number, not a line (the array is parsed whole, so its line is not known), and says so.

    >>> shown_place("data.jsonl:7"), shown_place("data.json:7"), shown_place("in/data.json.gz:7")
    ('data.jsonl:7', 'data.json record 7', 'in/data.json.gz record 7')
    """
    file, _, n = where.rpartition(":")
    return f"{file} record {n}" if is_json_array(file) else where


def is_json_array(path: str | Path) -> bool:
    """A file read as one JSON array of records (`.json`, optionally `.gz` or `.zst`), not one record a line."""
    return Path(path).name.lower().removesuffix(".gz").removesuffix(".zst").endswith(".json")


def check_paths(inputs: list, split: str = DEFAULT_SPLIT, subset: str | None = None) -> list[Path | DatasetSource]:
    """The inputs as files and datasets (`analyze.sources.resolve`), or a one-line error naming the first one that
    cannot be read. Resolved inputs pass through unchanged."""
    if not inputs:
        raise UserError("no data files given: pass one or more files, a folder or a dataset (or set data.train)")
    return resolve(list(inputs), split, subset)


def fingerprint(paths: list) -> str | None:
    """A short content hash of the inputs, in order (names do not matter, bytes do); a local dataset folder counts
    its files. None when an input is a hub dataset, whose bytes are not here to hash (no cache then)."""
    h = hashlib.sha256()
    for p in paths:
        if isinstance(p, DatasetSource):
            if not p.local:
                return None
            files = _dataset_files(p)
            h.update(f"{p.split}/{p.subset}".encode())
        else:
            files = [p]
        for file in files:
            with open(file, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            h.update(b"\0")
    return "sha256:" + h.hexdigest()[:16]


def parse_record(raw: Any) -> Any:
    r"""A JSONL line (bytes) as its JSON value; records of JSON arrays arrive parsed and pass through.

    >>> parse_record(b'{"text": "hi"}\r\n')
    {'text': 'hi'}
    >>> parse_record(b'{"text": "caf\xe9"}')
    Traceback (most recent call last):
    analyze.errors.SkipRecord: invalid UTF-8 at byte 13
    """
    if not isinstance(raw, bytes):
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SkipRecord("invalid_utf8", f"invalid UTF-8 at byte {e.start}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise SkipRecord("malformed_json", "not valid JSON (nesting too deep)") from None
    except ValueError as e:  # JSONDecodeError, or an integer of more than 4300 digits
        raise SkipRecord("malformed_json", f"not valid JSON ({getattr(e, 'msg', str(e).split(':')[0])})") from None


class RecordReader:
    """Iterate `(file_index, line, raw)` over files: `raw` is a JSONL line's bytes or a JSON array's element.

    `line` is the 1-based line for JSONL and the 1-based position in the array for JSON. Blank lines are not
    records. Bad lines are found by `parse_record`, wherever the record is processed.
    `bytes_read` follows the raw (compressed) bytes consumed, for a progress bar.
    """

    def __init__(self, paths: list):
        self.paths = paths
        self.total_bytes = sum(_size(p) for p in paths)
        self.unknown_size = any(isinstance(p, DatasetSource) and not p.local for p in paths)  # a hub dataset
        self.bytes_read = 0

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        done = 0
        for i, path in enumerate(self.paths):
            if isinstance(path, DatasetSource):
                for row, record in path.rows():
                    yield i, row, record
                continue
            if path.suffix.lower() in (".parquet", ".arrow"):
                for row, record in table_rows(path):
                    yield i, row, record
                done += path.stat().st_size
                self.bytes_read = done
                continue
            with open(path, "rb") as raw:
                stream = self._open(path, raw)
                read = self._json_array if is_json_array(path) else self._jsonl
                n = 0
                for n, (line, record) in enumerate(read(path, stream), 1):
                    if n % 256 == 0:
                        self.bytes_read = done + raw.tell()
                    yield i, line, record
            done += path.stat().st_size
            self.bytes_read = done

    @staticmethod
    def _open(path: Path, raw: BinaryIO) -> BinaryIO:
        """The decompressed stream: gzip by its magic bytes, zstd by its suffix."""
        if compressed(path) == "zst":
            import io

            import zstandard

            return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw) if gz else raw

    def _jsonl(self, path: Path, stream: BinaryIO) -> Iterator[tuple[int, Any]]:
        any_line = False
        try:
            for lineno, raw_line in enumerate(stream, 1):
                if lineno == 1 and raw_line.startswith(BOM):
                    raw_line = raw_line[len(BOM) :]
                if not raw_line.strip():
                    continue
                any_line = True
                yield lineno, raw_line  # parsed by `parse_record` where the record is processed
        except (OSError, EOFError, zlib.error, _zstd_error()) as e:  # a truncated or corrupt .gz / .zst
            raise UserError(f"{path}: cannot decompress ({e}); re-download or re-compress the file") from None
        if not any_line:
            raise UserError(f"{path}: the file has no records (only blank lines)")

    def _json_array(self, path: Path, stream: BinaryIO) -> Iterator[tuple[int, Any]]:
        try:
            data = stream.read()
        except (OSError, EOFError, zlib.error, _zstd_error()) as e:
            raise UserError(f"{path}: cannot decompress ({e}); re-download or re-compress the file") from None
        try:
            records = json.loads(data.removeprefix(BOM).decode("utf-8"))
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise UserError(f"{path}:{line}: invalid UTF-8; fix the file or convert it to JSONL") from None
        except json.JSONDecodeError as e:
            raise UserError(
                f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); fix it, or convert the file to JSONL "
                "where a bad line is skipped on its own"
            ) from None
        except RecursionError:
            raise UserError(f"{path}: JSON nested too deeply to read; fix the file") from None
        except ValueError as e:  # an integer of more than 4300 digits
            raise UserError(f"{path}: not valid JSON ({str(e).split(':')[0]}); fix the file") from None
        if not isinstance(records, list):
            raise UserError(f"{path}: expected a JSON array of records; use .jsonl for one record per line")
        if not records:
            raise UserError(f"{path}: the array is empty; point at a file with records")
        yield from enumerate(records, 1)


def _size(source) -> int:
    if isinstance(source, DatasetSource):
        return sum(f.stat().st_size for f in _dataset_files(source))
    return source.stat().st_size


def _dataset_files(source: DatasetSource) -> list[Path]:
    """The files of a local dataset folder, in sorted order (none for a hub id): what its size and bytes are."""
    if not source.local:
        return []
    return sorted(f for f in Path(source.id).rglob("*") if f.is_file() and ".git" not in f.parts)


def _zstd_error() -> type[Exception]:
    try:
        import zstandard

        return zstandard.ZstdError
    except ImportError:
        return OSError


__all__ = [
    "RecordReader", "SkipLog", "SkipRecord", "check_paths", "fingerprint", "is_json_array", "parse_record",
    "shown_place",
]  # fmt: skip
