"""Hostile input, generated: whatever the bytes, every record is analysed or counted, and nothing crashes.

Files are built from random lines — valid records of every format, wrong types, deep nesting, huge strings, invalid
UTF-8, lone surrogates, 5000-digit numbers, truncated lines, random bytes — with a BOM or not, CRLF or LF, gzip or
not, and sometimes corrupted as a whole. The property: `tokenize_files` either returns with

    records analysed + records skipped == non-blank lines (JSONL) / elements (JSON array)

or, for a problem with the whole file (empty, all blank, not a JSON array, a corrupt .gz), raises a one-line
`UserError` naming the file. Any other exception is a bug. The layers below it (`parse_record`, `to_example`,
`RecordReader`) are checked the same way with many more examples, as they need no tokenizer.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from analyze.errors import SkipRecord, UserError
from analyze.formats import to_example
from analyze.pipeline import tokenize_files
from analyze.reader import RecordReader, parse_record
from analyze.schema import FORMATS

# The default run is derandomized so CI is repeatable; the slow run explores new random cases every time.
FAST = settings(max_examples=300, deadline=None, derandomize=True)
E2E = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
E2E_SLOW = settings(E2E, max_examples=2000, derandomize=False)
BOM = b"\xef\xbb\xbf"

# ---- records -------------------------------------------------------------------------------------------------------

text = st.text(max_size=30)
json_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
json_value = st.recursive(
    json_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


def turns(roles: list[str]) -> st.SearchStrategy[list[dict]]:
    contents = st.tuples(*(text for _ in roles))
    return contents.map(lambda cs: [{"role": r, "content": c} for r, c in zip(roles, cs, strict=True)])


# conversations the Qwen3 template takes: an optional system turn, then user/assistant pairs
chat = st.builds(
    lambda system, n, data: [*system, *data[: 2 * n]],
    st.lists(turns(["system"]).map(lambda t: t[0]), max_size=1),
    st.integers(1, 3),
    turns(["user", "assistant"] * 3),
)
SHAREGPT_NAMES = {"user": "human", "assistant": "gpt", "system": "system"}


def sharegpt(messages: list[dict]) -> dict:
    return {"conversations": [{"from": SHAREGPT_NAMES[m["role"]], "value": m["content"]} for m in messages]}


good_record = st.one_of(
    chat.map(lambda m: {"messages": m}),
    chat.map(sharegpt),
    st.builds(lambda i, x, o: {"instruction": i, "input": x, "output": o}, text, text, text),
    st.builds(lambda p, c: {"prompt": p, "completion": c}, text, text),
    st.builds(lambda t: {"text": t}, text),
)
# the right keys with values of any JSON type
wrong_types = st.one_of(
    st.fixed_dictionaries({"messages": json_value}),
    st.fixed_dictionaries({"messages": st.lists(st.fixed_dictionaries({"role": json_value, "content": json_value}))}),
    st.fixed_dictionaries({"conversations": st.lists(st.fixed_dictionaries({"from": json_value, "value": text}))}),
    st.fixed_dictionaries({"instruction": json_value, "output": json_value, "history": json_value}),
    st.fixed_dictionaries({"prompt": json_value, "completion": json_value}),
    st.fixed_dictionaries({"text": json_value}),
    json_value,  # not an object at all
)
lone_surrogate = st.builds(
    lambda c, before, after: {"text": f"{before}{chr(c)}{after}"}, st.integers(0xD800, 0xDFFF), text, text
)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@dataclass
class Line:
    raw: bytes  # without the line ending
    good: bool = False  # a valid record the Qwen3 template renders: it must be analysed, not skipped


def dumps(record, ensure_ascii: bool = True) -> bytes:
    return json.dumps(record, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


INVALID_UTF8 = [b"\xff", b"\xc3", b"\xe9t\xe9", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\x80\x80"]
BLANK = [b"", b" ", b"\t", b"  \t ", b"\r", b"\x0c"]

lines = st.one_of(
    st.builds(lambda r, a: Line(dumps(r, a), good=True), good_record, st.booleans()),
    st.builds(lambda r: Line(dumps(r)), wrong_types),
    st.builds(lambda r: Line(dumps(r, ensure_ascii=False)), lone_surrogate),  # becomes invalid UTF-8 bytes
    st.builds(lambda r: Line(dumps(r)), lone_surrogate),  # valid JSON "\ud800", not valid Unicode
    st.sampled_from([100, 5_000, 100_000]).map(lambda d: Line(nested(d))),
    st.sampled_from([100, 100_000]).map(lambda d: Line(b'{"text": "deep", "extra": ' + nested(d) + b"}")),
    st.integers(1, 1_000_000).map(lambda n: Line(dumps({"text": "ok", "meta": "x" * n}), good=True)),  # huge string
    st.integers(1, 4_000).map(lambda n: Line(dumps({"text": "a huge reply " * n}), good=True)),
    st.just(Line(b'{"text": "big", "n": ' + b"9" * 5000 + b"}")),  # beyond Python's int-from-string limit
    st.builds(lambda r, cut: Line(dumps(r)[:cut]), good_record, st.integers(0, 60)),  # truncated line
    st.builds(
        lambda r, bad, at: Line(dumps(r)[:at] + bad + dumps(r)[at:]),
        good_record,
        st.sampled_from(INVALID_UTF8),
        st.integers(0, 40),
    ),
    st.binary(max_size=40).map(lambda b: Line(b.replace(b"\n", b" "))),
    st.sampled_from(BLANK).map(Line),
)


@dataclass
class JsonlFile:
    lines: list[Line]
    bom: bool
    crlf: bool
    final_newline: bool

    def body(self) -> bytes:
        sep = b"\r\n" if self.crlf else b"\n"
        data = sep.join(line.raw for line in self.lines) + (sep if self.final_newline and self.lines else b"")
        return BOM + data if self.bom else data

    @property
    def records(self) -> int:
        return sum(bool(line.raw.strip()) for line in self.lines)  # blank lines are not records


jsonl_files = st.builds(JsonlFile, st.lists(lines, max_size=20), st.booleans(), st.booleans(), st.booleans())

# ---- the property --------------------------------------------------------------------------------------------------


def count_records(data: bytes) -> int:
    """Non-blank lines of a JSONL file's bytes (a BOM at the start is not part of the first line)."""
    return sum(bool(line.strip()) for line in data.removeprefix(BOM).split(b"\n"))


