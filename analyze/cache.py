"""Tokenize once: token ids, lengths and supervised spans of an analysis, stored under fingerprints.

The key covers the input files (names and content hash), the tokenizer (its vocabulary and rules, chat template
and special tokens), the record format and the lengthscan version, so a changed file or tokenizer never reuses a
stale entry. Entries live in `$LENGTHSCAN_CACHE` (default `~/.cache/lengthscan`); the newest `KEEP` are kept.
An entry is written to a temporary folder and renamed into place, so a crash never leaves half an entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from analyze import __version__
from analyze.lengths import COLUMNS, LengthTable
from analyze.reader import SkipLog

KEEP = 8  # entries kept; older ones are removed when a new one is stored
ABANDONED_AFTER = 3600  # seconds without a write after which a hidden temporary entry is a killed run's leftover
FORMAT_VERSION = 5  # 2: content_hash column; 3: tool calls, content parts, reasoning; turns located by structure;
# 4: text parts under "value" read, and skips the role fixes would render marked so (a cached table would keep both);
# 5: the records whose tools the template drops (`tool_drops`): an older entry has no counts, so it would warn of none


def cache_root() -> Path:
    if env := os.environ.get("LENGTHSCAN_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lengthscan"


def tokenizer_fingerprint(tokenizer) -> str:
    """Everything about a tokenizer that changes the ids or the supervised spans."""
    h = hashlib.sha256()
    h.update(tokenizer.backend_tokenizer.to_str().encode())
    h.update(str(tokenizer.chat_template).encode())
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    h.update(type(tokenizer).__name__.encode())
    return h.hexdigest()[:16]


def key(paths: list[Path], data_fp: str, tokenizer_fp: str, options: str) -> str:
    """The cache entry of these files' bytes and names, this tokenizer and these format options."""
    names = (str(p.resolve()) if isinstance(p, Path) else str(p) for p in paths)
    parts = [__version__, str(FORMAT_VERSION), data_fp, tokenizer_fp, options, *names]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def load(entry_key: str, keep_ids: bool) -> tuple[LengthTable, SkipLog, Counter, tuple[str, str], Counter] | None:
    """The stored table (ids memory-mapped when asked), skips, role fixes, tokenizer and tool drops, or None if
    absent or unreadable."""
    folder = cache_root() / entry_key
    try:
        meta = json.loads((folder / "meta.json").read_text())
        with np.load(folder / "table.npz") as z:
            columns = {k: z[k] for k in COLUMNS}
        ids = np.load(folder / "ids.npy", mmap_mode="r") if keep_ids else None
    except (OSError, ValueError, KeyError):
        return None
    os.utime(folder)  # recently used entries are kept longest
    records = [tuple(r) for r in meta.get("skipped_records", [])]
    skips = SkipLog(counts=Counter(meta["skipped_reasons"]), examples=meta["skipped_examples"], records=records)
    fixed, tokenizer = Counter(meta.get("roles_fixed", {})), tuple(meta.get("tokenizer", ("", "")))
    return LengthTable(**columns, ids=ids), skips, fixed, tokenizer, Counter(meta.get("tool_drops", {}))


class Writer:
    """Streams a new entry's ids to disk chunk by chunk; `finish` stores the table and publishes the entry."""

    def __init__(self, entry_key: str):
        self.key = entry_key
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{entry_key}.", dir=root))
        self._ids = open(self.tmp / "ids.raw", "wb")  # noqa: SIM115 - closed in finish/abort
        self.count = 0

    def add_ids(self, ids: np.ndarray) -> None:
        self._ids.write(np.ascontiguousarray(ids, dtype=np.int32).tobytes())
        self.count += len(ids)

    def finish(
        self,
        table: LengthTable,
        skips: SkipLog,
        roles_fixed: Counter | None = None,
        tokenizer: tuple = ("", ""),
        tool_drops: Counter | None = None,
    ) -> np.ndarray:
        """Publish the entry; returns its ids, memory-mapped from the published file."""
        self._ids.close()
        raw = np.memmap(self.tmp / "ids.raw", dtype=np.int32, mode="r", shape=(self.count,)) if self.count else None
        np.save(self.tmp / "ids.npy", raw if raw is not None else np.zeros(0, np.int32))
        del raw
        (self.tmp / "ids.raw").unlink()
        np.savez(self.tmp / "table.npz", **{k: getattr(table, k) for k in COLUMNS})
        meta = {
            "skipped_reasons": dict(skips.counts),
            "skipped_examples": skips.examples,
            "skipped_records": skips.records,
            "roles_fixed": dict(roles_fixed or {}),
            "tool_drops": dict(tool_drops or {}),  # `analyze.tool_drops.COUNTS`
            "tokenizer": list(tokenizer),  # its name and `tokenizer_fingerprint`: a rerun needs no tokenizer loaded
            "version": __version__,
        }
        (self.tmp / "meta.json").write_text(json.dumps(meta))
        final = cache_root() / self.key
        shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(self.tmp, final)
        except OSError:  # another process published the same entry (same data, same tokenizer) just now: use it
            shutil.rmtree(self.tmp, ignore_errors=True)
        _evict(cache_root())
        return np.load(final / "ids.npy", mmap_mode="r")

    def abort(self) -> None:
        self._ids.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _evict(root: Path) -> None:
    """Keep the newest KEEP entries; remove temporary entries a killed run left (no write for an hour)."""
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=os.path.getmtime)
    for old in entries[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    now = time.time()
    for tmp in (p for p in root.iterdir() if p.is_dir() and p.name.startswith(".")):
        try:
            last_write = max([tmp.stat().st_mtime, *(f.stat().st_mtime for f in tmp.iterdir())])
        except OSError:
            continue
        if now - last_write > ABANDONED_AFTER:  # a running writer appends ids continuously
            shutil.rmtree(tmp, ignore_errors=True)
