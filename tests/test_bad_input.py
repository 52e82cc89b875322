"""Bad input: bad records are skipped and counted with file:line; bad files are one-line errors, exit 2."""

import gzip
import json
import subprocess
import sys

import pytest

from analyze.cli import main
from analyze.pipeline import tokenize_files
from analyze.reader import RecordReader, parse_record
from tests.conftest import REPO

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
BAD = [
    ("malformed_json", '{"messages": [ oops'),
    ("unknown_format", {"question": "Hi", "answer": "Hello"}),
    ("empty_conversation", {"messages": []}),
    ("non_text_content", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
    ("invalid_utf8", b'{"text": "caf\xe9"}'),
    ("unknown_format", "[1, 2]"),
    ("non_string_content", {"messages": [{"role": "user", "content": None}]}),  # null only beside tool calls
]


def test_bad_records_are_counted_by_reason_and_the_rest_analysed(write_jsonl, qwen3):
    lines = [GOOD] + [r for _, r in BAD] + ["", "   ", GOOD]  # blank lines are not records
    result = tokenize_files([write_jsonl(lines)], qwen3)
    assert result.records == 2
    assert result.records + result.skips.total == 2 + len(BAD)
    expected = {}
    for reason, _ in BAD:
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(result.skips.counts) == expected
    assert result.skips.examples[0].endswith("data.jsonl:2: not valid JSON (Expecting value) [malformed_json]")
    assert result.table.line.tolist() == [1, 11]


def test_template_refusal_is_a_skip(tmp_path, write_jsonl):
    from analyze.tokenizer import load_tokenizer

    strict = tmp_path / "strict.jinja"
    strict.write_text(
        "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
        "{{ raise_exception('only user and assistant') }}{% endif %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
    )
    tok = load_tokenizer("bundled:qwen3", chat_template_file=strict)
    result = tokenize_files([write_jsonl([GOOD, {"messages": [{"role": "wizard", "content": "x"}]}])], tok)
    assert result.records == 1 and result.skips.counts == {"template_error": 1}
    assert "only user and assistant" in result.skips.examples[0]


def test_bom_crlf_and_gzip_are_read(tmp_path):
    path = tmp_path / "w.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n\r\n" + json.dumps(GOOD).encode() + b"\r\n")
    records = [(line, parse_record(raw)) for _, line, raw in RecordReader([path])]
    assert records == [(1, GOOD), (3, GOOD)]


def test_strict_stops_at_the_first_bad_record(write_jsonl, capsys):
    path = write_jsonl([GOOD, "{broken", GOOD])
    assert main([str(path), "--strict"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"lengthscan: error: {path}:2: not valid JSON (Expecting property name enclosed in double quotes) "
        "[malformed_json] (--strict stops at the first bad record; drop it to skip)"
    )


def test_skips_are_shown_in_the_report_with_file_line(write_jsonl, capsys):
    path = write_jsonl([GOOD, "{broken", *[GOOD] * 20])
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 skipped (malformed_json: 1)" in out and f"{path}:2" in out
    # the first line after the header says it, with the share
    assert out.splitlines()[1].startswith("warning  1 of 22 records skipped (4.5%): malformed_json 1")


def test_more_skips_than_max_skip_is_exit_2_naming_reasons_and_lines(write_jsonl, capsys, tmp_path):
    """A template that refuses half the data is no longer a quiet exit 0; the skipped list is still written."""
    path = write_jsonl([GOOD, "{broken", GOOD, {"question": "x"}])
    out = tmp_path / "skipped.jsonl"
    assert main([str(path), "--skipped-out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 of 4 records skipped (50.0%): malformed_json 1, unknown_format 1, more than data.max_skip 0.05" in err
    assert f"{path}:2" in err and "--max-skip" in err and len(err.strip().splitlines()) == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rows] == [(2, "malformed_json"), (4, "unknown_format")]
    assert all(r["file"] == str(path) for r in rows)
    assert main([str(path), "--max-skip", "0.5"]) == 0  # records read + skipped still equal the input


def test_the_all_skipped_error_shows_its_first_skipped_lines(write_jsonl, capsys):
    path = write_jsonl(["{broken", {"question": "x"}])
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "no record could be analysed" in err and f"{path}:1: not valid JSON" in err and f"{path}:2" in err


def test_skipped_out_csv_lists_every_skip(write_jsonl, tmp_path):
    import csv

    path = write_jsonl([GOOD, *["{broken"] * 7, *[GOOD] * 200])
    out = tmp_path / "skipped.csv"
    assert main([str(path), "--skipped-out", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [int(r["line"]) for r in rows] == list(range(2, 9)) and {r["reason"] for r in rows} == {"malformed_json"}


@pytest.mark.cli
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "no such file; check the path"),
        ("empty.jsonl", b"", "the file is empty"),
        ("blank.jsonl", b"\n\n", "no records (only blank lines)"),
        ("x.csv", b"a,b", "unknown file type"),
        ("a.json", b'[{"text": "a"},', "a.json:1:16: not valid JSON"),
        ("o.json", b'{"text": "a"}', "expected a JSON array"),
        ("t.jsonl.gz", gzip.compress(b'{"text": "a"}\n' * 50)[:40], "cannot decompress"),
    ],
)
def test_bad_files_are_one_line_errors_without_traceback(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "analyze", str(path)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lengthscan: error: ") and message in err[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.cli
def test_unloadable_tokenizer_is_one_line(tmp_path, write_jsonl):
    proc = subprocess.run(
        [sys.executable, "-m", "analyze", str(write_jsonl([GOOD])), "--tokenizer", str(tmp_path / "nope")],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "tokenizer folder" in line and "does not exist" in line and "--tokenizer" in line


@pytest.mark.integration
def test_no_chat_template_is_a_clear_error_unless_given(tmp_path, write_jsonl, capsys):
    folder = tmp_path / "plain-tok"
    from analyze.tokenizer import load_tokenizer

    tok = load_tokenizer("bundled:qwen3")
    tok.save_pretrained(folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    for extra in folder.glob("chat_template.*"):
        extra.unlink()
    data = str(write_jsonl([GOOD]))
    assert main([data, "--tokenizer", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "no chat template" in err and "--chat-template FILE" in err
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}")
    assert main([data, "--tokenizer", str(folder), "--chat-template", str(template), "--json"]) == 0
    # plain text needs no template
    assert main([str(write_jsonl([{"text": "hello"}], "t.jsonl")), "--tokenizer", str(folder), "--json"]) == 0


def test_nothing_analysable_is_an_error(write_jsonl, capsys):
    assert main([str(write_jsonl(["{bad", "{worse"]))]) == 2
    assert "no record could be analysed: 2 of 2 records skipped (100.0%): malformed_json 2" in capsys.readouterr().err


def test_a_json_arrays_bad_element_is_named_by_its_number_not_a_line(tmp_path, qwen3):
    """In a JSON array N counts elements, not lines: the message says `record N` (element 2 starts on line 14)."""
    path = tmp_path / "data.json"
    path.write_text(json.dumps([GOOD, {"question": "Hi", "answer": "Hello"}, GOOD], indent=2))
    assert path.read_text().splitlines()[14].strip() == '"question": "Hi",'  # element 2 is nowhere near line 2
    result = tokenize_files([path], qwen3)
    assert result.skips.counts == {"unknown_format": 1}
    (example,) = result.skips.examples
    assert f"{path} record 2: " in example and f"{path}:2" not in example
