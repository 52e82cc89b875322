"""files → records → rendered → encoded → `LengthTable`: the one tokenization both commands use.

Input is cut into chunks of records. Each chunk is parsed, normalised, rendered with the chat template and encoded
in one batched call by `encode_chunk`. Small inputs run it here; large ones in one worker process per core, so
template rendering (Python) and encoding (Rust) run on every core at once, while this process only reads lines
and collects results in input order. Token ids go to the cache on disk as they arrive (`analyze.cache`), so memory
holds only per-record lengths, and a second run on the same data and tokenizer reads them back instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import sys
import threading
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from analyze import cache as cache_mod
from analyze.errors import SkipRecord
from analyze.formats import Options, to_example
from analyze.lengths import Chunk, LengthTable, TableBuilder
from analyze.reader import RecordReader, SkipLog, check_paths, fingerprint, parse_record
from analyze.render import Encoded, Renderer
from analyze.sample import SampleInfo, SampleSpec, sample_records
from analyze.schema import AUTO
from analyze.split import content_hash
from analyze.tokenizer import tokenizer_name
from analyze.tool_drops import tool_drops

CHUNK = 1024  # records per encoder call: large enough to keep the encoder busy, small enough for memory
PROGRESS_MIN_BYTES = 8 << 20  # show a progress bar for inputs larger than this
WORKERS_MIN_BYTES = 16 << 20  # below this, starting worker processes costs more than it saves
START_METHOD: str | None = None  # None: fork when safe, else spawn (tests set it to cover both)


@dataclass
class Tokenized:
    """The tokenized data set: the table, what was skipped and why, and what it was made from."""

    paths: list[Path]
    table: LengthTable
    skips: SkipLog
    tokenizer_name: str
    data_fingerprint: str
    tokenizer_fingerprint: str
    from_cache: bool = False
    roles_fixed: Counter = field(default_factory=Counter)  # records whose roles `data.fix_roles` changed, by fix
    tool_drops: Counter = field(default_factory=Counter)  # records with tools, and those the template drops (COUNTS)
    sample: SampleInfo | None = None  # set when only a random sample was analysed (`--sample`)

    @property
    def records(self) -> int:
        return len(self.table)


def tokenize_files(
    paths: list[str | Path],
    tokenizer,
    fmt: str = AUTO,
    strict: bool = False,
    keep_ids: bool = False,
    progress: bool | None = None,
    cache: bool = True,
    workers: int | None = None,
    options: Options | None = None,
    sample: SampleSpec | None = None,
    sample_seed: int | None = None,  # required with `sample`: the run's `optim.seed`
    files_fp: str | None = None,
) -> Tokenized:
    """Tokenize every record of `paths` exactly as the trainer will; bad records are counted, not fatal.

    With `cache` (default), the result is stored under the data's and tokenizer's fingerprints and reused by
    the next call with the same files, tokenizer and format. `workers`: processes to use (default: one per core
    for inputs over 16 MB, none for smaller ones). `options`: the format and normalisation options (default: `fmt`
    and nothing else). `sample`: analyse a seeded random sample of the records instead (never cached).
    `files_fp`: the tokenizer's `files_fingerprint`, to store the result where `cached` finds it without a tokenizer.
    """
    if sample is not None and sample_seed is None:
        raise ValueError(
            "tokenize_files: a sample needs sample_seed (the config's optim.seed), so it is the same each run"
        )
    options = options or Options(fmt)
    files = check_paths(list(paths))
    data_fp = fingerprint(files)
    name = tokenizer_name(tokenizer)
    tok_fp = cache_mod.tokenizer_fingerprint(tokenizer)
    key = None
    if cache and data_fp and not sample:
        key = cache_mod.key(files, data_fp, files_fp or tok_fp, options.key())
    if key and (hit := _from_cache(key, files, data_fp, strict, keep_ids)):
        return hit

    reader = RecordReader(files)
    skips = SkipLog(strict=strict)
    builder = TableBuilder()
    store = cache_mod.Writer(key) if key else None
    keep = keep_ids or store is not None
    if progress is None:
        progress = reader.total_bytes >= PROGRESS_MIN_BYTES and sys.stderr.isatty()
    if workers is None:
        large = reader.total_bytes >= WORKERS_MIN_BYTES or reader.unknown_size
        workers = (os.cpu_count() or 1) if large else 0
    ids_parts: list[np.ndarray] = []
    fixed: Counter = Counter()
    drops: Counter = Counter()
    records, info = iter(reader), None
    if sample is not None:
        picked, seen = sample_records(records, sample, sample_seed)
        records = iter(picked)
        info = SampleInfo(len(picked), seen, sample_seed, "reservoir" if sample.count else "bernoulli")
    try:
        # the pool's processes start before the progress bar's thread does (see `_worker_pool`)
        with _worker_pool(tokenizer, workers) as pool, _progress_bar(progress, reader.total_bytes) as bar:
            for chunk in _encoded_chunks(records, tokenizer, options, keep, pool, workers):
                for fi, line, reason, detail in chunk.skipped:
                    skips.add(f"{files[fi]}:{line}", reason, detail)
                fixed.update(chunk.roles_fixed)
                drops.update(chunk.tool_drops)
                builder.add(chunk)
                if chunk.ids is not None:
                    if store is not None:
                        store.add_ids(chunk.ids)
                    elif keep_ids:
                        ids_parts.append(chunk.ids)
                bar(reader.bytes_read)
        table = builder.build()
        if store is not None:
            stored_ids = store.finish(table, skips, fixed, (name, tok_fp), drops)
            table.ids = stored_ids if keep_ids else None
        elif keep_ids:
            table.ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.int32)
    except BaseException:
        if store is not None:
            store.abort()
        raise
    return Tokenized(files, table, skips, name, data_fp, tok_fp, roles_fixed=fixed, tool_drops=drops, sample=info)


def cached(
    paths: list, files_fp: str, options: Options, strict: bool = False, keep_ids: bool = False
) -> Tokenized | None:
    """The stored result for these inputs, tokenizer files (`analyze.tokenizer.files_fingerprint`) and options, or
    None: what makes a rerun on unchanged inputs instant, since neither transformers nor the tokenizer is loaded."""
    files = check_paths(list(paths))
    data_fp = fingerprint(files)
    if not data_fp:
        return None
    return _from_cache(cache_mod.key(files, data_fp, files_fp, options.key()), files, data_fp, strict, keep_ids)


def _from_cache(key: str, files: list, data_fp: str, strict: bool, keep_ids: bool) -> Tokenized | None:
    hit = cache_mod.load(key, keep_ids)
    if hit is None:
        return None
    table, skips, fixed, (name, tok_fp), drops = hit
    skips.strict = strict
    skips.replay_strict()
    return Tokenized(files, table, skips, name, data_fp, tok_fp, from_cache=True, roles_fixed=fixed, tool_drops=drops)


def encode_chunk(renderer: Renderer, items: list[tuple[int, int, object]], options: Options, keep_ids: bool) -> Chunk:
    """Parse, normalise, render and encode one chunk of raw records; every record is encoded or skipped."""
    skipped: list[tuple[int, int, str, str]] = []
    sources, examples, texts = [], [], []
    tools, fixed, drops, applied = options.tools, Counter(), Counter(), []
    for fi, line, raw in items:
        try:
            example = to_example(parse_record(raw), options.fmt, tools)
            text, example, fixes = renderer.render_fixing(example, options.fix_roles)
            check_unicode(text)
        except SkipRecord as skip:
            skipped.append((fi, line, skip.reason, skip.detail))
            continue
        sources.append((fi, line))
        examples.append(example)
        texts.append(text)
        applied.append(fixes)
    results = renderer.finish(examples, texts, renderer.encode_batch(examples, texts), keep_ids)
    kept: list[tuple[tuple[int, int], Encoded]] = []
    hashes: list[int] = []
    for src, example, text, result, fixes in zip(sources, examples, texts, results, applied, strict=True):
        if isinstance(result, SkipRecord):
            skipped.append((*src, result.reason, result.detail))
        else:
            kept.append((src, result))
            fixed.update(fixes)  # only records that are analysed count as fixed
            drops.update(tool_drops(renderer, text, example))  # after `finish`, which rendered the same pieces
            hashes.append(content_hash(example))
    skipped.sort(key=lambda s: (s[0], s[1]))  # report in input order
    spans = [(row, s, e) for row, (_, enc) in enumerate(kept) for s, e in enc.spans]
    span_cols = np.asarray(spans, dtype=np.int64).reshape(-1, 3)
    columns = {
        "file_index": np.asarray([src[0] for src, _ in kept], dtype=np.int64),
        "line": np.asarray([src[1] for src, _ in kept], dtype=np.int64),
        "tokens": np.asarray([enc.length for _, enc in kept], dtype=np.int64),
        "supervised": np.asarray([enc.supervised for _, enc in kept], dtype=np.int64),
        "span_record": span_cols[:, 0].copy(),
        "span_start": span_cols[:, 1].copy(),
        "span_end": span_cols[:, 2].copy(),
        "content_hash": np.asarray(hashes, dtype=np.uint64),
    }
    ids = None
    if keep_ids:
        ids = np.concatenate([enc.ids for _, enc in kept]) if kept else np.zeros(0, np.int32)
    return Chunk(columns, ids, skipped, fixed, drops)


@contextlib.contextmanager
def _worker_pool(tokenizer, workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """`workers` processes that each hold a `Renderer`, started now; None for in-process work.

    Forked where that is safe (see `_fork_is_safe`), so workers start at once with the tokenizer already in memory;
    otherwise spawned, receiving the pickled tokenizer (slower to start, and a script needs `if __name__ ==
    "__main__":`).
    """
    if workers <= 1:
        yield None
        return
    global _WORKER_RENDERER
    method = START_METHOD or ("fork" if _fork_is_safe() else "spawn")
    if method == "fork":
        _WORKER_RENDERER = Renderer(tokenizer)  # inherited by the forked workers
        pool = ProcessPoolExecutor(workers, multiprocessing.get_context("fork"), initializer=_worker_init)
    else:
        pool = ProcessPoolExecutor(
            workers, multiprocessing.get_context("spawn"), initializer=_worker_init, initargs=(pickle.dumps(tokenizer),)
        )
    try:
        pool.submit(int).result()  # start the processes now, while this process has no other thread
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)
        _WORKER_RENDERER = None


def _fork_is_safe() -> bool:
    """Linux, this process has no other thread, and CUDA is not initialised. The workers run only the tokenizer and
    the template, never torch, so torch's CPU thread pools (if torch is loaded) do not matter in them."""
    if sys.platform != "linux" or threading.active_count() != 1:
        return False
    torch = sys.modules.get("torch")
    return torch is None or not torch.cuda.is_initialized()


