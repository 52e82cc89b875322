"""The plateau watch on real-shaped histories whose verdicts were decided by hand, and `train watch` on logs.

Each history imitates a shape seen in public Trainer logs of LoRA/QLoRA fine-tunes (see docs/plateau.md).
"""

import json

import numpy as np

from analyze.schema import PlateauConfig
from train.plateau.judge import judge


def curve(steps, fn, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [(int(s), float(fn(s) + noise * rng.standard_normal())) for s in steps]


def test_a_noisy_flat_eval_is_a_plateau_not_progress():
    # eval 0.029 ± 0.003 for 54 evaluations (5,400 steps), learning rate still high: the minimum of noise is no gain
    evals = curve(range(100, 5500, 100), lambda s: 0.029, noise=0.003, seed=1)
    train = curve(range(10, 5410, 10), lambda s: 0.027, noise=0.004, seed=2)
    lrs = [(s, 2e-4) for s, _ in train]
    v = judge(evals, train, PlateauConfig(), 1000, lrs)
    assert v.kind == "plateau", v.evidence
    assert "noise ±0.00" in v.evidence[0]


def test_a_latest_eval_worse_than_the_windows_start_is_never_improving():
    evals = [(s, 2.0 - 0.1 * min(s, 600) / 600) for s in range(100, 1300, 100)] + [(1300, 1.98)]
    train = curve(range(10, 1310, 10), lambda s: 1.9)
    assert judge(evals, train, PlateauConfig(), 600).kind != "improving"


def test_divergence_after_a_warm_restart_is_unstable():
    evals = [(s, 1.16 + 0.002 * (s % 300 == 0)) for s in range(100, 1100, 100)]
    evals += [(1100, 2.9), (1200, 4.95)]  # the learning rate restarted at 1000
    train = curve(range(10, 1010, 10), lambda s: 1.1, noise=0.01) + curve(range(1010, 1210, 10), lambda s: 4.0)
    v = judge(evals, train, PlateauConfig(), 500)
    assert v.kind == "unstable" and "diverging" in v.evidence[1]


def test_a_slowly_falling_run_with_a_jittering_gap_is_improving():
    # eval falls 0.3% per evaluation with little noise; the train–eval gap jitters 0.024 → 0.028 → 0.030
    evals = [(s, 1.50 * (1 - 0.003) ** (s // 100)) for s in range(100, 3100, 100)]
    gaps = [0.024, 0.028, 0.030] * 10
    train = [(s, e - g) for (s, e), g in zip(evals, gaps, strict=True)]
    v = judge(evals, train, PlateauConfig(), 1000)
    assert v.kind == "improving", v.evidence


def test_train_crossing_a_stalled_eval_is_overfitting_at_its_onset():
    evals = [(s, 1.2 - 0.1 * min(s, 1000) / 1000) for s in range(100, 1100, 100)]
    evals += [(1100, 1.1005), (1200, 1.1001), (1300, 1.1002)]  # eval stalls
    train = [(s, e + 0.05) for s, e in evals[:-3]]  # train above eval, then crossing below it
    train += [(1100, 1.1015), (1200, 1.0521), (1300, 1.0232)]  # gap −0.001 → 0.048 → 0.077
    v = judge(evals, train, PlateauConfig(), 500)
    assert v.kind == "overfitting" and "gap widening" in v.evidence[0]
    # one evaluation earlier (gap −0.001 → 0.048 only two points into the crossing) it was not yet called
    assert judge(evals[:-2], train[:-2], PlateauConfig(), 500).kind != "overfitting"


def test_flat_at_the_end_of_a_cosine_schedule_is_converged():
    total = 3000
    evals = [(s, 1.5 + 0.5 * np.exp(-s / 300)) for s in range(100, total + 1, 100)]
    train = [(s, e - 0.02) for s, e in evals]
    lrs = [(s, 2e-4 * 0.5 * (1 + np.cos(np.pi * s / total))) for s in range(10, total + 1, 10)]
    v = judge(evals, train, PlateauConfig(), 1000, lrs)
    assert v.kind == "converged" and "schedule is ending" in v.evidence[-1]
    # the same curve with the learning rate still high is a plateau
    assert judge(evals, train, PlateauConfig(), 1000, [(s, 2e-4) for s, _ in lrs]).kind == "plateau"


def test_logs_that_cannot_be_read_as_they_are():
    train = curve(range(10, 1010, 10), lambda s: 2.0)
    nan = judge([(100, 2.1), (200, float("nan"))], train, PlateauConfig(), 100)
    assert nan.kind == "sanity" and "nan" in nan.evidence[0]
    scaled = judge([(s, 2.0 / 17) for s in range(100, 1100, 100)], train, PlateauConfig(), 500)
    assert scaled.kind == "sanity" and "not on one scale" in scaled.evidence[0]  # train 17× eval: a logging bug
    leak = judge([(s, 7e-4) for s in range(100, 1100, 100)], [(s, 6e-4) for s, _ in train], PlateauConfig(), 500)
    assert leak.kind == "sanity" and "overlaps the training data" in leak.evidence[0]


def test_train_logged_rarely_still_gets_a_verdict():
    evals = curve(range(200, 4200, 200), lambda s: 2.4 + 1.2 * max(0, 1500 - s) / 1500, noise=0.002)
    train = curve(range(100, 4100, 100), lambda s: 2.35 + 1.2 * max(0, 1500 - s) / 1500, noise=0.01)
    assert judge(evals, train, PlateauConfig(), 1000).kind == "plateau"


def test_train_watch_replays_a_trainer_state_json(tmp_path, capsys):
    from train.cli import main

    history = [
        {"step": s, "loss": 2.0 + 1.0 * max(0, 1000 - s) / 1000, "learning_rate": 2e-4} for s in range(10, 3010, 10)
    ]
    history += [{"step": s, "eval_loss": 2.05 + 1.0 * max(0, 1000 - s) / 1000} for s in range(250, 3001, 250)]
    state = tmp_path / "checkpoint-3000" / "trainer_state.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"log_history": history, "max_steps": 3000, "eval_steps": 250}))
    assert main(["watch", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == str(state) and doc["verdict"] == "plateau"
    assert [e["step"] for e in doc["per_eval"]] == list(range(250, 3001, 250))
    assert doc["first_warning_step"] == next(e["step"] for e in doc["per_eval"] if e["verdict"] == "plateau")
    assert doc["advice"][0]["change"] == {"lora.r": 32, "lora.alpha": 32}  # the guide's first lever
    assert main(["watch", str(tmp_path / "nothing-here")]) == 2


def test_not_on_one_scale_only_when_so_from_the_first_evaluations():
    # heavy overfitting: train 2.0 → 0.03 over a few epochs while eval bottoms at 1.6 and climbs to 2.0
    evals = [(s, 2.1 - 0.5 * min(s, 600) / 600 + 0.4 * max(0, s - 600) / 1400) for s in range(100, 2100, 100)]
    train = [(s, 2.0 * (0.03 / 2.0) ** (s / 2000)) for s in range(10, 2010, 10)]
    v = judge(evals, train, PlateauConfig(), 500)
    assert v.kind == "overfitting", v.evidence  # a gap that grew (train 0.03, eval 2.0), not a logging bug
    # train 17× eval from the first evaluation on: a logging bug, and the evidence names the steps it rests on
    scaled = judge([(s, 2.0 / 17) for s in range(100, 1100, 100)], [(s, 2.0) for s in range(10, 1010, 10)],
                   PlateauConfig(), 500)  # fmt: skip
    assert scaled.kind == "sanity" and "at step 100" in scaled.evidence[0] and "at step 200" in scaled.evidence[0]


def test_the_steady_verdicts_keep_every_warning_here():
    """`judge_all` (what the watch reports) ends where `judge` does on these hand-decided histories; the overfitting
    onset is taken at once (its gap widened by more than twice the noise), not one evaluation late."""
    from train.plateau.judge import judge_all

    evals = [(s, 1.2 - 0.1 * min(s, 1000) / 1000) for s in range(100, 1100, 100)]
    evals += [(1100, 1.1005), (1200, 1.1001), (1300, 1.1002)]
    train = [(s, e + 0.05) for s, e in evals[:-3]] + [(1100, 1.1015), (1200, 1.0521), (1300, 1.0232)]
    assert [v.kind for v in judge_all(evals, train, PlateauConfig(), 500)][-2:] == ["improving", "overfitting"]
    evals = curve(range(100, 5500, 100), lambda s: 0.029, noise=0.003, seed=1)
    train = curve(range(10, 5410, 10), lambda s: 0.027, noise=0.004, seed=2)
    assert judge_all(evals, train, PlateauConfig(), 1000)[-1].kind == "plateau"
