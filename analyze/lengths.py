"""The per-record result of tokenization, kept column-wise so memory grows only with the records' lengths."""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

from analyze.render import Encoded


@dataclass
class LengthTable:
    """One row per analysed record, plus its supervised spans and (for training) its token ids.

    `span_record[k]` is the row of span k; spans are `[span_start, span_end)` in token positions.
    `ids` is all records' token ids end to end (row r is `ids[offsets[r]:offsets[r + 1]]`) when kept.
    """

    file_index: np.ndarray
    line: np.ndarray
    tokens: np.ndarray
    supervised: np.ndarray
    span_record: np.ndarray
    span_start: np.ndarray
    span_end: np.ndarray
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.tokens, dtype=np.int64)])

    def row_ids(self, row: int) -> np.ndarray:
        if self.ids is None:
            raise ValueError("token ids were not kept; tokenize with keep_ids=True")
        off = self.offsets
        return self.ids[off[row] : off[row + 1]]

    def supervised_mask(self, row: int) -> np.ndarray:
        mask = np.zeros(int(self.tokens[row]), dtype=bool)
        for k in np.flatnonzero(self.span_record == row):
            mask[self.span_start[k] : self.span_end[k]] = True
        return mask


class TableBuilder:
    """Collects `Encoded` records chunk by chunk into compact typed arrays (8 bytes a number, no Python objects)."""

    def __init__(self, keep_ids: bool = False):
        self.keep_ids = keep_ids
        self._cols = {k: array("q") for k in ("file", "line", "tokens", "sup", "span_row", "span_start", "span_end")}
        self._ids: list[np.ndarray] = []

    def add(self, file_index: int, line: int, enc: Encoded) -> None:
        c = self._cols
        row = len(c["tokens"])
        c["file"].append(file_index)
        c["line"].append(line)
        c["tokens"].append(enc.length)
        c["sup"].append(enc.supervised)
        for s, e in enc.spans:
            c["span_row"].append(row)
            c["span_start"].append(s)
            c["span_end"].append(e)
        if self.keep_ids and enc.ids is not None:
            self._ids.append(enc.ids)

    def build(self) -> LengthTable:
        col = {
            k: np.frombuffer(v, dtype=np.int64).copy() if len(v) else np.zeros(0, np.int64)
            for k, v in self._cols.items()
        }
        return LengthTable(
            file_index=col["file"].astype(np.int32),
            line=col["line"],
            tokens=col["tokens"],
            supervised=col["sup"],
            span_record=col["span_row"],
            span_start=col["span_start"],
            span_end=col["span_end"],
            ids=np.concatenate(self._ids) if self.keep_ids and self._ids else None,
        )
