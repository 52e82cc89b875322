"""Every command in the ```bash blocks of the README and docs/plots.md, run as a user types it, from a folder laid out
like the repository root (the bundled sample at data/…, the notebook at notebooks/), in the document's order: exit
status 0 and what the document says it does.

`lengthscan`, `train` and `papermill` run as `python -m analyze`, `python -m train` and `python -m papermill`: the
same `main` the console scripts call (pyproject.toml's [project.scripts]), with this checkout's code whichever
checkout installed the scripts. A command that cannot run here is named below with the reason; a command these
documents gain that this file does not know fails the first test.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE
from tests.test_repo import TEST_COMMAND, blocks, readme, section

PROGRAMS = {
    "lengthscan": [sys.executable, "-m", "analyze"],
    "train": [sys.executable, "-m", "train"],
    "papermill": [sys.executable, "-m", "papermill"],
}
DOCUMENTS = ["README.md", "docs/plots.md"]
NOTEBOOK = "notebooks/length_histogram.ipynb"

NOT_RUN = {
    'pip install ".[train]"': "installs the package: CI's job (.ci/run installs it before any test runs)",
    TEST_COMMAND: "CI's whole run: .ci/run runs exactly this line (tests/test_repo.py checks it is the README's)",
}
# run with a flag appended, and why
CHANGED = {
    "train --config run.yaml": (
        "--dry-run",
        "the real run needs a CUDA GPU and hours; --dry-run resolves the same config, data, schedule and memory plan",
    ),
}


def commands(text: str) -> list[str]:
    """The command lines of the ```bash blocks in `text` (indented ones too, as in a list), each without its trailing
    `# comment`."""
    fenced = [textwrap.dedent(b) for _, b in re.findall(r"^( *)```bash\n(.*?)\n\1```$", text, re.S | re.M)]
    return [re.sub(r"\s+#\s.*$", "", line) for block in fenced for line in block.splitlines() if line]


def plots_md() -> str:
    return (REPO / "docs" / "plots.md").read_text()


def suggested() -> int:
    """The suggested max_length of the README's sample report."""
    return int(re.search(r"suggested max_length (\d+)", section(readme(), "## The report")).group(1))


# What each command run as written must show, given its finished process and the working folder.
def _report(proc: subprocess.CompletedProcess, _folder: Path) -> None:
    """`lengthscan FILE` prints the README's sample report, line for line (tests/test_repo.py checks it in-process)."""
    (shown,) = blocks(section(readme(), "## The report"), "text")
    assert [line.rstrip() for line in proc.stdout.rstrip("\n").splitlines()] == shown.splitlines()[1:]


def _write_config(proc: subprocess.CompletedProcess, folder: Path) -> None:
    from analyze.config import load_config

    cfg = load_config(folder / "run.yaml")  # "max_length + data.train"; paths are read relative to the file
    assert cfg.max_length == suggested() and [Path(p) for p in cfg.data.train] == [folder / "data" / SAMPLE.name]
    assert f"created run.yaml: max_length = {suggested()}" in proc.stdout + proc.stderr


def _dry_run(proc: subprocess.CompletedProcess, folder: Path) -> None:
    """The README: "rows, eval, steps and schedule; no model loaded"."""
    out = proc.stdout + proc.stderr
    for line in ("packed: 2241 conversations in", "eval: 112 conversations", "steps per epoch:", "schedule:"):
        assert line in out
    assert re.search(rf"^  max_length +=  ?{suggested()}  \(run\.yaml, set by lengthscan", out, re.M)
    assert "dry run: stopped before loading the model" in out and not (folder / "runs" / "lengthscan").exists()


def _smoke(proc: subprocess.CompletedProcess, folder: Path) -> None:
    run = folder / "runs" / "lengthscan-smoke"
    assert (run / "adapter" / "adapter_model.safetensors").is_file() and (run / "log.csv").is_file()
    assert 'adapter = "runs/lengthscan-smoke/adapter"' in proc.stdout  # how to use what it trained


