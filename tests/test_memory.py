"""The memory plan: its parts counted by hand, what it proposes when a config does not fit, and how lengthscan and
train use it (the suggestion never exceeds what fits; train refuses before loading the model; OOM names the
levers)."""

import json
from dataclasses import replace

import pytest
import torch

import train.fit as fit_mod
from analyze.cli import main as lengthscan
from analyze.config import from_dict, load_config
from analyze.errors import UserError
from analyze.gpus import CONTEXT_GIB, gpu_budget
from analyze.memory import (
    GIB,
    MARGIN,
    NF4_BYTES,
    OPTIMIZER_BYTES,
    Settings,
    fit,
    memory_model,
    model_shape,
    plan_memory,
)
from analyze.model_facts import TIED_DEFAULTS, bundled_config, read_model_config, tied_by_default
from analyze.schema import Config
from tests.conftest import SAMPLE
from train.cli import main as train_main
from train.memory_check import memory_plan, oom_message

QWEN = model_shape(bundled_config("Qwen/Qwen3-1.7B"))


def test_the_parts_of_qwen3_1_7b_counted_by_hand():
    plan = plan_memory(QWEN, 512, 4)
    # per layer: q, o 2048×2048; k, v 2048×1024; gate, up, down 2048×6144; 28 layers
    linear = (2 * 2048 * 2048 + 2 * 2048 * 1024 + 3 * 2048 * 6144) * 28
    assert linear == 1_409_286_144
    assert plan.parts["base weights (4-bit)"] * GIB == pytest.approx(linear * NF4_BYTES)
    # LoRA r=16 on all seven: r × (in + out) each; fp32 weight and 8-bit Adam's two states; in the step its fp32
    # gradient and autocast's fp16 copy
    lora = 16 * (2 * 4096 + 2 * 3072 + 3 * 8192) * 28
    assert lora == 17_432_576  # what peft prints as trainable for Qwen3-1.7B at r=16, all-linear
    assert plan.parts["LoRA + optimizer state"] * GIB == pytest.approx(lora * (4 + 2))
    assert plan.parts["LoRA gradients and 16-bit copies"] * GIB == pytest.approx(lora * (4 + 2))
    # tied embeddings, upcast to fp32 by kbit preparation, and 57 RMSNorm weights
    assert plan.parts["embeddings and norms (fp32)"] * GIB == pytest.approx((151_936 * 2048 + 57 * 2048) * 4)
    # gradient checkpointing keeps each layer's fp32 input; rotary cos and sin (fp32, 128 wide) and the packed rows'
    # bool mask (4 × 512 × 512) are made once per forward
    tokens = 4 * 512
    assert plan.parts["activations kept"] * GIB == 28 * 4 * 2048 * tokens + 2 * 4 * 128 * tokens + 4 * 512 * 512
    # the peak is the chunked loss's forward: the final norm's fp32 input and output, the 2,044 labelled positions'
    # hidden states in fp32 and fp16, the fp16 head twice (the model's lm_head on no position, the loss's own),
    # and one chunk of 110 positions' fp32 logits and log-softmax
    loss = 2 * 4 * 2048 * tokens + (4 + 2) * 2048 * 2044 + 2 * (2 * 151_936 * 2048) + 2 * 4 * 110 * 151_936
    assert plan.parts["loss (transient)"] * GIB == loss == 1_437_034_496
    assert plan.moment == "training step" and plan.parts["CUDA context"] == CONTEXT_GIB
    assert plan.peak_gib == pytest.approx(sum(plan.parts.values()))


