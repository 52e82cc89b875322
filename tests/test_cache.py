"""Tokenize once: the cache returns the same table, and never a stale one; workers give the same answer."""

import json

import numpy as np
import pytest

from analyze.errors import UserError
from analyze.pipeline import tokenize_files
from analyze.tokenizer import load_tokenizer

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]}


def same(a, b) -> bool:
    cols = ("file_index", "line", "tokens", "supervised", "span_record", "span_start", "span_end")
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in cols)


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LENGTHSCAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_second_run_reads_the_cache(write_jsonl, qwen3, private_cache):
    path = write_jsonl([GOOD, "{bad", {"text": "plain"}])
    first = tokenize_files([path], qwen3, keep_ids=True)
    second = tokenize_files([path], qwen3, keep_ids=True)
    assert not first.from_cache and second.from_cache
    assert same(first.table, second.table)
    assert np.array_equal(first.table.ids, second.table.ids)
    assert second.skips.counts == first.skips.counts and second.skips.examples == first.skips.examples
    uncached = tokenize_files([path], qwen3, keep_ids=True, cache=False)
    assert same(uncached.table, second.table) and np.array_equal(uncached.table.ids, second.table.ids)


def test_changed_file_is_not_served_stale(write_jsonl, qwen3, private_cache):
    path = write_jsonl([GOOD])
    before = tokenize_files([path], qwen3)
    changed = dict(GOOD, messages=[*GOOD["messages"], {"role": "user", "content": "and more"}])
    path.write_text(json.dumps(changed) + "\n")
    after = tokenize_files([path], qwen3)
    assert not after.from_cache and after.table.tokens[0] > before.table.tokens[0]


def test_changed_tokenizer_is_not_served_stale(tmp_path, write_jsonl, qwen3, private_cache):
    path = write_jsonl([GOOD])
    tokenize_files([path], qwen3)
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}")
    other = load_tokenizer("bundled:qwen3", chat_template_file=template)
    result = tokenize_files([path], other)
    assert not result.from_cache
    assert result.table.tokens[0] == len(other.apply_chat_template(GOOD["messages"], tokenize=True)["input_ids"])
    assert tokenize_files([path], other, fmt="messages").from_cache is False  # the format is part of the key too


def test_strict_fails_on_cached_skips(write_jsonl, qwen3, private_cache):
    path = write_jsonl([GOOD, "{bad"])
    tokenize_files([path], qwen3)
    with pytest.raises(UserError, match=r":2: not valid JSON"):
        tokenize_files([path], qwen3, strict=True)


def test_interrupted_write_leaves_no_entry(write_jsonl, qwen3, private_cache, monkeypatch):
    import analyze.pipeline as pipeline

    path = write_jsonl([GOOD] * 3)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.TableBuilder, "build", boom)
    with pytest.raises(KeyboardInterrupt):
        tokenize_files([path], qwen3)
    assert not any(private_cache.iterdir())  # the half-written entry was removed
    monkeypatch.undo()
    assert not tokenize_files([path], qwen3).from_cache


def test_a_killed_runs_temporary_entry_is_removed_later(write_jsonl, qwen3, private_cache):
    import os
    import time

    private_cache.mkdir(parents=True)
    leftover, running = private_cache / ".abc.killed", private_cache / ".def.running"
    for folder in (leftover, running):
        folder.mkdir()
        (folder / "ids.raw").write_bytes(b"\0" * 64)
    hours_ago = time.time() - 2 * 3600
    os.utime(leftover / "ids.raw", (hours_ago, hours_ago))
    os.utime(leftover, (hours_ago, hours_ago))
    tokenize_files([write_jsonl([GOOD])], qwen3)  # storing a new entry tidies the cache
    assert not leftover.exists() and running.exists()  # a writer still appending is left alone


@pytest.mark.multiprocess
@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_worker_processes_give_the_same_table(qwen3, private_cache, monkeypatch, start):
    import analyze.pipeline as pipeline
    from tests.conftest import SAMPLE

    monkeypatch.setattr(pipeline, "START_METHOD", start)
    here = tokenize_files([SAMPLE], qwen3, keep_ids=True, cache=False, workers=0)
    pool = tokenize_files([SAMPLE], qwen3, keep_ids=True, cache=False, workers=2)
    assert same(here.table, pool.table) and np.array_equal(here.table.ids, pool.table.ids)


RERUN = """
import json, sys
from analyze.cli import main
rc = main(sys.argv[1:] + ["--json"])
print(json.dumps({"rc": rc, "transformers": "transformers" in sys.modules, "tokenizers": "tokenizers" in sys.modules}))
"""


def _run(args, env):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    out = subprocess.run(
        [sys.executable, "-c", RERUN, *map(str, args)], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, **env}, check=True,
    ).stdout  # fmt: skip
    *report, status = out.strip().splitlines()
    return json.loads("\n".join(report)), json.loads(status)


@pytest.mark.cli
def test_a_rerun_on_unchanged_inputs_loads_neither_transformers_nor_the_tokenizer(tmp_path):
    from tests.conftest import SAMPLE

    env = {"LENGTHSCAN_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    first, status = _run([SAMPLE], env)
    assert status == {"rc": 0, "transformers": True, "tokenizers": True}
    again, status = _run([SAMPLE], env)
    assert status == {"rc": 0, "transformers": False, "tokenizers": False}
    assert again == first  # every number, the tokenizer's name and fingerprint included


def test_the_tokenizer_files_key_is_exact(tmp_path, write_jsonl, private_cache):
    """A changed tokenizer file, chat template file or option is a miss, never a stale hit."""
    import shutil

    from analyze.formats import Options
    from analyze.pipeline import cached
    from analyze.tokenizer import BUNDLED, files_fingerprint

    path = write_jsonl([GOOD])
    folder = tmp_path / "tok"
    shutil.copytree(BUNDLED / "qwen3", folder)
    fp = files_fingerprint(str(folder))
    assert cached([path], fp, Options()) is None
    tokenize_files([path], load_tokenizer(str(folder)), files_fp=fp)
    assert cached([path], fp, Options()).from_cache
    assert cached([path], fp, Options(fix_roles=True)) is None
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert files_fingerprint(str(folder), template) not in (fp, None)
    config = folder / "tokenizer_config.json"
    config.write_text(config.read_text().replace("<|im_end|>", "<|im_end|>", 1) + " ")
    assert files_fingerprint(str(folder)) != fp
    assert files_fingerprint("someone/not-cached") is None  # no files here: the slow path decides
