"""`train watch` on another Trainer's log: fast (no torch, no bitsandbytes) and faithful to the run's own values."""

import json
import subprocess
import sys

from tests.conftest import REPO


def _state(folder, evals=100, every=100, **fields):
    """A trainer_state.json of `evals` evaluations, flat after step 1000 (a plateau), learning rate peaking at 3e-4."""
    steps = evals * every
    log = [{"step": s, "loss": 2.0 + max(0, 1000 - s) / 1000, "learning_rate": 3e-4 if s > 100 else 1e-4}
           for s in range(10, steps + 1, 10)]  # fmt: skip
    log += [{"step": s, "eval_loss": 2.05 + max(0, 1000 - s) / 1000} for s in range(every, steps + 1, every)]
    path = folder / "trainer_state.json"
    path.write_text(json.dumps({"log_history": log, "max_steps": steps, "eval_steps": every, **fields}))
    return path


def test_train_watch_imports_neither_torch_nor_bitsandbytes(tmp_path):
    state = _state(tmp_path)
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "from train.cli import main\n"
        f"rc = main(['watch', {str(state)!r}, '--json'])\n"
        "seconds = time.perf_counter() - t\n"
        "heavy = sorted(m for m in ('torch', 'bitsandbytes', 'peft') if m in sys.modules)\n"
        "print(json.dumps({'rc': rc, 'seconds': seconds, 'heavy': heavy}), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stderr.strip().splitlines()[-1])
    doc = json.loads(proc.stdout)
    assert result["rc"] == 0 and len(doc["per_eval"]) == 100 and doc["verdict"] == "plateau"
    assert result["heavy"] == []  # importing torch alone took ~25 s on a cold start
    assert result["seconds"] < 5, result  # about 0.5 s on a laptop; loose for a loaded CI machine


def test_the_levers_start_from_the_runs_own_values(tmp_path, capsys):
    from train.cli import main

    _state(tmp_path, evals=30, num_train_epochs=3, train_batch_size=8)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 64, "lora_alpha": 128, "lora_dropout": 0.1}))
    assert main(["watch", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "plateau"
    assert doc["advice"][0]["change"] == {"lora.r": 128, "lora.alpha": 256}  # the adapter's 64/128, doubled
    assert doc["advice"][2]["change"] == {"optim.learning_rate": 0.00045, "optim.epochs": 2.0}  # 3e-4 × 1.5
    assert doc["values"]["optim.learning_rate"] == "the log's largest learning_rate"
    assert doc["values"]["optim.micro_batch_size"] == "train_batch_size"
    unknown = sorted(k for k, where in doc["values"].items() if where is None)
    assert unknown == ["optim.grad_accum_steps", "optim.lr_scheduler", "optim.weight_decay"]
    assert doc["values_lines"][1].startswith("unknown, this project's defaults: optim.grad_accum_steps=4")

    # printed: where each starting value came from
    assert main(["watch", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "from the run: lora.r=64 (adapter_config.json r)" in printed
    assert "optim.learning_rate=0.0003 (the log's largest learning_rate)" in printed


def test_a_state_without_the_values_says_all_were_defaults(tmp_path, capsys):
    from train.cli import main

    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": [{"step": 10, "eval_loss": 2.0}]}))
    (tmp_path / "adapter_config.json").write_text("{not json")  # unreadable: the defaults, not an error
    assert main(["watch", str(state), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["values"].values()) == {None} and doc["verdict"] == "too_early"
