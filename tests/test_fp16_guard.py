"""fp16 on a T4: architectures that overflow fp16 are computed in fp32 there, and a forward that overflows in the
first steps stops the run with one line that names fp16 and the remedy. Tested on the CPU by forcing the fp16 path
and injecting an overflow."""

from __future__ import annotations

import pytest
import torch

from analyze.memory import CPU_OPTIMIZER
from tests.conftest import SAMPLE
from train.model import Precision, pick_precision


@pytest.mark.parametrize(
    ("capability", "model_type", "requested", "want"),
    [
        ((7, 5), "qwen3", "auto", (torch.float16, True, False)),  # a T4
        ((7, 5), "gemma3_text", "auto", (torch.float32, False, False)),  # overflows fp16: fp32, no autocast
        ((7, 5), "gemma3", "auto", (torch.float32, False, False)),  # multimodal Gemma 3 (its text config's type too)
        ((8, 0), "gemma3_text", "auto", (torch.bfloat16, False, True)),  # bf16 has fp32's range: nothing to fix
        ((7, 5), "llama", "fp32", (torch.float32, False, False)),  # asked for
    ],
)
def test_the_precision_on_each_gpu_and_architecture(monkeypatch, capability, model_type, requested, want):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.delenv("LENGTHSCAN_EMULATE_T4", raising=False)
    p = pick_precision("cuda", {"model_type": model_type}, requested)
    assert (p.compute_dtype, p.fp16, p.bf16) == want
    if want[0] == torch.float32 and requested == "auto":
        assert f"{model_type} overflows fp16" in p.name


def test_emulating_a_t4_takes_the_t4_path(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setenv("LENGTHSCAN_EMULATE_T4", "1")
    assert pick_precision("cuda", {"model_type": "qwen3"}).fp16
    assert pick_precision("cuda", {"model_type": "gemma3_text"}).compute_dtype == torch.float32


@pytest.mark.training
def test_an_fp16_overflow_in_the_first_forward_stops_the_run_naming_the_remedy(tmp_path, monkeypatch, capsys):
    """The fp16 path forced on the CPU; the first decoder layer's output rounded through fp16 after a scale-up, as
    an activation beyond 65,504 is on a T4: the run stops before any step, in one line, naming fp16 and the fix."""
    import train.fit
    import train.prepare
    from train.cli import main

    real_load = train.fit.load_model

    def overflowing(*args, **kwargs):
        model = real_load(*args, **kwargs)
        layer = model.get_base_model().model.layers[0]

        def overflow(module, inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            blown = (hidden * 1e9).to(torch.float16).to(hidden.dtype)  # |x| > 65,504 becomes inf in fp16
            return (blown, *output[1:]) if isinstance(output, tuple) else blown

        layer.register_forward_hook(overflow)
        return model

    fp16 = Precision("cpu", "fp16 autocast (forced for the test)", torch.float16, True, False, CPU_OPTIMIZER)
    monkeypatch.setattr(train.prepare, "pick_precision", lambda *a, **k: fp16)
    monkeypatch.setattr(train.fit, "load_model", overflowing)
    out = tmp_path / "run"
    assert main(["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(out), "--run.max_steps", "2"]) == 2
    captured = capsys.readouterr()
    err = captured.err
    check = next(line for line in captured.out.splitlines() if line.startswith("loss:"))
    assert check.endswith("unchecked: the model's own loss was not finite on a process, the path is kept")
    lines = [line for line in err.splitlines() if line.startswith("train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert "loss became nan at step 0, in the first steps on the fp16 path" in lines[0]
    assert "overflows fp16" in lines[0] and "--run.precision fp32" in lines[0]
    assert not (out / "adapter").exists() and not list(out.glob("checkpoint-*"))


def test_the_memory_plan_counts_fp32_where_train_computes_in_fp32():
    """lengthscan's plan for a T4 and train's plan on the GPU it runs on both count Gemma 3 in fp32 there."""
    from analyze.config import with_values
    from analyze.memory import memory_model
    from analyze.schema import Config

    gemma = {"model_type": "gemma3_text", "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26,
             "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262_144}  # fmt: skip
    on = {gpu: memory_model(with_values(Config(), {"gpu": gpu}), gemma, "test") for gpu in ("T4", "L4")}
    assert (on["T4"].settings.precision, on["L4"].settings.precision) == ("fp32", "16-bit")
    l4_cfg = with_values(Config(), {"gpu": "L4"})
    assert on["T4"].plan(1024, 4).parts == memory_model(l4_cfg, gemma, "test", None, "fp32").plan(1024, 4).parts
    assert on["T4"].plan(1024, 4).parts != on["L4"].plan(1024, 4).parts
    qwen = memory_model(Config(), {**gemma, "model_type": "qwen3"}, "test")
    assert qwen.settings.precision == "16-bit"  # Qwen3 keeps fp16 on a T4
    # train on a GPU passes what pick_precision chose
    fp32 = pick_precision("cpu").planned
    assert memory_model(Config(), gemma, "test", 14.74, fp32).settings.precision == "fp32"
