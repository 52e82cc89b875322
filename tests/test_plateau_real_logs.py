"""benchmarks/plateau_real_logs.py on two hand-made Trainer logs whose verdicts are known: the script that measures
the watch on public logs (which are not shipped) keeps working."""

import importlib
import json
import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
script = importlib.import_module("plateau_real_logs")


def _state(evals: list[float], train: list[float]) -> dict:
    history = []
    for i, (e, t) in enumerate(zip(evals, train, strict=True), start=1):
        history += [{"step": 100 * i, "loss": t, "learning_rate": 1e-4}, {"step": 100 * i, "eval_loss": e}]
    return {"log_history": history, "max_steps": 100 * len(evals), "eval_steps": 100}


def test_it_counts_agreement_with_the_labels(tmp_path, capsys):
    # a logging bug (train and eval 10× apart from the first evaluations: called at the second), labelled as such;
    # and a run still falling
    # by 5% an evaluation, labelled converged: a disagreement on the final verdict, none on the warnings
    (tmp_path / "01.json").write_text(json.dumps(_state([20.0] * 6, [2.0] * 6)))
    (tmp_path / "02.json").write_text(
        json.dumps(_state([2.0 * 0.95**i for i in range(8)], [1.9 * 0.95**i for i in range(8)]))
    )
    sources = [
        {"n": "01", "repo": "a/b", "path": "x", "commit": "0", "label_end": "sanity", "label_first_warning": 200},
        {"n": "02", "repo": "c/d", "path": "y", "commit": "0", "label_end": "converged", "label_first_warning": None},
    ]
    (tmp_path / "sources.json").write_text(json.dumps(sources))
    assert script.main(["--logs", str(tmp_path), "--sources", str(tmp_path / "sources.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| 01 | a/b | 6 | sanity; 200 | sanity; ") and lines[0].endswith("| yes |"), lines[0]
    assert lines[1].startswith("| 02 | c/d | 8 | converged; none |") and lines[1].endswith("| no |"), lines[1]
    assert json.loads(lines[-1]) == {"logs": 2, "agree": 1, "warnings_agree": 2}
