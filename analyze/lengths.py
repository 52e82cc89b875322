"""The per-record result of tokenization, kept column-wise so memory grows only with the records' lengths."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

COLUMNS = ("file_index", "line", "tokens", "supervised", "span_record", "span_start", "span_end", "content_hash")


@dataclass
class LengthTable:
    """One row per analysed record, plus its supervised spans and (for training) its token ids.

    `span_record[k]` is the row of span k; spans are `[span_start, span_end)` in token positions.
    `ids` is all records' token ids end to end (row r is `ids[offsets[r]:offsets[r + 1]]`) when kept.
    `content_hash` is each record's `analyze.split.content_hash`: what the eval hold-out is decided by.
    """

    file_index: np.ndarray
    line: np.ndarray
    tokens: np.ndarray
    supervised: np.ndarray
    span_record: np.ndarray
    span_start: np.ndarray
    span_end: np.ndarray
    ids: np.ndarray | None = None
    content_hash: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def without_reply(self) -> np.ndarray:
        """The records with no supervised token in their whole rendering (no assistant reply): nothing to train."""
        return np.flatnonzero(self.supervised == 0)

    @cached_property
    def offsets(self) -> np.ndarray:
        """Where each row starts in `ids` (and, last, the total): computed once."""
        return np.concatenate([[0], np.cumsum(self.tokens, dtype=np.int64)])

    @cached_property
    def _span_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(self.tokens))  # spans are stored in row order
        return np.searchsorted(self.span_record, rows, "left"), np.searchsorted(self.span_record, rows, "right")

    def take(self, rows: np.ndarray) -> LengthTable:
        """The table of these rows, in this order (a row may repeat: a bootstrap resample); without ids.

        >>> t = LengthTable(np.zeros(2, np.int32), np.array([1, 2]), np.array([5, 7]), np.array([2, 3]),
        ...                 np.array([0, 1]), np.array([3, 4]), np.array([5, 7]))
        >>> t.take(np.array([1, 1])).span_record.tolist(), t.take(np.array([1, 1])).tokens.tolist()
        ([0, 1], [7, 7])
        """
        lo, hi = self._span_bounds
        counts = hi[rows] - lo[rows]
        first = np.cumsum(counts) - counts  # where each chosen row's spans start in the new table
        spans = np.repeat(lo[rows], counts) + np.arange(int(counts.sum())) - np.repeat(first, counts)
        return LengthTable(
            self.file_index[rows],
            self.line[rows],
            self.tokens[rows],
            self.supervised[rows],
            np.repeat(np.arange(len(rows)), counts),
            self.span_start[spans],
            self.span_end[spans],
            content_hash=None if self.content_hash is None else self.content_hash[rows],
        )

    def row_ids(self, row: int) -> np.ndarray:
        if self.ids is None:
            raise ValueError("token ids were not kept; tokenize with keep_ids=True")
        return np.asarray(self.ids[self.offsets[row] : self.offsets[row + 1]])

    def spans(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Starts and ends of a row's supervised spans."""
        lo, hi = self._span_bounds
        return self.span_start[lo[row] : hi[row]], self.span_end[lo[row] : hi[row]]

    def supervised_mask(self, row: int) -> np.ndarray:
        mask = np.zeros(int(self.tokens[row]), dtype=bool)
        for s, e in zip(*self.spans(row), strict=True):
            mask[s:e] = True
        return mask


@dataclass
class Chunk:
    """The records of one chunk of input, encoded: columns as in `LengthTable` (`span_record` counts from 0 in
    the chunk), the chunk's token ids end to end, and its skipped records as (file_index, line, reason, detail)."""

    columns: dict[str, np.ndarray]
    ids: np.ndarray | None
    skipped: list[tuple[int, int, str, str]]
    roles_fixed: dict[str, int] = field(default_factory=dict)  # records changed by `data.fix_roles`, by fix
    tool_drops: dict[str, int] = field(default_factory=dict)  # `analyze.tool_drops.COUNTS`: tools the template drops


class TableBuilder:
    """Collects encoded chunks into one `LengthTable`: a few numpy arrays, no per-record Python objects."""

    def __init__(self):
        self._parts: dict[str, list[np.ndarray]] = {k: [] for k in COLUMNS}
        self.rows = 0

    def add(self, chunk: Chunk) -> None:
        for k in COLUMNS:
            part = chunk.columns[k]
            self._parts[k].append(part + self.rows if k == "span_record" else part)
        self.rows += len(chunk.columns["tokens"])

    def build(self) -> LengthTable:
        col = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in self._parts.items()}
        col["file_index"] = col["file_index"].astype(np.int32)
        col["content_hash"] = col["content_hash"].astype(np.uint64)
        return LengthTable(**col)
