"""The repository's own promises: CI runs the README's test command; the README's example output is current."""

import re

import pytest

from tests.conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    quick = re.split(r"\n#{2,3} ", text.split("## Quick start", 1)[1], maxsplit=1)[0]  # up to its Tests subsection
    return re.findall(r"```bash\n(.+?)\n```", quick)


def test_ci_runs_the_readme_test_command():
    """.ci/run runs the README's test command, and that command is everything: ruff and every tier of the tests."""
    install_and_run, test = readme_commands()
    assert "lengthscan data/" in install_and_run
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in ci
    assert "ruff check . && ruff format --check . && " in test
    assert test.endswith(' && pytest -m ""')  # every tier: a plain `pytest` runs the fast one only


@pytest.mark.integration
def test_readme_example_report_is_current(capsys):
    """The report shown in the README is what the bundled sample gives today."""
    from analyze.cli import main

    assert main([str(REPO / "data" / "hh-rlhf-helpful-base-test.messages.jsonl")]) == 0
    out = capsys.readouterr().out
    text = (REPO / "README.md").read_text()
    for line in out.splitlines()[:4]:  # header, records, tokens, lengths
        assert line.strip().split("  ·  tokenizer")[-1] in text
    assert re.search(r"suggested max_length \d+", out).group(0) in text


def test_readme_shows_the_current_default_config():
    from analyze.config import default_yaml

    text = (REPO / "README.md").read_text()
    block = text.split("## The config", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    assert block == default_yaml()


def test_the_docs_list_every_gpu_of_the_memory_plan_with_its_memory():
    """docs/train.md restates the GPU table for readers; it must say what `analyze.memory.GPUS` says."""
    from analyze.gpus import GPUS

    text = " ".join((REPO / "docs" / "train.md").read_text().split())  # lines joined: a pair may wrap
    missing = [f"{name} {gib:.2f}" for name, gib in GPUS.items() if f"{name} {gib:.2f}" not in text]
    assert not missing, f"docs/train.md lacks {missing}"


def test_defaults_the_readme_states_are_the_configs():
    """Where README's option table says "(default X; config KEY)", X is the config's own default for KEY."""
    from analyze.config import DEFAULTS

    stated = re.findall(r"default ([^;)]+); config `([a-z_.]+)`", (REPO / "README.md").read_text())
    assert stated, "the pattern no longer matches README's option table: update this test"
    wrong = [(key, value) for value, key in stated if str(DEFAULTS[key]) != value]
    assert not wrong, f"README states other defaults than the config: {wrong}"
