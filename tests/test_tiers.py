"""The test tiers: a plain `pytest` runs the fast one and leaves out every marked tier; docs/tests.md names each."""

import pytest

from tests.conftest import REPO


def test_the_default_run_leaves_out_every_registered_tier_and_the_docs_name_them():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    ini = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    tiers = [line.split(":", 1)[0] for line in ini["markers"]]
    addopts = ini["addopts"]
    assert "--strict-markers" in addopts and "--doctest-modules" in addopts
    assert addopts[addopts.index("-m") + 1] == f"not ({' or '.join(tiers)})"
    assert {"tests", "analyze", "train", "benchmarks"} <= set(ini["testpaths"])  # every package's doctests
    section = (REPO / "docs" / "tests.md").read_text().split("\n## Tiers\n", 1)[1].split("\n#", 1)[0]
    missing = [tier for tier in tiers if f"| `{tier}` |" not in section]
    assert not missing, f"docs/tests.md's table of tiers lacks {missing}"
