"""Every command in the README's ```bash blocks, run as a user types it, from a folder laid out like the repository
root (the bundled sample at data/…), in the README's order: exit status 0 and what the README says it does.

`lengthscan` and `train` run as `python -m analyze` and `python -m train`: the same `main` the console scripts call
(pyproject.toml's [project.scripts]), with this checkout's code whichever checkout installed the scripts. A command
that cannot run here is named below with the reason; a README command this file does not know fails the first test.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE
from tests.test_repo import TEST_COMMAND, blocks, readme, section

PROGRAMS = {"lengthscan": [sys.executable, "-m", "analyze"], "train": [sys.executable, "-m", "train"]}

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
    """The command lines of the ```bash blocks in `text`, each without its trailing `# comment`."""
    return [re.sub(r"\s+#\s.*$", "", line) for block in blocks(text, "bash") for line in block.splitlines() if line]


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


CHECKS = {
    "lengthscan data/hh-rlhf-helpful-base-test.messages.jsonl": _report,
    "lengthscan data/hh-rlhf-helpful-base-test.messages.jsonl --write-config run.yaml": _write_config,
    "train --config run.yaml --dry-run": _dry_run,
    "train --config run.yaml --smoke": _smoke,
    "train --config run.yaml": _dry_run,  # with --dry-run (CHANGED)
    "train plot runs/lengthscan": _plot,
    "train watch runs/lengthscan": _watch_run,
    "train watch path/to/checkpoint-1200": _watch_checkpoint,
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


BEFORE = {"train plot runs/lengthscan": _real_run_folder, "train watch path/to/checkpoint-1200": _foreign_checkpoint}


def test_every_readme_command_is_known_here():
    """A command added to the README fails here until this file runs it (CHECKS) or says why not (NOT_RUN)."""
    found = commands(readme())
    assert len(found) == len(set(found))
    unknown = [c for c in found if c not in CHECKS and c not in NOT_RUN]
    assert not unknown, f"README commands this test does not run: {unknown}; add them to CHECKS or NOT_RUN"
    assert set(CHANGED) <= set(CHECKS) and not set(CHECKS) & set(NOT_RUN)
    assert set(CHECKS) | set(NOT_RUN) == set(found), "commands no longer in the README: drop them here"


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
    """A folder laid out like the repository root: the bundled sample at the path the README names."""
    (tmp_path / "data").mkdir()
    shutil.copy(SAMPLE, tmp_path / "data" / SAMPLE.name)
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