def test_the_last_layer_recomputed_counted_by_hand():
    """At 4 × 2048 tokens the peak is the last layer recomputed for its backward (per token, on CUDA's fp16 path)."""
    plan = plan_memory(QWEN, 2048, 4)
    adapters = 6 * ((1 + 2) * 2048 + 2 * 16) + (1 + 2) * 6144 + 2 * 16  # dropout's bool mask, lora_A and B inputs
    saved = adapters + 4 * 2048 + 4 * (2048 + 1024) + (2 * 4 * 2048 + 4 * 16) + 3 * 4 * 6144
    assert saved == 166_176  # + residual, q/k norm inputs, SDPA's q, k, v, output, log-sum-exp; the MLP's three
    top = (4 + 2) * 2048  # the gradient arriving at the layer's top, fp32 and its fp16 copy
    down_proj = 4 * (2 * 2048 + 6144) + 4 * 6144  # MLP input and product, base output, dropout's output (fp32)
    tokens, mask = 4 * 2048, 2 * 4 * 2048 * 2048  # the fp16 mask SDPA keeps
    assert plan.parts["layer recompute (transient)"] * GIB == (top + saved + down_proj) * tokens + mask


def test_untied_embeddings_cost_one_more_vocabulary_matrix():
    untied = replace(QWEN, tied=False)
    extra = plan_memory(untied, 512, 4).peak_gib - plan_memory(QWEN, 512, 4).peak_gib
    assert extra * GIB == pytest.approx(151_936 * 2048 * 4)


@pytest.mark.parametrize(
    ("model_type", "tied"),
    [("llama", False), ("mistral", False), ("qwen2", False), ("qwen3", False), ("gemma3_text", True), ("gemma2", True)],
)
def test_a_config_without_tie_word_embeddings_gets_its_class_default(model_type, tied):
    config = {k: v for k, v in bundled_config("Qwen/Qwen3-1.7B").items() if k != "tie_word_embeddings"}
    assert model_shape(config | {"model_type": model_type}).tied is tied
    assert model_shape(config | {"model_type": model_type, "tie_word_embeddings": not tied}).tied is not tied
    multimodal = {"model_type": "gemma3", "text_config": config | {"model_type": "gemma3_text"}}
    assert model_shape(multimodal).tied  # Gemma 3 4B+: neither level says


def test_the_class_defaults_are_transformers_own():
    from transformers import CONFIG_MAPPING

    for model_type, tied in TIED_DEFAULTS.items():
        assert CONFIG_MAPPING[model_type]().tie_word_embeddings is tied, model_type
    assert not tied_by_default("no_such_architecture")  # unknown: one more matrix counted


def test_the_peak_grows_with_what_should_grow_it():
    base = plan_memory(QWEN, 1024, 4).peak_gib
    assert plan_memory(QWEN, 2048, 4).peak_gib > base
    assert plan_memory(QWEN, 1024, 8).peak_gib > base
    assert plan_memory(QWEN, 1024, 4, Settings.from_config(gradient_checkpointing=False)).peak_gib > base
    assert plan_memory(QWEN, 1024, 4, Settings.from_config(lora_r=64)).peak_gib > base
    assert plan_memory(QWEN, 1024, 4, Settings.from_config(optimizer="adamw_torch")).peak_gib > base
    assert plan_memory(QWEN, 1024, 4, Settings.from_config(lora_targets=("q_proj", "v_proj"))).peak_gib < base
    # the numbers: the full logits alone are ~15 GB at 4 × 2048 and put the default model past a T4
    full = plan_memory(QWEN, 2048, 4, Settings.from_config(loss="full"))
    assert full.parts["loss (transient)"] * GIB > 4 * 2047 * 151_936 * 12
    assert not full.fits(gpu_budget("T4")) and plan_memory(QWEN, 2048, 4).fits(gpu_budget("T4"))
    assert "loss check" not in full.moments  # the full logits are not checked against themselves


