"""`train --smoke` end to end on the CPU: real 4-bit NF4, LoRA, packing, eval, checkpoints, resume and saved files."""

import csv
import json

import bitsandbytes as bnb
import pytest
import torch
from safetensors.torch import load_file

from analyze.config import load_config
from tests.conftest import SAMPLE
from train.cli import run_from_args

pytestmark = pytest.mark.training


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    result = run_from_args(["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(out)])
    assert result.output_dir == out
    return result


def test_smoke_writes_adapter_tokenizer_config_and_logs(smoke_run):
    smoke_run = smoke_run.output_dir
    adapter = smoke_run / "adapter"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "config.yaml"):
        assert (adapter / name).is_file(), name
    cfg = load_config(adapter / "config.yaml")  # the resolved config is a valid config file
    assert cfg.max_length == 256 and cfg.run.max_steps == 8 and cfg.data.train == [str(SAMPLE)]
    assert "# --smoke" in (smoke_run / "config.yaml").read_text()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 16
    assert sorted(p.name for p in smoke_run.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]
    assert list((smoke_run / "tensorboard").glob("events.out.tfevents.*"))
    rows = _log(smoke_run / "log.csv")
    assert list(rows[0]) == [
        "step",
        "train_loss",
        "eval_loss",
        "learning_rate",
        "tokens_per_second",
        "real_token_share",
    ]
    train = [r for r in rows if r["train_loss"]]
    assert [int(r["step"]) for r in train] == list(range(1, 9))
    assert all(float(r["tokens_per_second"]) > 0 and 0.5 < float(r["real_token_share"]) <= 1 for r in train)


def test_smoke_loss_goes_down(smoke_run):
    smoke_run = smoke_run.output_dir
    rows = _log(smoke_run / "log.csv")
    evals = [float(r["eval_loss"]) for r in rows if r["eval_loss"]]
    train = [float(r["train_loss"]) for r in rows if r["train_loss"]]
    assert len(evals) == 3  # on start, step 4, step 8
    assert evals[-1] < evals[0] - 0.05
    assert sum(train[-2:]) < sum(train[:2]) - 0.1


def test_smoke_lora_changed_and_base_frozen(smoke_run):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    out = smoke_run.output_dir
    final = load_file(out / "adapter" / "adapter_model.safetensors")
    mid = load_file(out / "checkpoint-4" / "adapter_model.safetensors")
    lora_b = [k for k in final if "lora_B" in k]
    assert lora_b and all(final[k].abs().sum() > 0 for k in lora_b)  # LoRA B starts at zero
    assert any(not torch.equal(final[k], mid[k]) for k in final)  # and kept moving between checkpoints
    assert all(v.dtype == torch.float32 for v in final.values())

    # Frozen base: no base parameter takes gradients or sits in the optimizer …
    model = smoke_run.model
    in_optimizer = {id(p) for g in smoke_run.trainer.optimizer.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert p.requires_grad == ("lora_" in name), name
        assert (id(p) in in_optimizer) == ("lora_" in name), name
    # … and its weights equal a fresh 4-bit load of the same tiny model: embeddings and norms bit for bit, the
    # 4-bit matrices after dequantisation (bitsandbytes re-encodes them for its CPU kernels during eval, which
    # changes the stored blocks' scales slightly but not the weights they stand for)
    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    fresh = AutoModelForCausalLM.from_pretrained(
        out / "smoke-model", quantization_config=quant, dtype=torch.float32, device_map={"": "cpu"}
    )
    model.state_dict()  # undoes the CPU re-encoding
    trained = {
        n.replace("base_model.model.", "").replace(".base_layer", ""): p
        for n, p in model.named_parameters()
        if "lora_" not in n
    }
    quantized = 0
    for name, p in fresh.named_parameters():
        t = trained[name]
        if type(p).__name__ == "Params4bit":
            quantized += 1
            a, b = (bnb.functional.dequantize_4bit(w.data, w.quant_state) for w in (t, p))
            assert (a - b).abs().max() <= 0.02 * b.abs().max(), name
        else:
            assert torch.equal(t, p), name
    assert quantized == 14  # 2 layers × 7 linear layers, all really 4-bit


def test_resume_continues_from_the_last_checkpoint(smoke_run):
    out = smoke_run.output_dir
    args = ["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(out), "--max-steps", "10"]
    result = run_from_args([*args, "--resume"])
    steps = [int(r["step"]) for r in _log(out / "log.csv") if r["train_loss"]]
    assert steps == list(range(1, 11))  # 1-8 from the first run, 9-10 after resuming at checkpoint-8
    assert result.trainer.state.global_step == 10
    assert (out / "checkpoint-10").is_dir()
