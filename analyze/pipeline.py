"""files → records → rendered → encoded → `LengthTable`: the one tokenization both commands use.

Reading, normalising and template rendering run in Python on this thread while the previous chunk is encoded
by `tokenizers` on the other core(s) — the encoder releases the GIL — so both cores stay busy.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from analyze.errors import SkipRecord
from analyze.formats import to_example
from analyze.lengths import LengthTable, TableBuilder
from analyze.reader import RecordReader, SkipLog, check_paths, fingerprint
from analyze.render import Renderer

CHUNK = 1024  # records per encoder call: large enough to keep the encoder's threads busy, small for memory
PROGRESS_MIN_BYTES = 8 << 20  # show a progress bar for inputs larger than this


@dataclass
class Tokenized:
    """The tokenized data set: the table, what was skipped and why, and what it was made from."""

    paths: list[Path]
    table: LengthTable
    skips: SkipLog
    tokenizer_name: str
    data_fingerprint: str

    @property
    def records(self) -> int:
        return len(self.table)


def tokenize_files(
    paths: list[str | Path],
    tokenizer,
    fmt: str = "auto",
    strict: bool = False,
    keep_ids: bool = False,
    progress: bool | None = None,
) -> Tokenized:
    """Tokenize every record of `paths` exactly as the trainer will; bad records are counted, not fatal."""
    files = check_paths(list(paths))
    skips = SkipLog(strict=strict)
    reader = RecordReader(files, skips)
    renderer = Renderer(tokenizer)
    builder = TableBuilder(keep_ids=keep_ids)
    if progress is None:
        progress = reader.total_bytes >= PROGRESS_MIN_BYTES and sys.stderr.isatty()

    def where(file_index: int, line: int) -> str:
        return f"{files[file_index]}:{line}"

    def finish(batch) -> None:
        sources, examples, texts, future = batch
        for (fi, line), result in zip(
            sources, renderer.finish(examples, texts, future.result(), keep_ids), strict=True
        ):
            if isinstance(result, SkipRecord):
                skips.add(where(fi, line), result.reason, result.detail)
            else:
                builder.add(fi, line, result)

    with _progress_bar(progress, reader.total_bytes) as bar, ThreadPoolExecutor(1) as encoder:
        pending = None
        for chunk in _chunks(iter(reader), CHUNK):
            sources, examples, texts = [], [], []
            for fi, line, record in chunk:
                try:
                    example = to_example(record, fmt)
                    text = renderer.render(example)
                except SkipRecord as skip:
                    skips.add(where(fi, line), skip.reason, skip.detail)
                    continue
                sources.append((fi, line))
                examples.append(example)
                texts.append(text)
            batch = (sources, examples, texts, encoder.submit(renderer.encode_batch, examples, texts))
            if pending is not None:
                finish(pending)
            pending = batch
            bar(reader.bytes_read)
        if pending is not None:
            finish(pending)
        bar(reader.total_bytes)
    return Tokenized(files, builder.build(), skips, tokenizer.name_for_report, fingerprint(files))


def _chunks(it: Iterator, n: int) -> Iterator[list]:
    while chunk := list(islice(it, n)):
        yield chunk


class _progress_bar:
    """A rich progress bar on stderr over input bytes; a no-op when off."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda done: None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self._p = Progress(
            TextColumn("tokenizing"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._p.__enter__()
        task = self._p.add_task("tokenize", total=self.total)
        return lambda done: self._p.update(task, completed=done)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
        return False
