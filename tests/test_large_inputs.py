"""Large inputs: a 10 MB message is counted exactly, big files stream in bounded memory, a progress bar shows.

The memory test is slow (it tokenizes 1.25 GB): `pytest -m slow tests/test_large_inputs.py`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from analyze.pipeline import tokenize_files
from tests.conftest import REPO, SAMPLE

# 10 MB of long words, one token each: about 790k tokens, 4 s to encode
LINE = " understanding responsibility implementation international administration communication organization\n"
BIG = LINE * (10_000_000 // len(LINE) + 1)


@pytest.mark.slow
def test_a_10_mb_message_is_analysed_exactly(tmp_path, qwen3):
    assert len(BIG.encode()) >= 10_000_000
    records = [
        {"messages": [{"role": "user", "content": "Write it all."}, {"role": "assistant", "content": BIG}]},
        {"messages": [{"role": "user", "content": BIG}, {"role": "assistant", "content": "Done."}]},
    ]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with ThreadPoolExecutor(1) as pool:  # the reference ids on this core while a worker process does the analysis
        reference = pool.map(lambda r: qwen3.apply_chat_template(r["messages"], tokenize=True)["input_ids"], records)
        result = tokenize_files([path], qwen3, keep_ids=True, cache=False)  # 20 MB: the worker processes' path
        reference = list(reference)
    assert result.records == 2 and result.skips.total == 0
    table = result.table
    for row, (record, expected) in enumerate(zip(records, reference, strict=True)):
        ids = table.row_ids(row)
        assert table.tokens[row] == len(expected) > 750_000
        assert np.array_equal(ids, expected)
        # the supervised tokens are exactly the reply and its end-of-turn token
        mine = table.span_record == row
        spans = zip(table.span_start[mine], table.span_end[mine], strict=True)
        reply = record["messages"][-1]["content"]
        assert [qwen3.decode(ids[s:e]) for s, e in spans] == [reply + "<|im_end|>"]


HOSTILE = [
    b'{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}',
    b"[" * 100_000 + b"]" * 100_000,  # too deep for Python's parser: a skip
    b'{"text": "a \\ud800 lone surrogate"}',
    b'{"text": "big", "n": ' + b"9" * 5000 + b"}",
    b'{"text": "caf\xe9"}',
    b'{"text": "ok", "meta": ' + b"[" * 500 + b"]" * 500 + b"}",
    b"{truncated",
]


@pytest.mark.multiprocess
def test_worker_processes_count_hostile_records_as_in_process(tmp_path, qwen3):
    """Inputs over 16 MB go to worker processes: the same records are analysed and skipped there.

    A JSON array's records travel to the workers already parsed, so a deeply nested one (which pickle cannot
    send) is encoded in the main process instead of failing the run.
    """
    jsonl = tmp_path / "hostile.jsonl"
    jsonl.write_bytes(b"\n".join(HOSTILE * 3) + b"\n")
    array = tmp_path / "hostile.json"
    nested = {"text": "deep", "meta": json.loads("[" * 500 + "]" * 500)}
    array.write_text(json.dumps([{"text": "ok"}, nested, {"text": "a \ud800"}, [1], {"text": "end"}]))
    for path, analysed in ((jsonl, 6), (array, 3)):
        here = tokenize_files([path], qwen3, cache=False, workers=0)
        pool = tokenize_files([path], qwen3, cache=False, workers=2)
        assert here.records == pool.records == analysed
        assert here.skips.counts == pool.skips.counts and here.skips.examples == pool.skips.examples
        assert here.records + here.skips.total == (len(HOSTILE) * 3 if path == jsonl else 5)
        assert np.array_equal(here.table.tokens, pool.table.tokens)


def pty_stderr(cmd: list[str], env: dict) -> str:
    """Run `cmd` with stderr on a pseudo-terminal (as in a shell) and return what it drew there."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, cwd=REPO, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.wait() == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def lengthscan_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "analyze", *args, "--json", "--no-cache"]


@pytest.mark.cli
def test_progress_bar_shows_on_a_terminal():
    drawn = pty_stderr(lengthscan_cmd(str(SAMPLE), "--progress"), dict(os.environ))
    assert "tokenizing" in drawn
    assert re.search(r"\d/2\.2 MB", drawn), drawn  # bytes done of the input's size
    # a 2 MB input finishes in seconds: no bar unless asked (the default threshold is 8 MB)
    assert "tokenizing" not in pty_stderr(lengthscan_cmd(str(SAMPLE)), dict(os.environ))


# ---- bounded memory (slow) -----------------------------------------------------------------------------------------


def repeat_sample(path: Path, size: int) -> int:
    """Write the bundled sample again and again to `path` until it is at least `size` bytes; the records."""
    data = SAMPLE.read_bytes()
    copies = -(-size // len(data))
    with open(path, "wb") as f:
        for _ in range(copies):
            f.write(data)
    return copies * data.count(b"\n")


def peak_rss(cmd: list[str], tmp_path: Path) -> tuple[int, dict]:
    """Peak resident memory (bytes) of `cmd`'s largest process (main or worker), and its JSON output."""
    report = tmp_path / "time.txt"
    proc = subprocess.run(["/usr/bin/time", "-v", "-o", str(report), *cmd], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text()).group(1))
    return kb * 1024, json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs GNU time for the peak memory")
def test_memory_does_not_grow_with_the_input(tmp_path):
    """250 MB and 1 GB of JSONL: peak memory grows only by the per-record length arrays, not with the bytes.

    What may grow: a few int64 columns per record (file, line, tokens, supervised, 3 per assistant span — about
    90 bytes for a record of this sample) and the sorted copies and packing the analysis builds from them; measured
    about 350 bytes a record at the peak (451 MiB at 250 MB, 735 MiB at 1 GB), so the bound allows 400 and 25%.
    A reader that held the file, or the token ids, would add at least the 750 MB of extra input.
    """
    peaks = {}
    for size in (250_000_000, 1_000_000_000):
        path = tmp_path / f"repeated-{size // 1_000_000}MB.jsonl"
        records = repeat_sample(path, size)
        peaks[size], out = peak_rss(lengthscan_cmd(str(path)), tmp_path)
        assert out["records"] + out["skipped"] == records
        path.unlink()
    small, large = peaks.values()
    extra_records = (1_000_000_000 - 250_000_000) / len(SAMPLE.read_bytes()) * SAMPLE.read_bytes().count(b"\n")
    print(f"peak RSS: 250 MB input {small / 2**20:.0f} MiB, 1 GB input {large / 2**20:.0f} MiB")
    assert large <= 1.25 * small + 400 * extra_records, (small, large)
