"""The schedule fitted to short runs: a configured warmup is never fitted away to nothing."""

import pytest

from analyze.config import with_values
from analyze.schema import Config
from train.schedule import schedule


def test_an_18_step_run_warms_up_for_a_step():
    """96 rows at 4 × 4 are 6 steps an epoch, 18 in 3 epochs; 5% of 18 is 0.9, which floored was no warmup."""
    s = schedule(Config(), train_rows=96, train_conversations=300, has_eval=True)
    assert (s.steps_per_epoch, s.total_steps, s.warmup_steps) == (6, 18, 1)
    assert s.conversions[0] == (
        "warmup: 200 guide steps = 3,200 conversations = 64 packed steps; capped at 1, the least a warmup takes "
        "(5% of the run's 18 steps is 0.9) (schedule.warmup_max)"
    )
    assert not s.warnings


@pytest.mark.parametrize(
    ("warmup", "expected", "note"),
    [
        (0, 0, None),  # no warmup asked for: none
        (0.01, 1, "raised to 1, the least a warmup takes (schedule.warmup is not 0)"),  # 0.16 conversations → 0 steps
        (2, 1, None),  # 32 conversations = 0.64 packed steps, rounded to 1
    ],
)
def test_a_warmup_asked_for_gives_at_least_one_step(warmup, expected, note):
    s = schedule(with_values(Config(), {"schedule.warmup": warmup}), 96, 300, has_eval=True)
    assert s.warmup_steps == expected
    assert (note in s.conversions[0]) if note else ("raised" not in s.conversions[0])


def test_a_one_step_run_has_no_warmup():
    """One optimizer step warmed up would be one step at learning rate 0: the whole run trains nothing."""
    s = schedule(with_values(Config(), {"run.max_steps": 1}), 96, 300, has_eval=True)
    assert (s.total_steps, s.warmup_steps) == (1, 0)
