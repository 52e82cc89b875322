"""The config write-back survives SIGKILL at any moment, and a concurrent reader never sees half a file.

A helper process (tests/_kill_writer.py) rewrites the config in a tight loop, alternating two versions; it is
killed at random moments. After every kill the file must be, byte for byte, the user's original or one of the two
complete versions, with the user's comments in place. Hidden temporary files (`.run.yaml.*.tmp`) from a write that
was cut short may stay behind: they are never read, and the config itself is whole.
"""

import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analyze.config import load_config
from analyze.config_write import update_config
from tests._kill_writer import VERSIONS

pytestmark = pytest.mark.kill

WRITER = Path(__file__).with_name("_kill_writer.py")
KILLS = 40
USER_CONFIG = """\
# my run on the office T4 -- keep this comment
model: Qwen/Qwen3-1.7B   # the base
lora:
  r: 32     # tried the first lever
  alpha: 32
optim:
  learning_rate: 1e-4  # lower
"""
COMMENTS = ("# my run on the office T4 -- keep this comment", "# the base", "# tried the first lever", "# lower")


def complete_versions(tmp_path: Path) -> dict[str, str]:
    """The three texts the config may hold: the original, then what the writer's A and B writes make of it."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path = scratch / "run.yaml"
    path.write_text(USER_CONFIG)
    texts = {"original": USER_CONFIG}
    for name, (value, source) in zip("ABA", [*VERSIONS, VERSIONS[0]], strict=True):
        update_config(path, {"max_length": value, "max_length_source": source})
        assert texts.setdefault(name, path.read_text()) == path.read_text()  # A after B is A again
    assert len(set(texts.values())) == 3
    return {text: name for name, text in texts.items()}


def start_writer(path: Path, *stall: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(WRITER), str(path), *stall], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def test_config_is_old_or_new_after_sigkill_and_never_half_to_a_reader(tmp_path):
    versions = complete_versions(tmp_path)
    path = tmp_path / "run.yaml"
    path.write_text(USER_CONFIG)

    # a concurrent reader, reading the file in a tight loop for the whole test
    seen: dict[str, int] = {}
    bad: list[str] = []
    stop = threading.Event()

    def read_loop():
        while not stop.is_set():
            text = path.read_text()
            name = versions.get(text)
            if name is None:
                bad.append(text)
            else:
                seen[name] = seen.get(name, 0) + 1

    reader = threading.Thread(target=read_loop)
    reader.start()
    rng = random.Random(7)
    after_kill: dict[str, int] = {}
    try:
        for _ in range(KILLS):
            proc = start_writer(path)
            time.sleep(rng.uniform(0, 0.05))
            proc.kill()
            proc.wait()
            proc.stdout.close()
            text = path.read_text()
            assert text in versions, f"config is neither old nor new after SIGKILL:\n{text[:500]}"
            after_kill[versions[text]] = after_kill.get(versions[text], 0) + 1
            assert all(c in text for c in COMMENTS)
            cfg = load_config(path)  # it parses, and train would accept it
            assert (cfg.max_length, cfg.max_length_source) in [(512, None), *VERSIONS]
    finally:
        stop.set()
        reader.join()

    assert not bad, f"a concurrent reader saw a partial config {len(bad)} times, e.g.:\n{bad[0][:500]}"
    assert seen.get("A") and seen.get("B"), seen  # the reader did overlap the writes
    assert after_kill.get("A") and after_kill.get("B"), after_kill  # kills landed at different points
    leftovers = {p.name for p in tmp_path.iterdir()} - {"run.yaml", "scratch"}
    assert all(n.startswith(".run.yaml.") and n.endswith(".tmp") for n in leftovers), leftovers


@pytest.mark.parametrize(("point", "expected"), [("before_rename", "original"), ("after_rename", "A")])
def test_a_kill_inside_the_write_leaves_the_old_or_the_new_file(tmp_path, point, expected):
    """Random kills rarely land in the few microseconds around the rename; these two land there for sure."""
    versions = complete_versions(tmp_path)
    path = tmp_path / "run.yaml"
    path.write_text(USER_CONFIG)
    proc = start_writer(path, point)
    assert proc.stdout.readline() == "stalled\n"
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert versions.get(path.read_text()) == expected
    strays = list(tmp_path.glob(".run.yaml.*.tmp"))
    if point == "before_rename":  # the new version was complete in its temporary file, never in the config
        assert [versions.get(p.read_text()) for p in strays] == ["A"]
    else:
        assert strays == []