def _encoded_chunks(
    records: Iterator, tokenizer, fmt: Options, keep_ids: bool, pool: ProcessPoolExecutor | None, workers: int
) -> Iterator[Chunk]:
    """Encoded chunks in input order, computed here or by the pool's processes (two chunks in flight each)."""
    chunks = _chunks(records, CHUNK)
    if pool is None:
        renderer = Renderer(tokenizer)
        for items in chunks:
            yield encode_chunk(renderer, items, fmt, keep_ids)
        return
    here: Renderer | None = None

    def result(future: Future, items: list) -> Chunk:
        nonlocal here
        try:
            return future.result()
        except RecursionError:  # a deeply nested JSON-array record cannot be pickled to a worker: encode it here
            here = here or Renderer(tokenizer)
            return encode_chunk(here, items, fmt, keep_ids)

    in_flight: deque[tuple[Future, list]] = deque()
    for items in chunks:
        in_flight.append((pool.submit(_worker_encode, items, fmt, keep_ids), items))
        if len(in_flight) >= 2 * workers:
            yield result(*in_flight.popleft())
    while in_flight:
        yield result(*in_flight.popleft())


_WORKER_RENDERER: Renderer | None = None


def _worker_init(tokenizer_bytes: bytes | None = None) -> None:
    # One process per core already: the encoder's own threads would only compete with the other workers.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if tokenizer_bytes is not None:  # spawned; a forked worker inherited its renderer
        global _WORKER_RENDERER
        _WORKER_RENDERER = Renderer(pickle.loads(tokenizer_bytes))


def _worker_encode(items, fmt: Options, keep_ids: bool) -> Chunk:
    assert _WORKER_RENDERER is not None
    return encode_chunk(_WORKER_RENDERER, items, fmt, keep_ids)


def check_unicode(text: str) -> None:
    """Skip a record whose text holds a lone surrogate (JSON allows `"\\ud800"`); the encoder cannot take it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = text[e.start]
        raise SkipRecord("invalid_utf8", f"lone surrogate \\u{ord(bad):04x} in the text (not valid Unicode)") from None


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
