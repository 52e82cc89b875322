"""The plateau watch on synthetic loss histories with known verdicts, and the advice it writes."""

import json

import numpy as np
import pytest

from analyze.config import from_dict, load_config
from analyze.schema import Config, PlateauConfig
from tests.conftest import write_log_csv
from train.plateau.advice import start_warnings
from train.plateau.judge import judge
from train.plateau.report import StepScale, write_plateau_report

EVAL_EVERY, LOG_EVERY = 250, 10


def history(curve, steps=4000, noise=0.0, seed=0, eval_curve=None):
    """Train losses every 10 steps and eval losses every 250 from loss-vs-step functions, with optional noise."""
    rng = np.random.default_rng(seed)
    train = [(s, float(curve(s) + noise * rng.standard_normal())) for s in range(LOG_EVERY, steps + 1, LOG_EVERY)]
    evals = [(s, float((eval_curve or curve)(s) + 0.05)) for s in range(EVAL_EVERY, steps + 1, EVAL_EVERY)]
    return evals, train


def test_real_plateau():
    # falls until step 1500, then flat at 2.4 with a tight oscillation
    evals, train = history(lambda s: 2.4 + 1.2 * max(0, 1500 - s) / 1500, noise=0.03)
    v = judge(evals, train, PlateauConfig(), 1000)
    assert v.kind == "plateau"
    a, b = v.window
    assert b == 4000 and b - a >= 1000 and a >= 1500


def test_steady_decrease_is_not_a_plateau():
    evals, train = history(lambda s: 3.6 - 0.0003 * s)
    assert judge(evals, train, PlateauConfig(), 1000).kind == "improving"


def test_noisy_but_improving_is_not_a_plateau():
    evals, train = history(lambda s: 3.2 * np.exp(-s / 6000) + 0.6, noise=0.25, seed=3)
    v = judge(evals, train, PlateauConfig(), 1000)
    assert v.kind == "improving", v.evidence


def test_eval_flat_but_train_still_falling_is_not_a_plateau():
    evals, train = history(lambda s: 3.0 - 0.0002 * s, eval_curve=lambda s: 2.5)
    v = judge(evals, train, PlateauConfig(), 1000)
    assert v.kind != "plateau"


def test_overfitting():
    # train keeps falling; eval bottoms out at step 2000 and rises: the gap widens
    evals, train = history(lambda s: 3.0 - 0.0003 * s, eval_curve=lambda s: 2.5 + 0.0001 * abs(s - 2000))
    v = judge(evals, train, PlateauConfig(), 1000)
    assert v.kind == "overfitting" and "gap widening" in v.evidence[0]


def test_too_early():
    evals, train = history(lambda s: 2.4, steps=900)
    v = judge(evals, train, PlateauConfig(), 1000)
    assert v.kind == "too_early"  # flat, but 900 steps are fewer than the guide's 1000


def test_thresholds_come_from_the_config():
    evals, train = history(lambda s: 2.4 + 1.2 * max(0, 1500 - s) / 1500, noise=0.03)
    assert judge(evals, train, PlateauConfig(), 1000).kind == "plateau"
    strict = from_dict({"plateau": {"min_evals": 20}}).plateau  # 16 evaluations in 4000 steps: not enough
    assert judge(evals, train, strict, 1000).kind == "too_early"
    assert judge(evals, train, PlateauConfig(), 5000).kind == "too_early"  # a window longer than the run


def test_advice_files(tmp_path):
    evals, train = history(lambda s: 2.4 + 1.2 * max(0, 1500 - s) / 1500, noise=0.03)
    v = judge(evals, train, PlateauConfig(), 1000)
    base = "# my run\nlora:\n  r: 16  # rank\n  alpha: 16\n"
    cfg = from_dict({"lora": {"r": 16, "alpha": 16}})
    scale = StepScale(conversations=48.0, tokens=24_000.0)
    write_plateau_report(tmp_path, v, cfg, scale, base_text=base)
    doc = json.loads((tmp_path / "plateau.json").read_text())
    assert doc["verdict"] == "plateau" and doc["next_config_change"] == {"lora.r": 32, "lora.alpha": 32}
    steps = doc["window"]["optimizer_steps"]
    assert doc["window"]["conversations"] == steps * 48 and doc["window"]["tokens"] == steps * 24_000
    assert [lv["number"] for lv in doc["levers"]] == [1, 2, 3, 4, 5, 6]
    assert "2.3–2.5" in doc["loss_floor"]
    md = (tmp_path / "plateau.md").read_text()
    assert "1. **Increase LoRA rank**" in md and "`lora.r: 32`" in md and "train --config next_config.yaml" in md
    nxt = (tmp_path / "next_config.yaml").read_text()
    assert "# my run" in nxt and "# rank" in nxt  # the user's comments survive
    loaded = load_config(tmp_path / "next_config.yaml")
    assert (loaded.lora.r, loaded.lora.alpha) == (32, 32)
    assert loaded.optim == Config().optim and loaded.max_length == cfg.max_length


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"optim": {"epochs": 5}}, "Don't increase epochs past 3"),
        ({"optim": {"micro_batch_size": 2, "grad_accum_steps": 2}}, "Don't reduce batch size below 8"),
    ],
)
def test_what_not_to_do_warnings(values, needle):
    (warning,) = start_warnings(from_dict(values), conversations_per_row=3.0)
    assert needle in warning


