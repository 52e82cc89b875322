"""The repository's own promises: CI runs the README's test command; what the README and docs/ show — the sample
report, the Python example, the default config, stated defaults, links — is what the code does today."""

import re

import pytest

from tests.conftest import REPO

TEST_COMMAND = 'pip install -e ".[train,plot,test,trl]" && ruff check . && ruff format --check . && pytest -m ""'


def readme() -> str:
    return (REPO / "README.md").read_text()


def section(text: str, heading: str) -> str:
    """The text under `heading` (a whole heading line, e.g. "## Tests") up to the next heading of any level; a `#`
    line inside a code block is no heading."""
    lines, fenced = [], False
    for line in text.split(f"\n{heading}\n", 1)[1].splitlines():
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#{1,6} ", line):
            break
        lines.append(line)
    return "\n".join(lines)


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)\n```", text, re.S)


def test_ci_runs_the_readme_test_command():
    """.ci/run runs the README's test command, and that command is everything: ruff and every tier of the tests."""
    (test,) = blocks(section(readme(), "## Tests"), "bash")
    assert test == TEST_COMMAND  # the line users copy, exactly
    assert test in (REPO / ".ci" / "run").read_text().splitlines()
    assert test.endswith(' && pytest -m ""')  # every tier: a plain `pytest` runs the fast one only
    assert blocks((REPO / "docs" / "tests.md").read_text(), "bash")[0] == test


def test_readme_set_up_runs_lengthscan_on_the_bundled_sample():
    (setup,) = blocks(section(readme(), "## Set up"), "bash")
    install, run = setup.splitlines()
    assert install.startswith("pip install ")
    path = run.split()[1]
    assert run.startswith("lengthscan data/") and (REPO / path).is_file()


@pytest.mark.integration
def test_readme_example_report_is_current(capsys, monkeypatch):
    """The report shown in the README is, line for line, what the bundled sample gives today (at 120 columns)."""
    from analyze.cli import main

    (shown,) = blocks(section(readme(), "## The report"), "text")
    command, *lines = shown.splitlines()
    assert command == "$ lengthscan data/hh-rlhf-helpful-base-test.messages.jsonl"
    monkeypatch.setenv("COLUMNS", "120")
    assert main([str(REPO / "data" / "hh-rlhf-helpful-base-test.messages.jsonl")]) == 0
    out = [line.rstrip() for line in capsys.readouterr().out.rstrip("\n").splitlines()]
    assert lines == out, "README's sample report is stale: paste the output of `COLUMNS=120 lengthscan data/...`"


@pytest.mark.integration
def test_readme_python_example_runs_as_written(capsys, monkeypatch):
    """The README's Python example, exec'd exactly as written from the repository root, prints the suggestion the
    README's sample report shows."""
    (code,) = blocks(section(readme(), "## In Python"), "python")
    monkeypatch.chdir(REPO)
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    suggested = re.search(r"suggested max_length (\d+)", section(readme(), "## The report")).group(1)
    assert f"suggested max_length {suggested} - " in out
    assert "at max_length 1,024: 0.0% of records cut" in out


def test_docs_show_the_current_default_config():
    from analyze.config import default_yaml

    (block,) = blocks(section((REPO / "docs" / "config.md").read_text(), "## The defaults"), "yaml")
    assert block + "\n" == default_yaml()


def test_the_docs_list_every_gpu_of_the_memory_plan_with_its_memory():
    """docs/train.md restates the GPU table for readers; it must say what `analyze.memory.GPUS` says."""
    from analyze.gpus import GPUS

    text = " ".join((REPO / "docs" / "train.md").read_text().split())  # lines joined: a pair may wrap
    missing = [f"{name} {gib:.2f}" for name, gib in GPUS.items() if f"{name} {gib:.2f}" not in text]
    assert not missing, f"docs/train.md lacks {missing}"


def test_defaults_the_option_table_states_are_the_configs():
    """Where docs/lengthscan.md's option table says "(default X; config KEY)", X is the config's own default for KEY."""
    from analyze.config import DEFAULTS

    stated = re.findall(r"default ([^;)]+); config `([a-z_.]+)`", (REPO / "docs" / "lengthscan.md").read_text())
    assert len(stated) >= 3, "the pattern no longer matches docs/lengthscan.md's option table: update this test"
    wrong = [(key, value) for value, key in stated if str(DEFAULTS[key]) != value]
    assert not wrong, f"docs/lengthscan.md states other defaults than the config: {wrong}"


def test_defaults_the_train_key_tables_state_are_the_configs():
    """docs/train.md's tables of keys, "| `KEY` | `DEFAULT` | meaning |", state the config's own defaults."""
    from ruamel.yaml import YAML

    from analyze.config import DEFAULTS

    row = r"^\| (`[a-z_.]+`(?: / `[a-z_.]+`)*) \| `([^`]*)` \|"  # | `KEY` | `DEFAULT` |, or | `KEY` / `KEY` | …
    rows = re.findall(row, (REPO / "docs" / "train.md").read_text(), re.M)
    assert len(rows) >= 10, "the pattern no longer matches docs/train.md's key tables: update this test"
    yaml = YAML(typ="safe")
    wrong = [
        (key, value)
        for keys, value in rows
        for key in re.findall(r"`([a-z_.]+)`", keys)
        if yaml.load(value) != DEFAULTS[key]
    ]
    assert not wrong, f"docs/train.md states other defaults than the config: {wrong}"


def test_lengthscan_lists_every_flag_the_option_table_names(capsys):
    """Every flag docs/lengthscan.md documents is one `lengthscan --help` lists."""
    from analyze.cli import main

    table = section((REPO / "docs" / "lengthscan.md").read_text(), "## Options")
    flags = set(re.findall(r"`(--[a-z][a-z-]*)", table))
    assert len(flags) >= 20, "the pattern no longer matches docs/lengthscan.md's option table: update this test"
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", capsys.readouterr().out))
    assert flags <= listed, f"docs/lengthscan.md names flags `lengthscan --help` does not list: {flags - listed}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_readme_and_docs_resolve():
    """Every relative link in README.md and docs/*.md names a file that exists and, with #anchor, a heading in it;
    the README links every page of docs/."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # https: and other schemes
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and file.suffix == ".md":
                headings = re.findall(r"^#{1,6} (.+)$", file.read_text(), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page.name}: {target}")
    assert not broken, f"links that do not resolve: {broken}"
    linked = set(re.findall(r"\]\(docs/([^)#]+)", readme()))
    assert linked >= {p.name for p in (REPO / "docs").glob("*.md")}, "README does not link every page of docs/"