def _plot(proc: subprocess.CompletedProcess, folder: Path) -> None:
    png = folder / "runs" / "lengthscan" / "loss_curve.png"
    assert "wrote runs/lengthscan/loss_curve.png" in proc.stdout + proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _watch_run(proc: subprocess.CompletedProcess, _folder: Path) -> None:
    assert "train watch: runs/lengthscan/log.csv" in proc.stdout and "verdict at step 8:" in proc.stdout


def _watch_checkpoint(proc: subprocess.CompletedProcess, _folder: Path) -> None:
    out = proc.stdout
    assert "train watch: path/to/checkpoint-1200/trainer_state.json" in out and "verdict at step 8:" in out


def _figure(proc: subprocess.CompletedProcess, folder: Path) -> None:
    """docs/plots.md: "a 1300 × 600 pixel PNG", beside the usual report."""
    png = (folder / "lengths.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (int.from_bytes(png[16:20]), int.from_bytes(png[20:24])) == (1300, 600)
    assert "2,354 analysed" in proc.stdout


def _notebook(analysed: str):
    def check(_proc: subprocess.CompletedProcess, folder: Path) -> None:
        text = (folder / "out.ipynb").read_text(encoding="utf-8")
        assert analysed in text and text.count('"image/png"') == 4  # the report and all four figures

    return check


CHECKS = {
    "lengthscan data/hh-rlhf-helpful-base-test.messages.jsonl": _report,
    "lengthscan data/hh-rlhf-helpful-base-test.messages.jsonl --write-config run.yaml": _write_config,
    "train --config run.yaml --dry-run": _dry_run,
    "train --config run.yaml --smoke": _smoke,
    "train --config run.yaml": _dry_run,  # with --dry-run (CHANGED)
    "train plot runs/lengthscan": _plot,
    "train watch runs/lengthscan": _watch_run,
    "train watch path/to/checkpoint-1200": _watch_checkpoint,
    # docs/plots.md
    "lengthscan data/hh-rlhf-helpful-base-test.messages.jsonl --plot lengths.png": _figure,
    f"papermill {NOTEBOOK} out.ipynb -p DATA_FILES mine.jsonl -p MAX_LENGTH 1024": _notebook("200 analysed"),
    f"papermill {NOTEBOOK} out.ipynb -p DATA_FILES HuggingFaceH4/no_robots -p SAMPLE 20000": _notebook("300 of 300"),
}


# Folders the README's commands name that only a GPU run or another trainer makes: stand-ins made just before.
def _real_run_folder(folder: Path) -> None:
    """runs/lengthscan is the real run's folder (GPU): the smoke run's stands in, its loss figure removed so that
    `train plot` must draw it again."""
    shutil.copytree(
        folder / "runs" / "lengthscan-smoke",
        folder / "runs" / "lengthscan",
        ignore=shutil.ignore_patterns("smoke-model", "checkpoint-*", "loss_curve.png"),
    )


def _foreign_checkpoint(folder: Path) -> None:
    """path/to/checkpoint-1200 is any Hugging Face Trainer's checkpoint: the smoke run's last one (a
    transformers Trainer's own trainer_state.json and adapter_config.json) stands in."""
    last = folder / "runs" / "lengthscan-smoke" / "checkpoint-8"  # the smoke run's 8 steps, saved every 4
    target = folder / "path" / "to" / "checkpoint-1200"
    target.mkdir(parents=True)
    for name in ("trainer_state.json", "adapter_config.json"):
        shutil.copy(last / name, target / name)


def _mine(folder: Path) -> None:
    """mine.jsonl is your file: the sample's first 200 conversations."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "mine.jsonl").write_text("".join(lines[:200]), encoding="utf-8")


def _hub_dataset(folder: Path) -> None:
    """HuggingFaceH4/no_robots is on the hub, which tests never reach: a folder of that name, laid out like the
    hub's dataset repository (parquet under data/), stands in; a local folder is read before a hub id of its name,
    through the same code as a downloaded hub dataset. 300 conversations: SAMPLE 20000 takes them all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    repo = folder / "HuggingFaceH4" / "no_robots"
    (repo / "data").mkdir(parents=True)
    records = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()[:300]]
    pq.write_table(pa.Table.from_pylist(records), repo / "data" / "train-00000-of-00001.parquet")
    (repo / "README.md").write_text("---\nlicense: mit\n---\n")