def test_fp32_precision_doubles_the_16_bit_tensors_and_drops_the_copies():
    half, fp32 = (plan_memory(QWEN, 2048, 4, Settings.from_config(precision=p)) for p in ("16-bit", "fp32"))
    assert fp32.parts["LoRA gradients and 16-bit copies"] * GIB == 17_432_576 * 4  # no fp16 copies
    # per token, 2 more bytes for each adapter's input and output (the adapters' inputs: 6 × 2048 + 6144), SDPA's
    # q, k, v and output, and the gradient into down_proj's adapter; dropout's output is lora_A's input, not a
    # transient fp32 tensor beside its fp16 copy; the mask SDPA keeps is fp32
    per_token = 2 * (6 * 2048 + 6144 + 7 * 16) + 2 * 4 * 2048 + 2 * 2048 - 4 * 6144
    extra = fp32.parts["layer recompute (transient)"] - half.parts["layer recompute (transient)"]
    assert extra * GIB == per_token * 4 * 2048 + 2 * 4 * 2048 * 2048
    # at 1 × 1024 the fp16 path's peak is its loss, with two fp16 copies of the head: fp32 has none
    short = plan_memory(QWEN, 1024, 1)
    assert "loss (transient)" in short.parts
    assert plan_memory(QWEN, 1024, 1, Settings.from_config(precision="fp32")).peak_gib < short.peak_gib
    gemma3 = {"model_type": "gemma3_text", "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26}
    config = from_dict({"model": "google/gemma-3-1b-it"})
    assert memory_model(config, gemma3, "x").settings.precision == "fp32"  # as train runs it on a T4
    assert memory_model(from_dict({"gpu": "L4"}), gemma3, "x").settings.precision == "16-bit"
    assert memory_model(config, gemma3, "x", budget_gib=14.7, precision="16-bit").settings.precision == "16-bit"


def test_the_cpu_keeps_more_for_dropout_than_cuda():
    """What the CPU measurements test differs from CUDA in one term: dropout keeps its fp32 noise, not a bool mask."""
    cpu, cuda = (plan_memory(QWEN, 2048, 4, Settings.from_config(device=d)) for d in ("cpu", "cuda"))
    extra = cpu.parts["layer recompute (transient)"] - cuda.parts["layer recompute (transient)"]
    adapter_inputs = 3 * 2048 + 2048 + 2 * 2048 + 6144  # q, k, v; o; gate, up; down
    assert extra * GIB == (4 - 1) * adapter_inputs * 4 * 2048


def test_optimizer_state_sizes_are_those_the_trainer_uses():
    from train.model import pick_precision

    assert pick_precision("cpu").optim in OPTIMIZER_BYTES
    assert "paged_adamw_8bit" in OPTIMIZER_BYTES  # the CUDA path's optimizer


@pytest.mark.parametrize(
    ("budget", "want"),
    [
        (40.0, (2048, 4, 4)),  # fits as it is
        (5.5, (2048, 2, 8)),  # half the rows, twice the accumulation
        (5.0, (2048, 1, 16)),
        (4.5, None),  # nothing at 2048: shorter rows at micro-batch 1
    ],
)
def test_fit_keeps_the_effective_batch_and_prefers_a_smaller_micro_batch(budget, want):
    f = fit(QWEN, 2048, 4, 4, budget)
    assert f.micro_batch_size * f.grad_accum_steps == 16
    assert f.plan.fits(budget)
    if want is None:
        assert f.micro_batch_size == 1 and f.max_length < 2048 and f.max_length % 64 == 0
        assert not plan_memory(QWEN, f.max_length + 64, 1).fits(budget)  # the longest that fits
        assert f.change.startswith(f"max_length 2048 -> {f.max_length}")
    else:
        assert (f.max_length, f.micro_batch_size, f.grad_accum_steps) == want
        assert (f.change is None) == (want == (2048, 4, 4))


def test_fit_only_uses_micro_batches_that_divide_the_effective_batch():
    def just_above(mb):  # a budget where `mb` rows fit with the margin, and more rows do not
        return (plan_memory(QWEN, 2048, mb).peak_gib + 0.01) / (1 - MARGIN)

    f = fit(QWEN, 2048, 4, 3, just_above(3))  # effective 12: 3 × 4
    assert (f.micro_batch_size, f.grad_accum_steps) == (3, 4)
    f = fit(QWEN, 2048, 5, 1, just_above(4))  # effective 5: 4 does not divide it
    assert (f.micro_batch_size, f.grad_accum_steps) == (1, 5)


def test_a_model_that_fits_at_no_length_keeps_its_length_and_says_so():
    f = fit(QWEN, 2048, 4, 4, 1.0)
    assert (f.max_length, f.micro_batch_size) == (2048, 4) and "does not fit 1 GiB at any max_length" in f.change


def test_configs_that_leave_sizes_to_their_class_defaults_and_vision_towers():
    gemma3_4b = {  # the shape of Gemma 3 4B's config.json: text_config leaves heads, head size and vocabulary out
        "model_type": "gemma3",
        "text_config": {"model_type": "gemma3_text", "hidden_size": 2560, "intermediate_size": 10240,
                        "num_hidden_layers": 34},
        "vision_config": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27},
    }  # fmt: skip
    shape = model_shape(gemma3_4b)
    assert (shape.heads, shape.kv_heads, shape.head_dim, shape.vocab) == (8, 4, 256, 262_208)
    assert shape.other_linear == (4 * 1152**2 + 2 * 1152 * 4304) * 27
    text_only = model_shape({**gemma3_4b, "vision_config": None})
    extra = plan_memory(shape, 512, 1).peak_gib - plan_memory(text_only, 512, 1).peak_gib
    assert extra * GIB == pytest.approx(shape.other_linear * NF4_BYTES)


