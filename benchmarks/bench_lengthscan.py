"""How fast is lengthscan, against the fast tokenizer's own limit and a hand-written loop? All in one run.

    python benchmarks/bench_lengthscan.py                 # bundled sample + 50k and 200k conversations
    python benchmarks/bench_lengthscan.py --large 400000  # bigger

For each input it times, on the same data:
  raw     the fast tokenizer's batch encoding of the pre-rendered conversations (rendering not timed): the limit
  loop    `apply_chat_template(messages, tokenize=True)` per record, what a user writes by hand
          (on the first --loop-sample records; a rate per token, so it compares)
  e2e     `lengthscan FILE --json --no-cache` as a subprocess: start-up, reading, rendering, encoding, supervised
          spans, statistics, candidates — everything
  cached  the same command run again with the cache: the first run stores token ids, the second reads them
          (neither transformers nor the tokenizer is loaded then)
and prints tokens per second, the ratios, and peak memory (this process and its worker processes); where the time
goes on the medium input, stage by stage in one process (read, normalise, render, encode, locate the supervised
turns, statistics) and what moving chunks to worker processes costs (pickling both ways); `lengthscan --help` and
`--version` start-up; packing 1M real-distributed lengths. Large inputs repeat the bundled sample (real data).
The last line is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "hh-rlhf-helpful-base-test.messages.jsonl"

MEASURE = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr[-2000:], "peak_kb": kids}))
"""


def timed_lengthscan(path: Path, *flags: str, env: dict) -> dict:
    """Run lengthscan in a fresh process; wall time and the largest resident set of it and its workers."""
    cmd = [sys.executable, "-c", MEASURE, sys.executable, "-m", "analyze", str(path), "--json", *flags]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout)
    if out["rc"] != 0:
        raise SystemExit(f"lengthscan failed: {out['stderr']}")
    out["doc"] = json.loads(out["stdout"])
    return out


def repeat_sample(n: int, folder: Path) -> Path:
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    path = folder / f"sample-x{n}.jsonl"
    with open(path, "wb") as f:
        for i in range(n):
            f.write(lines[i % len(lines)])
    return path


def raw_and_loop(path: Path, loop_sample: int) -> tuple[float, float, int]:
    """Tokens/s of the raw batch encoding of pre-rendered texts, and of the per-record loop."""
    from analyze.tokenizer import load_tokenizer

    tok = load_tokenizer("bundled:qwen3")
    convs = [json.loads(line)["messages"] for line in path.open()]
    texts = tok.apply_chat_template(convs, tokenize=False)  # not timed: the limit is encoding alone
    encode = tok.backend_tokenizer.encode_batch_fast
    raw_s = []
    for step in (len(texts), 1024):  # one call for everything, and calls of 1,024: the faster one is the limit
        t = time.perf_counter()
        total = sum(
            len(e) for i in range(0, len(texts), step) for e in encode(texts[i : i + step], add_special_tokens=False)
        )
        raw_s.append(time.perf_counter() - t)
    raw_s = min(raw_s)
    del texts
    few = convs[:loop_sample]
    t = time.perf_counter()
    loop_tokens = sum(len(tok.apply_chat_template(c, tokenize=True)["input_ids"]) for c in few)
    loop_s = time.perf_counter() - t
    return total / raw_s, loop_tokens / loop_s, total


def bench_input(name: str, path: Path, loop_sample: int, cache_dir: Path) -> dict:
    env = dict(os.environ, LENGTHSCAN_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
    raw, loop, total = raw_and_loop(path, loop_sample)
    e2e = timed_lengthscan(path, "--no-cache", env=env)
    assert e2e["doc"]["tokens"]["total"] == total, "lengthscan and the raw encoding disagree on the token count"
    first = timed_lengthscan(path, env=env)  # stores the cache entry
    second = timed_lengthscan(path, env=env)
    e2e_rate = total / e2e["wall"]
    return {
        "input": name,
        "records": e2e["doc"]["records"],
        "tokens": total,
        "raw_tok_s": raw,
        "loop_tok_s": loop,
        "e2e_tok_s": e2e_rate,
        "e2e_s": e2e["wall"],
        "e2e_vs_raw": e2e_rate / raw,
        "e2e_vs_loop": e2e_rate / loop,
        "first_cached_run_s": first["wall"],
        "second_run_s": second["wall"],
        "second_vs_first": second["wall"] / first["wall"],
        "peak_mb": e2e["peak_kb"] / 1024,
    }


def profile_stages(path: Path) -> dict:
    """Seconds per stage of the pipeline over `path` in this process on one core (as each of lengthscan's worker
    processes runs it), and the pickling a worker pool adds."""
    import pickle

    from analyze.formats import to_example
    from analyze.pipeline import CHUNK, encode_chunk
    from analyze.reader import RecordReader, parse_record
    from analyze.render import Renderer
    from analyze.tokenizer import load_tokenizer

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread, as in a worker process
    times = dict.fromkeys(("read", "normalise", "render", "encode", "spans", "transfer"), 0.0)
    renderer = Renderer(load_tokenizer("bundled:qwen3"))
    t = time.perf_counter()
    raw = list(RecordReader([path]))
    times["read"] = time.perf_counter() - t
    t = time.perf_counter()
    examples = [to_example(parse_record(r)) for _, _, r in raw]
    times["normalise"] = time.perf_counter() - t
    for start in range(0, len(examples), CHUNK):
        part = examples[start : start + CHUNK]
        t = time.perf_counter()
        texts = [renderer.render(e) for e in part]
        t1 = time.perf_counter()
        encodings = renderer.encode_batch(part, texts)
        t2 = time.perf_counter()
        renderer.finish(part, texts, encodings, keep_ids=True)
        t3 = time.perf_counter()
        times["render"] += t1 - t
        times["encode"] += t2 - t1
        times["spans"] += t3 - t2
    from analyze.formats import Options

    items = raw[:CHUNK]
    t = time.perf_counter()
    chunk = encode_chunk(renderer, items, Options(), keep_ids=True)
    one = time.perf_counter() - t
    t = time.perf_counter()
    pickle.loads(pickle.dumps(items))
    pickle.loads(pickle.dumps(chunk))
    times["transfer"] = (time.perf_counter() - t) * len(raw) / max(len(items), 1)
    times["chunk_total_per_1024"] = one
    return {k: round(v, 2) for k, v in times.items()}


LOAD = "import time; t = time.perf_counter(); from analyze.tokenizer import load_tokenizer; load_tokenizer('{}'); "
LOAD += "print(time.perf_counter() - t)"


def tokenizer_load() -> float:
    """Wall seconds a fresh process takes to import transformers and load the tokenizer (the best of three): what
    a first run pays before it can render anything."""
    runs = [float(subprocess.run([sys.executable, "-c", LOAD.format("bundled:qwen3")], capture_output=True,
                                 text=True, check=True).stdout) for _ in range(3)]  # fmt: skip
    return round(min(runs), 2)


def startup(*flags: str) -> float:
    """Wall seconds of `lengthscan FLAGS` (the best of three)."""
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "analyze", *flags], capture_output=True, check=True)
        runs.append(time.perf_counter() - t)
    return round(min(runs), 3)