def check(path: Path, tokenizer, expected: int, good_lines: list[int], must_succeed: bool, fmt: str = "auto") -> None:
    """Either a complete count, or a one-line UserError for the whole file; anything else is a bug."""
    try:
        result = tokenize_files([path], tokenizer, fmt=fmt, cache=False)
    except UserError as e:
        assert not must_succeed, f"a file with {expected} records was refused: {e}"
        message = str(e)
        assert "\n" not in message and str(path) in message
        return
    assert result.records + result.skips.total == expected, (result.records, dict(result.skips.counts))
    analysed = result.table.line.tolist()
    assert len(set(analysed)) == len(analysed)
    missing = set(good_lines) - set(analysed)
    assert not missing, f"valid records at {sorted(missing)} were skipped: {result.skips.examples}"


def write(folder: str, name: str, data: bytes, compress: bool) -> Path:
    path = Path(folder) / (name + ".gz" if compress else name)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def check_jsonl(tokenizer, case: JsonlFile, compress: bool, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "data.jsonl", case.body(), compress)
        good = [i for i, line in enumerate(case.lines, 1) if line.good] if fmt == "auto" else []
        # count from the file's bytes: a line that is only the file's leading BOM is blank, as the reader sees it
        expected = count_records(case.body())
        check(path, tokenizer, expected, good, must_succeed=expected > 0, fmt=fmt)


formats = st.sampled_from(["auto", "auto", *FORMATS[1:]])  # --format, auto most often


@pytest.mark.slow
@E2E
@given(jsonl_files, st.booleans(), formats)
@example(
    JsonlFile([Line(nested(100_000)), Line(b""), Line(b'{"text": "ok"}', good=True)], True, True, False), False, "auto"
)
@example(JsonlFile([Line(b'{"text": "ok"}'), Line(b"{}")], False, False, True), False, "prompt_completion")
@example(JsonlFile([Line(b"\r"), Line(b" ")], False, True, True), True, "auto")  # only blank lines: a file error
@example(JsonlFile([Line(BOM), Line(nested(100))], False, False, False), False, "auto")  # a BOM-only first line
def test_jsonl_every_record_is_analysed_or_counted(qwen3, case, compress, fmt):
    check_jsonl(qwen3, case, compress, fmt)


@pytest.mark.slow
@E2E_SLOW
@given(jsonl_files, st.booleans(), formats)
def test_jsonl_every_record_is_analysed_or_counted_many(qwen3, case, compress, fmt):
    check_jsonl(qwen3, case, compress, fmt)


# ---- JSON arrays ---------------------------------------------------------------------------------------------------

elements = st.one_of(
    st.builds(lambda r: (dumps(r), True), good_record),
    st.builds(lambda r: (dumps(r), False), wrong_types | lone_surrogate),
    st.integers(1, 300).map(lambda d: (nested(d), False)),  # nesting Python reads, inside the array
    st.integers(1, 200_000).map(lambda n: (dumps({"text": "ok", "meta": "x" * n}), True)),
)
NESTED_TOO_DEEP = nested(100_000)