BEFORE = {
    "train plot runs/lengthscan": _real_run_folder,
    "train watch path/to/checkpoint-1200": _foreign_checkpoint,
    f"papermill {NOTEBOOK} out.ipynb -p DATA_FILES mine.jsonl -p MAX_LENGTH 1024": _mine,
    f"papermill {NOTEBOOK} out.ipynb -p DATA_FILES HuggingFaceH4/no_robots -p SAMPLE 20000": _hub_dataset,
}


def test_every_documented_command_is_known_here():
    """A command added to the README or docs/plots.md fails here until this file runs it (CHECKS) or says why not
    (NOT_RUN)."""
    found = [c for doc in DOCUMENTS for c in commands((REPO / doc).read_text())]
    assert len(found) == len(set(found))
    unknown = [c for c in found if c not in CHECKS and c not in NOT_RUN]
    assert not unknown, f"commands this test does not run: {unknown}; add them to CHECKS or NOT_RUN"
    assert set(CHANGED) <= set(CHECKS) and not set(CHECKS) & set(NOT_RUN) and set(BEFORE) <= set(CHECKS)
    assert set(CHECKS) | set(NOT_RUN) == set(found), "commands no longer in the documents: drop them here"
    assert {shlex.split(c)[0] for c in CHECKS} <= set(PROGRAMS)


def test_python_m_runs_what_the_console_scripts_run():
    """`python -m analyze` / `python -m train` call the main that pyproject.toml's `lengthscan` / `train` scripts
    name, so running them so is running the commands as written."""
    scripts = (REPO / "pyproject.toml").read_text()
    for program, package in (("lengthscan", "analyze"), ("train", "train")):
        assert f'{program} = "{package}.cli:main"' in scripts
        main = (REPO / package / "__main__.py").read_text()
        assert f"from {package}.cli import main\n\nraise SystemExit(main())" in main


@pytest.fixture
def folder(tmp_path):
    """A folder laid out like the repository root: the bundled sample and the notebook at the paths shown."""
    (tmp_path / "data").mkdir()
    shutil.copy(SAMPLE, tmp_path / "data" / SAMPLE.name)
    (tmp_path / "notebooks").mkdir()
    shutil.copy(REPO / NOTEBOOK, tmp_path / NOTEBOOK)
    return tmp_path


def run(command: str, folder: Path) -> None:
    """Run one README command in `folder` as written (or as CHANGED says), then its checks."""
    if command in NOT_RUN:
        return
    if command in BEFORE:
        BEFORE[command](folder)
    program, *args = shlex.split(command)
    if command in CHANGED:
        args.append(CHANGED[command][0])
    env = {**os.environ, "COLUMNS": "120", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        PROGRAMS[program] + args, cwd=folder, env=env, capture_output=True, text=True, timeout=900
    )  # fmt: skip
    assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    CHECKS[command](proc, folder)


@pytest.mark.cli
def test_set_up(folder):
    for command in commands(section(readme(), "## Set up")):
        run(command, folder)


@pytest.mark.training
def test_training_in_five_commands_then_watching_the_run(folder):
    """`train --smoke` is a real CPU run (about a minute); the other commands read what the ones before wrote."""
    for command in commands(section(readme(), "## Training in five commands")):
        run(command, folder)
    for command in commands(section(readme(), "## Watching a run")):
        run(command, folder)


@pytest.mark.cli
def test_plots_md_main_figure(folder):
    for command in commands(plots_md()):
        if command.startswith("lengthscan "):
            run(command, folder)


@pytest.mark.notebook
def test_plots_md_papermill_on_your_file_and_on_a_dataset(folder):
    """papermill from the shell with `-p DATA_FILES` one path: the notebook makes it a list (tests/test_notebook.py
    runs the list spellings, -p as JSON text and -y)."""
    for command in commands(plots_md()):
        if command.startswith("papermill "):
            run(command, folder)
            (folder / "out.ipynb").unlink()
