"""Shared fixtures: the bundled Qwen3 tokenizer, small data files; nothing is downloaded."""

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests must never reach the model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
_CACHE = tempfile.mkdtemp(prefix="lengthscan-test-cache-")
os.environ["LENGTHSCAN_CACHE"] = _CACHE  # never the user's cache; removed when the test session ends
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "hh-rlhf-helpful-base-test.messages.jsonl"


@pytest.fixture(scope="session")
def qwen3():
    from analyze.tokenizer import load_tokenizer

    return load_tokenizer("bundled:qwen3")


@pytest.fixture
def write_jsonl(tmp_path):
    """Write records (dicts, or raw strings/bytes for bad lines) to a .jsonl file and return its path."""

    def write(records, name="data.jsonl"):
        path = tmp_path / name
        with open(path, "wb") as f:
            for r in records:
                if isinstance(r, bytes):
                    f.write(r + b"\n")
                elif isinstance(r, str):
                    f.write(r.encode() + b"\n")
                else:
                    f.write(json.dumps(r).encode() + b"\n")
        return path

    return write


def write_log_csv(folder: Path, train: list, evals: list) -> None:
    """A `train` run's log.csv, as `train.callbacks.CsvLog` writes it, from (step, loss) points of train and eval."""
    rows = {s: [s, loss, ""] for s, loss in train}
    for s, loss in evals:
        rows.setdefault(s, [s, "", ""])[2] = loss
    lines = ["step,train_loss,eval_loss,learning_rate,tokens_per_second,real_token_share"]
    lines += [f"{s},{t},{e},,," for s, t, e in (rows[k] for k in sorted(rows))]
    (Path(folder) / "log.csv").write_text("\n".join(lines) + "\n")
