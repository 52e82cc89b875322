"""benchmarks/bench_vs_trl.py: one line and exit 2 without TRL; at its smallest size, a last JSON line with every arm's
numbers, medians and ratios that are the quotients of the medians."""

import json
import math
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "bench_vs_trl.py"
ARMS = ("ours", "trl_padded", "trl_packed")
RATIOS = ("real_tokens_per_s", "supervised_tokens_per_s", "peak_mib", "data_prep_s")
# the smallest run: a 64-wide, 2-layer random Qwen3 (the real vocabulary), 1 repeat of 2 optimizer steps
SMALLEST = ["--hidden", "64", "--layers", "2", "--max-length", "128", "--micro-batch", "2", "--grad-accum", "1"]
SMALLEST += ["--records", "100", "--steps", "2", "--repeats", "1"]


def test_without_trl_it_says_so_in_one_line_and_exits_2():
    hide = "import runpy, sys; sys.modules['trl'] = None; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], "
    hide += "run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", hide, str(SCRIPT)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == ["bench_vs_trl: TRL is not installed; pip install 'lengthscan[trl]'"]


@pytest.mark.training
def test_smallest_run_reports_every_arm_and_ratios_of_the_medians():
    pytest.importorskip("trl")
    done = subprocess.run([sys.executable, str(SCRIPT), *SMALLEST], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["settings"]["steps"] == 2 and result["repeats"] == 1 and result["trl"]
    for arm in ARMS:
        (run,) = result["runs"][arm]
        assert run["arm"] == arm and run["timed_steps"] == 1
        assert run["real_tokens"] >= run["supervised_tokens"] > 0
        assert 0 < run["real_token_share"] <= 1
        assert run["real_tokens_per_s"] > 0 and run["supervised_tokens_per_s"] > 0
        assert run["peak_mib"] > 0 and run["model_mib"] > 0 and run["data_prep_s"] > 0
        # a random model over Qwen3's 151,669 tokens starts near ln(151,680) = 11.93 and barely moves in 2 steps
        assert all(math.isfinite(run[k]) and 9 < run[k] < 14 for k in ("final_loss", "mean_loss"))
        assert result["medians"][arm] == {k: v for k, v in run.items() if k in result["medians"][arm]}
    assert result["runs"]["ours"][0]["loss_path"] == "chunked"
    assert result["runs"]["trl_packed"][0]["real_token_share"] == 1.0  # padding-free
    for trl in ARMS[1:]:
        assert result["runs"][trl][0]["kept_differentiable"] == 14  # 2 layers × 7 linear layers
        assert set(result["ratios"][trl]) == set(RATIOS)
        for key, ratio in result["ratios"][trl].items():
            assert ratio == pytest.approx(result["medians"]["ours"][key] / result["medians"][trl][key], rel=1e-3)
    for arm, found in result["warnings"].items():  # the two warnings that would mean a wrong measurement
        assert not [w for w in found if "not registered" in w or "silently" in w], (arm, found)
