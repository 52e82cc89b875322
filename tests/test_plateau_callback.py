"""`PlateauCallback` in someone else's Trainer: a plain `transformers.Trainer` and TRL's `SFTTrainer` on a tiny random
Llama built in-process. Its verdicts are the ones `train watch` replays from the run's checkpoint; it writes its files
into the Trainer's output_dir and stops the run on request.

A learning rate of 1e-7 keeps the losses flat: with the guide's thresholds, a plateau as soon as two evaluations span
the window (2 steps: a quarter of 8, `foreign_window`).
"""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.training

FLAT_LR = 1e-7
ROWS = [[(7 * i + 3 * j) % 97 + 5 for j in range(16)] for i in range(24)]  # 24 rows of 16 token ids


def _tiny_llama(vocab_size: int = 128):
    """A 2-layer, 32-wide random Llama with a LoRA adapter (r=4, alpha=8) on q and v."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0)  # fmt: skip
    model = LlamaForCausalLM(config)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))


def _args(out, **extra) -> dict:
    return dict(output_dir=str(out), max_steps=8, eval_strategy="steps", eval_steps=1, logging_steps=1,
                save_strategy="steps", save_steps=8, per_device_train_batch_size=2, per_device_eval_batch_size=4,
                learning_rate=FLAT_LR, lr_scheduler_type="constant", report_to=[], use_cpu=True, seed=0,
                disable_tqdm=True, **extra)  # fmt: skip


def _replayed(out) -> dict:
    from train.cli import main

    return _main_json(main, ["watch", str(out), "--json"])


def _main_json(main, argv) -> dict:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return json.loads(buffer.getvalue())


def _live(out) -> list[tuple[int, str]]:
    return [(x["step"], x["verdict"]) for x in map(json.loads, (out / "watch.jsonl").read_text().splitlines())]


def test_in_a_plain_trainer_it_judges_as_train_watch_does_and_stops(tmp_path):
    from transformers import Trainer, TrainingArguments

    from train.plateau import PlateauCallback

    out = tmp_path / "run"
    rows = [{"input_ids": r, "labels": r} for r in ROWS]
    said: list[str] = []
    watch = PlateauCallback(action="stop", say=said.append)
    trainer = Trainer(model=_tiny_llama(), args=TrainingArguments(**_args(out)), train_dataset=rows[:16],
                      eval_dataset=rows[16:], callbacks=[watch])  # fmt: skip
    trainer.train()

    # flat at 3 and 4: the plateau, confirmed at 4, stops the run there (the checkpoint saved), not at max_steps 8
    assert trainer.state.global_step == 4 and (out / "checkpoint-4" / "trainer_state.json").is_file()
    assert _live(out) == [(1, "too_early"), (2, "too_early"), (3, "too_early"), (4, "plateau")]
    assert any("stopping (plateau confirmed at step 4" in line for line in said)
    # `train watch` on the checkpoint the Trainer wrote: the same verdict at every evaluation
    replayed = _replayed(out)
    assert [(e["step"], e["verdict"]) for e in replayed["per_eval"]] == _live(out)
    assert replayed["window_steps"] == watch.window_steps == 2

    doc = json.loads((out / "plateau.json").read_text())
    assert doc["verdict"] == "plateau" and doc["step"] == 4  # written once, when confirmed
    # the levers start from the run's own values: the model's LoraConfig, the TrainingArguments
    assert doc["next_config_change"] == {"lora.r": 8, "lora.alpha": 16} == replayed["advice"][0]["change"]
    assert doc["levers"][2]["change"]["optim.learning_rate"] == round(FLAT_LR * 1.5, 10)
    assert doc["values"]["lora.r"] == "the model's LoraConfig r"
    assert doc["values"]["optim.grad_accum_steps"] == "gradient_accumulation_steps"
    assert doc["next_config"] is None and not (out / "next_config.yaml").exists()  # not a `train` config
    assert "not a `train` run" in (out / "plateau.md").read_text()


def test_in_trls_sft_trainer(tmp_path, qwen3):
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from train.plateau import PlateauCallback

    out = tmp_path / "sft"
    data = Dataset.from_dict({"input_ids": ROWS})
    said: list[str] = []
    trainer = SFTTrainer(
        model=_tiny_llama(vocab_size=-(-len(qwen3) // 64) * 64),
        # TRL defaults to checkpointing through the name transformers 5 deprecated; a tiny model needs none
        args=SFTConfig(**_args(out), max_length=32, packing=False, activation_checkpointing=False),
        train_dataset=data.select(range(16)),
        eval_dataset=data.select(range(16, 24)),
        processing_class=qwen3,
        callbacks=[PlateauCallback(say=said.append)],  # action="warn": trains on
    )
    trainer.train()
    assert trainer.state.global_step == 8
    live = _live(out)
    assert live[:4] == [(1, "too_early"), (2, "too_early"), (3, "too_early"), (4, "plateau")] and len(live) == 8
    assert [(e["step"], e["verdict"]) for e in _replayed(out)["per_eval"]] == live
    assert json.loads((out / "plateau.json").read_text())["verdict"] == "plateau"
    assert any(line.startswith("plateau watch: plateau at step 4") for line in said)


def test_importing_it_is_cheap_until_used():
    """`import train.plateau` (as `train watch` does) does not import the callback's transformers Trainer or torch."""
    code = (
        "import sys\nimport train.plateau\nassert 'torch' not in sys.modules\n"
        "from train.plateau import PlateauCallback\nfrom transformers import TrainerCallback\n"
        "assert issubclass(PlateauCallback, TrainerCallback)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