def bench_packing(n: int = 1_000_000) -> list[dict]:
    """Pack n lengths drawn from the bundled sample's real lengths; time and rows against the lower bound."""
    from analyze.packing import pack
    from analyze.pipeline import tokenize_files
    from analyze.tokenizer import load_tokenizer

    real = tokenize_files([SAMPLE], load_tokenizer("bundled:qwen3")).table.tokens
    out = []
    for max_length in (512, 1024, 2048):
        lengths = np.minimum(np.random.default_rng(0).choice(real, size=n), max_length)
        t = time.perf_counter()
        rows = len(pack(lengths, max_length))
        seconds = time.perf_counter() - t
        bound = math.ceil(int(lengths.sum()) / max_length)
        out.append({"max_length": max_length, "lengths": n, "seconds": seconds, "rows": rows, "lower_bound": bound,
                    "over_bound": rows / bound - 1})  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--medium", type=int, default=50_000, help="conversations in the medium input")
    p.add_argument("--large", type=int, default=200_000, help="conversations in the large input")
    p.add_argument("--loop-sample", type=int, default=5_000, help="records timed in the per-record loop")
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = [("bundled sample", SAMPLE)]
        inputs += [(f"{n:,} conversations", repeat_sample(n, tmp)) for n in (args.medium, args.large)]
        for name, path in inputs:
            print(f"… {name}", flush=True)
            rows.append(bench_input(name, path, args.loop_sample, tmp / "cache"))
    print()
    print(f"{'input':<24}{'tokens':>12}{'raw tok/s':>12}{'loop tok/s':>12}{'e2e tok/s':>12}{'e2e/raw':>9}"
          f"{'e2e/loop':>9}{'2nd/1st':>9}{'peak MB':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['input']:<24}{r['tokens']:>12,}{r['raw_tok_s']:>12,.0f}{r['loop_tok_s']:>12,.0f}"
              f"{r['e2e_tok_s']:>12,.0f}{r['e2e_vs_raw']:>9.2f}{r['e2e_vs_loop']:>9.2f}{r['second_vs_first']:>9.2f}"
              f"{r['peak_mb']:>9,.0f}")  # fmt: skip
    print()
    packing = bench_packing()
    for r in packing:
        print(f"packing {r['lengths']:,} lengths at max_length {r['max_length']}: {r['seconds']:.2f} s, "
              f"{r['rows']:,} rows, lower bound {r['lower_bound']:,} (+{r['over_bound']:.2%})")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        stages = profile_stages(repeat_sample(args.medium, Path(tmp)))
    print(f"where the time goes, {args.medium:,} conversations in one process (s): {stages}")
    # No tokenization as the trainer does can skip loading the tokenizer, rendering and encoding: with rendering and
    # encoding spread perfectly over every core and nothing else done, e2e / raw is at most raw's time over that.
    stages["tokenizer_load"] = tokenizer_load()
    medium = rows[1]
    raw_s = medium["tokens"] / medium["raw_tok_s"]
    floor_s = stages["tokenizer_load"] + (stages["render"] + stages["encode"]) / (os.cpu_count() or 1)
    stages["e2e_floor_s"] = round(floor_s, 2)
    stages["e2e_vs_raw_ceiling"] = round(raw_s / floor_s, 2)
    print(
        f"ceiling for e2e / raw at {args.medium:,}: raw {raw_s:.2f} s against {floor_s:.2f} s (loading the tokenizer "
        f"{stages['tokenizer_load']} s, then rendering and encoding on every core) = {stages['e2e_vs_raw_ceiling']}"
    )
    starts = {"help_s": startup("--help"), "version_s": startup("--version")}
    print(f"start-up: --help {starts['help_s']} s, --version {starts['version_s']} s")
    print(json.dumps({"inputs": rows, "stages": stages, "startup": starts, "packing": packing}))


if __name__ == "__main__":
    main()