@dataclass
class JsonFile:
    elements: list[tuple[bytes, bool]]
    bom: bool
    crlf: bool
    damage: str  # "none", or what makes the whole file unreadable as JSON
    at: int

    def body(self) -> bytes:
        items = [e for e, _ in self.elements]
        if self.damage == "too_deep":
            items.insert(self.at % (len(items) + 1), NESTED_TOO_DEEP)
        if self.damage == "big_int":
            items.insert(self.at % (len(items) + 1), b"9" * 5000)
        sep = b",\r\n" if self.crlf else b",\n"
        data = (BOM if self.bom else b"") + b"[" + sep.join(items) + b"]\n"
        cut = self.at % max(len(data) - 2, 1)
        if self.damage == "truncate":  # cut before the closing bracket: never valid JSON
            data = data[:cut]
        if self.damage == "invalid_utf8":
            data = data[:cut] + b"\xff" + data[cut:]
        return data


json_files = st.builds(
    JsonFile,
    st.lists(elements, max_size=12),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["none", "none", "truncate", "invalid_utf8", "too_deep", "big_int"]),  # intact a third of the time
    st.integers(0, 10**6),
)


def check_json(tokenizer, case: JsonFile, compress: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "data.json", case.body(), compress)
        good = [i for i, (_, ok) in enumerate(case.elements, 1) if ok]
        intact = case.damage == "none" and case.elements  # an empty array is a whole-file error
        check(path, tokenizer, len(case.elements), good if intact else [], must_succeed=bool(intact))


@pytest.mark.slow
@E2E
@given(json_files, st.booleans())
def test_json_array_every_element_is_analysed_or_counted(qwen3, case, compress):
    check_json(qwen3, case, compress)


@pytest.mark.slow
@E2E_SLOW
@given(json_files, st.booleans())
def test_json_array_every_element_is_analysed_or_counted_many(qwen3, case, compress):
    check_json(qwen3, case, compress)


# ---- damaged gzip --------------------------------------------------------------------------------------------------


@pytest.mark.slow
@E2E
@given(jsonl_files.filter(lambda f: f.records > 0), st.sampled_from(["truncate", "flip", "append"]), st.data())
def test_damaged_gzip_is_a_clean_error_or_a_complete_count(qwen3, case, damage, data):
    packed = bytearray(gzip.compress(case.body()))
    if damage == "truncate":  # the size and checksum trailer go missing: always an error
        packed = packed[: data.draw(st.integers(2, len(packed) - 1))]
    elif damage == "flip":
        for at in data.draw(st.lists(st.integers(0, len(packed) - 1), min_size=1, max_size=4)):
            packed[at] ^= data.draw(st.integers(1, 255))
    else:  # another gzip member is valid (and read); anything else after the end is not
        packed += data.draw(st.sampled_from([gzip.compress(b'{"text": "more"}\n'), b"\x00garbage", b"\x1f\x8b\x08"]))
    packed = bytes(packed)
    try:
        expected = count_records(gzip.decompress(packed))
    except Exception:  # not decompressible as a whole: an error is expected; a reader that went on must count all
        expected = case.records
    if not packed.startswith(b"\x1f\x8b"):  # no longer gzip at all: read as the (binary) JSONL it now is
        expected = count_records(packed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.jsonl.gz"
        path.write_bytes(packed)
        check(path, qwen3, expected, [], must_succeed=False)
        if damage == "truncate":
            with pytest.raises(UserError, match=r"cannot decompress"):
                tokenize_files([path], qwen3, cache=False)


# ---- the layers below, without a tokenizer: many more examples -------------------------------------------------


@FAST
@given(st.binary(max_size=200) | lines.map(lambda line: line.raw))
def test_parse_record_returns_a_value_or_skips(raw):
    try:
        parse_record(raw)
    except SkipRecord as skip:
        assert skip.reason in ("invalid_utf8", "malformed_json") and skip.detail


@FAST
@given(json_value | good_record | wrong_types | lone_surrogate, st.sampled_from(FORMATS))
def test_to_example_returns_an_example_or_skips(record, fmt):
    try:
        to_example(record, fmt)
    except SkipRecord as skip:
        assert skip.reason and skip.detail


@settings(FAST, max_examples=150)
@given(jsonl_files, st.booleans())
def test_reader_yields_every_non_blank_line_with_its_number(case, compress):
    with tempfile.TemporaryDirectory() as folder:
        path = write(folder, "data.jsonl", case.body(), compress)
        expected = [i for i, line in enumerate(case.lines, 1) if line.raw.strip()]
        if not expected:
            return  # a whole-file error, covered above
        got = [(line, raw) for _, line, raw in RecordReader([path])]
        assert [line for line, _ in got] == expected
        ending = b"\r\n" if case.crlf else b"\n"
        for line, raw in got:  # each line arrives whole: its bytes and line ending, minus the BOM
            last = line == len(case.lines) and not case.final_newline
            assert raw == case.lines[line - 1].raw + (b"" if last else ending)