def test_loss_plot_shades_the_window(tmp_path):
    from train.loss_plot import DPI, SIZE, plot_run

    evals, train = history(lambda s: 2.4 + 1.2 * max(0, 1500 - s) / 1500, noise=0.03)
    write_log_csv(tmp_path, train, evals)
    write_plateau_report(tmp_path, judge(evals, train, PlateauConfig(), 1000), Config(), None)
    png = plot_run(tmp_path)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (SIZE[0] * DPI, SIZE[1] * DPI)


def test_a_resumed_history_counts_each_step_once(tmp_path):
    from train.plateau.watch import PlateauWatch, history

    logged = [{"step": 4, "loss": 3.0}, {"step": 4, "eval_loss": 3.2}, {"step": 4, "eval_loss": 3.2},
              {"step": 6, "loss": 2.9}, {"step": 6, "loss": 2.8}]  # fmt: skip
    assert history(logged)[:2] == ([(4, 3.0), (6, 2.8)], [(4, 3.2)])
    # the advice was written before the kill: a resumed run does not write the same advice again
    (tmp_path / "plateau.json").write_text('{"verdict": "plateau"}')
    assert PlateauWatch(Config(), tmp_path, 100, resuming=True).reported == "plateau"
    assert PlateauWatch(Config(), tmp_path, 100, resuming=False).reported is None


def test_the_default_schedule_fits_any_data_size():
    """The guide's numbers in its units: on a few hundred conversations up to millions, warmup ends early, there
    are at least 8 evaluations and checkpoints, and the plateau window fits in the run."""
    from train.schedule import schedule

    for conversations in (300, 2_354, 50_000, 2_000_000):
        rows = max(conversations // 3, 1)  # about 3 conversations per packed row
        s = schedule(Config(), rows, conversations, has_eval=True)
        assert s.warmup_steps < 0.1 * s.total_steps
        assert s.evals - 1 >= 8 and s.checkpoints >= 8
        assert s.plateau_steps <= s.total_steps and not s.warnings, (conversations, s.warnings)
    big = schedule(Config(), 2_000_000 // 3, 2_000_000, has_eval=True)
    assert "capped" not in big.conversions[0]  # the guide's own warmup, 200 guide steps
    assert "lengthened to" in big.conversions[1] and big.evals <= 101  # evaluations are bounded (max_evals)


def test_settings_that_cannot_take_effect_say_so():
    from analyze.config import with_values
    from train.schedule import schedule

    cfg = with_values(Config(), {"schedule.warmup_max": 1.0, "schedule.warmup": 100000, "schedule.min_evals": 0})
    s = schedule(cfg, 100, 300, has_eval=True)
    text = " | ".join(s.warnings)
    assert "warmup of" in text and "never decays" in text and "schedule.warmup" in text
    assert "only at the start and the end" in text and "a killed run cannot be resumed" in text
    assert "no eval set" in schedule(Config(), 100, 300, has_eval=False).warnings[-1]


def test_a_resumed_run_with_its_advice_written_still_stops(tmp_path):
    from transformers import TrainerControl, TrainerState

    from analyze.config import with_values
    from train.plateau.watch import PlateauWatch

    evals, train = history(lambda s: 2.4 + 1.2 * max(0, 1500 - s) / 1500, noise=0.03)
    (tmp_path / "plateau.json").write_text('{"verdict": "plateau"}')
    cfg = with_values(Config(), {"plateau.action": "stop"})
    watch = PlateauWatch(cfg, tmp_path, 1000, resuming=True, say=lambda line: None)
    stops = []
    for upto in (evals[-2][0], evals[-1][0]):  # the steady verdict: a plateau confirmed before the resume
        state = TrainerState()
        state.log_history = [{"step": s, "loss": v} for s, v in train if s <= upto] + [
            {"step": s, "eval_loss": v} for s, v in evals if s <= upto
        ]
        state.global_step = upto
        control = TrainerControl()
        watch.on_evaluate(None, state, control)
        stops.append((watch.verdict.kind, control.should_training_stop))
    assert stops == [("plateau", True), ("plateau", True)]
    assert (tmp_path / "plateau.json").read_text() == '{"verdict": "plateau"}'  # the same advice: not rewritten


def test_a_run_shorter_than_min_evals_says_so():
    from train.schedule import schedule

    s = schedule(Config(), train_rows=40, train_conversations=100, has_eval=True)  # 3 steps per epoch × 3 = 9
    assert s.total_steps == 9 and not any("fewer than schedule.min_evals" in w for w in s.warnings)
    s = schedule(Config(), train_rows=8, train_conversations=20, has_eval=True)  # 1 step per epoch × 3 = 3
    assert s.total_steps == 3 and any("fewer than schedule.min_evals (8)" in w for w in s.warnings)
    assert s.logging_steps == 1  # fitted so the plateau window holds train losses
