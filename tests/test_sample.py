"""`--sample`: a seeded random sample analysed exactly, with intervals that cover the whole data's numbers."""

import json

import numpy as np
import pytest

from analyze.analysis import analyze_files, numbers
from analyze.cli import main
from analyze.config import with_values
from analyze.errors import UserError
from analyze.sample import SampleSpec, sample_records
from analyze.schema import Config
from tests.conftest import SAMPLE


def test_reservoir_samples_are_uniform_seeded_and_in_input_order():
    spec = SampleSpec(count=10)
    first, seen = sample_records(iter(range(1000)), spec, seed=3)
    again, _ = sample_records(iter(range(1000)), spec, seed=3)
    assert first == again == sorted(first) and seen == 1000 and len(set(first)) == 10
    hits = np.zeros(100)
    for seed in range(2000):  # every record equally likely: 10 of 100 each time, ~200 hits each
        picked, _ = sample_records(iter(range(100)), spec, seed)
        hits[picked] += 1
    assert hits.min() > 140 and hits.max() < 260


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "1e400"])
def test_bad_sample_values_are_one_line_errors(text):
    with pytest.raises(UserError, match="--sample"):
        SampleSpec.parse(text)


@pytest.mark.integration
def test_intervals_cover_the_whole_datas_numbers():
    """Three seeded samples of 600 of the 2,354 conversations: their 95% intervals hold the full data's values
    (packed waste excepted: a smaller set packs worse, so its interval is an upper bound, checked as one)."""
    full_cfg = Config()
    full = analyze_files([SAMPLE], full_cfg, cache=False)
    truth = numbers(full.table, full_cfg, full.limit)
    covered = checked = 0
    for seed in (1, 2, 3):
        cfg = with_values(full_cfg, {"optim.seed": seed})
        part = analyze_files([SAMPLE], cfg, cache=False, sample=SampleSpec(count=600))
        assert part.tokenized.sample.size == part.tokenized.records == 600 and part.tokenized.sample.population == 2354
        truth_here = numbers(full.table, cfg, full.limit)  # the hold-out follows the seed
        for name, (lo, hi) in part.intervals.items():
            if name == "padding_waste.packed":
                assert truth_here[name] <= hi
                continue
            checked += 1
            covered += lo <= truth_here[name] <= hi
    assert checked == 3 * (len(truth) - 1)
    assert covered / checked >= 0.85, f"{covered} of {checked}"


@pytest.mark.integration
def test_the_report_says_it_is_a_sample_and_json_has_the_intervals(capsys):
    assert main([str(SAMPLE), "--sample", "300", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["sample"] == {"size": 300, "population": 2354, "seed": 42, "method": "reservoir"}
    assert doc["records"] == 300 and doc["intervals"]["suggested_max_length"][0] <= doc["suggested_max_length"]
    assert main([str(SAMPLE), "--sample", "0.1"]) == 0
    assert "sample   " in capsys.readouterr().out.splitlines()[1]