def test_eager_attention_adds_its_scores():
    gemma2 = replace(QWEN, eager_attention=True)
    extra = plan_memory(gemma2, 2048, 4).peak_gib - plan_memory(QWEN, 2048, 4).peak_gib
    assert extra * GIB == 4 * 16 * 2048 * 2048 * 8  # micro-batch × heads × tokens² × bytes, in the recompute


def test_gpu_names_and_numbers():
    assert gpu_budget("T4") < 16 < gpu_budget("L4") < gpu_budget("A100-40GB") < gpu_budget("H100")
    assert gpu_budget("a100-80gb") == gpu_budget("A100-80")
    assert from_dict({"gpu": 12}).gpu == 12.0 and from_dict({"gpu": "l4"}).gpu == "l4"
    for bad in ("T5", "0", "-3", "nan"):
        with pytest.raises(UserError, match=r"gpu is .*(choose one of T4, L4|a finite number)"):
            from_dict({"gpu": bad})


def test_model_config_is_read_from_a_folder_the_cache_or_the_bundle(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    config, where = read_model_config("Qwen/Qwen3-1.7B")
    assert config["vocab_size"] == 151_936 and "bundled" in where
    folder = tmp_path / "model"
    folder.mkdir()
    config, where = read_model_config(str(folder))
    assert config is None and "has no config.json" in where
    (folder / "config.json").write_text(json.dumps(bundled_config("Qwen/Qwen3-1.7B") | {"num_hidden_layers": 2}))
    config, where = read_model_config(str(folder))
    assert model_shape(config).layers == 2 and where.endswith("config.json")
    config, where = read_model_config("someone/not-cached-7B")
    assert config is None and "not in the local Hugging Face cache" in where
    moe = memory_model(Config(), {"num_experts": 8, **bundled_config("Qwen/Qwen3-1.7B")}, "x")
    assert moe.shape is None and "mixture-of-experts" in moe.source


def test_lengthscan_shows_the_plan_and_never_suggests_what_does_not_fit(tmp_path, capsys):
    cfg_path = tmp_path / "run.yaml"
    assert lengthscan([str(SAMPLE), "--json", "--gpu", "4.5", "--write-config", str(cfg_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    memory = doc["memory"]
    assert memory["gpu"] == "the GPU" and memory["budget_gib"] == 4.5 and "bundled" in memory["model_config"]
    by_length = {c["max_length"]: c for c in memory["candidates"]}
    wanted = doc["suggested_max_length"]
    assert set(by_length) >= {c["max_length"] for c in doc["candidates"]}
    for c in memory["candidates"]:  # each: the largest divisor of 16 up to 4 that fits, or 1 and does not fit
        mb = c["micro_batch_size"]
        plan = plan_memory(QWEN, c["max_length"], mb)
        assert c["peak_gib"] == round(plan.peak_gib, 2) and c["fits"] == plan.fits(4.5) and 16 % mb == 0
        if mb < 4 and c["fits"]:
            assert not any(plan_memory(QWEN, c["max_length"], d).fits(4.5) for d in (2, 4) if d > mb)
    assert by_length[wanted]["micro_batch_size"] != 4  # the sample's p99 needs a smaller micro-batch here
    at = memory["at_suggestion"]
    assert at["max_length"] == wanted and at["peak_gib"] <= 4.5
    assert memory["change"].startswith(f"micro_batch_size 4 -> {at['micro_batch_size']}")
    written = load_config(cfg_path)
    assert written.max_length == wanted and written.gpu == 4.5
    assert written.optim.micro_batch_size == at["micro_batch_size"]
    assert written.effective_batch == 16


@pytest.mark.integration
def test_lengthscan_says_when_the_plan_is_unknown(tmp_path, capsys, monkeypatch, qwen3):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    folder = tmp_path / "tok"
    qwen3.save_pretrained(folder)  # a tokenizer folder without config.json
    assert lengthscan([str(SAMPLE), "--json", "--model", str(folder)]) == 0
    memory = json.loads(capsys.readouterr().out)["memory"]
    assert memory["candidates"] == [] and "has no config.json" in memory["unknown"]


@pytest.mark.integration
def test_train_dry_run_prints_the_plan(capsys):
    assert train_main(["--data.train", str(SAMPLE), "--dry-run", "--json"]) == 0
    captured = capsys.readouterr()
    memory = json.loads(captured.out)["memory"]
    assert memory["fits"] and memory["peak_gib"] == round(plan_memory(QWEN, 512, 4).peak_gib, 2)
    assert "memory plan: peak" in captured.err
    assert train_main(["--data.train", str(SAMPLE), "--dry-run", "--max_length", "4096", "--gpu", "6"]) == 0
    out = capsys.readouterr().out
    assert "warning: the memory plan predicts" in out and "--optim.micro_batch_size 1" in out


def test_train_refuses_before_loading_a_model_that_will_not_fit():
    cfg = from_dict({"max_length": 4096, "gpu": 6})
    with pytest.raises(UserError) as err:
        memory_plan(cfg, memory_model(cfg), refuse=True)
    message = str(err.value)
    assert "more than the 6.0 GiB" in message and "\n" not in message and "--run.memory_check false" in message
    assert "--optim.micro_batch_size 1 --optim.grad_accum_steps 16 fits" in message and "--lora.r" in message


@pytest.mark.training
def test_out_of_memory_in_training_ends_with_one_line_naming_the_levers(tmp_path, monkeypatch, capsys):
    """Simulated: the first decoder layer raises CUDA's out-of-memory error on the third forward."""
    make, calls = fit_mod.make_trainer, []

    def oom_on_third_forward(*args, **kwargs):
        trainer = make(*args, **kwargs)

        def hook(module, inputs):
            calls.append(1)
            if len(calls) == 3:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.32 GiB")

        layer = next(m for n, m in trainer.model.named_modules() if n.endswith("layers.0"))
        layer.register_forward_pre_hook(hook)
        return trainer

    monkeypatch.setattr(fit_mod, "make_trainer", oom_on_third_forward)
    rc = train_main(["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "out of memory" in line]
    assert len(lines) == 1
    for lever in ("--optim.micro_batch_size", "--optim.grad_accum_steps", "--max_length", "--lora.r"):
        assert lever in lines[0]
    message = oom_message(Config(), {"peak_gib": 13.2, "budget_gib": 14.74})
    assert "the memory plan predicted 13.2 of 14.7 GiB" in message
