"""The chunked loss equals the full-logits loss, in value and gradients, on random tensors and on real models of
every family users train (tiny, random, built from a config, with LoRA)."""

import pytest
import torch

from train.loss import (
    CHUNKED,
    FULL,
    LogitMap,
    LossPath,
    choose_loss_path,
    chunk_tokens,
    chunked_loss_sum,
    loss_sum,
    token_loss_sum,
)
from train.rows import IGNORE

TOL = 1e-5


def _labels(batch: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    labels[torch.rand(batch, length, generator=g) < 0.5] = IGNORE
    return labels


@pytest.mark.parametrize("chunk", [1, 7, 1000])
@pytest.mark.parametrize("logit_map", [LogitMap(), LogitMap(softcap=3.0), LogitMap(scale=0.25)])
def test_chunked_loss_and_gradients_equal_the_full_logits(chunk, logit_map):
    torch.manual_seed(0)
    hidden = torch.randn(2, 37, 24, requires_grad=True)
    head = torch.randn(50, 24, requires_grad=True)
    labels = _labels(2, 37, 50, seed=chunk)

    want, n = token_loss_sum(logit_map(hidden @ head.T), labels)
    want_grads = torch.autograd.grad(want, [hidden, head])
    got, m = chunked_loss_sum(hidden, head, labels, logit_map, chunk=chunk)
    got_grads = torch.autograd.grad(got, [hidden, head])

    assert n.item() == m.item() == int((labels[:, 1:] != IGNORE).sum()) > 0
    assert abs(got.item() - want.item()) <= TOL * abs(want.item())
    for g, w in zip(got_grads, want_grads, strict=True):
        assert torch.allclose(g, w, atol=TOL, rtol=TOL)


def test_scaled_gradient_flows_through_like_the_full_loss():
    """The trainer divides the sum by the step's token count: the backward must honour a non-unit grad_output."""
    torch.manual_seed(1)
    hidden = torch.randn(1, 20, 8, requires_grad=True)
    head = torch.randn(30, 8)
    labels = _labels(1, 20, 30, seed=3)
    (token_loss_sum(hidden @ head.T, labels)[0] / 7).backward()
    want, hidden.grad = hidden.grad, None
    (chunked_loss_sum(hidden, head, labels, chunk=3)[0] / 7).backward()
    assert torch.allclose(hidden.grad, want, atol=TOL)


def test_no_supervised_token_gives_zero_loss_and_zero_gradient():
    hidden = torch.randn(1, 5, 8, requires_grad=True)
    labels = torch.full((1, 5), IGNORE)
    total, count = chunked_loss_sum(hidden, torch.randn(9, 8), labels)
    total.backward()
    assert total.item() == 0 and count.item() == 0 and not hidden.grad.any()


def test_chunk_holds_a_bounded_number_of_logits():
    assert chunk_tokens(151_936) * 151_936 <= 2**24 < (chunk_tokens(151_936) + 1) * 151_936
    assert chunk_tokens(10**9) == 16  # a minimum, for the matmul


def _tiny(kind: str):
    """A tiny random model of a family, with its logit post-processing switched on."""
    import transformers as tf

    common = dict(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    configs = {
        "llama": lambda: tf.LlamaConfig(**common),
        "qwen3": lambda: tf.Qwen3Config(**common, head_dim=8),
        "mistral": lambda: tf.MistralConfig(**common),
        "phi3": lambda: tf.Phi3Config(**common, pad_token_id=0),
        "gemma2": lambda: tf.Gemma2Config(**common, head_dim=8, final_logit_softcapping=2.0),
        "gemma3": lambda: tf.Gemma3TextConfig(**common, head_dim=8, final_logit_softcapping=2.0),
        "cohere": lambda: tf.CohereConfig(**common, logit_scale=0.5),
        "granite": lambda: tf.GraniteConfig(**common, logits_scaling=4.0),
    }
    torch.manual_seed(0)
    return tf.AutoModelForCausalLM.from_config(configs[kind](), attn_implementation="eager")


@pytest.mark.training
@pytest.mark.parametrize("kind", ["llama", "qwen3", "mistral", "phi3", "gemma2", "gemma3", "cohere", "granite"])
def test_model_loss_and_lora_gradients_equal_along_both_paths(kind):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_tiny(kind), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)  # B starts at zero: make the adapters matter
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(5))
    positions = torch.arange(24).repeat(2, 1)
    labels = _labels(2, 24, 300, seed=6)
    path = choose_loss_path(model, "cpu")
    assert path.name == CHUNKED, path.why
    assert path.logit_map == LogitMap.from_config(model.config)

    results = []
    for p in (LossPath(FULL, "reference", path.logit_map), path):
        model.zero_grad()
        total, count, _ = loss_sum(model, ids, positions, labels, p)
        total.backward()
        grads = {n: q.grad.clone() for n, q in model.named_parameters() if q.requires_grad}
        results.append((total.item(), count.item(), grads))
    (want, n, want_grads), (got, m, got_grads) = results
    assert n == m > 0
    assert abs(got - want) <= TOL * abs(want)
    assert want_grads.keys() == got_grads.keys() and len(want_grads) > 0
    for name in want_grads:
        assert torch.allclose(got_grads[name], want_grads[name], atol=TOL, rtol=1e-4), name


@pytest.mark.training
def test_an_output_layer_with_a_bias_keeps_the_full_logits():
    model = _tiny("llama")
    model.lm_head = torch.nn.Linear(32, 300, bias=True)
    path = choose_loss_path(model, "cpu")
    assert path.name == FULL and "not a plain linear layer" in path.why


@pytest.mark.training
def test_on_the_cpu_the_plain_pytorch_path_is_chosen_and_says_why():
    path = choose_loss_path(_tiny("qwen3"), "cpu")
    assert path.name == CHUNKED and "CUDA only" in path.describe()


def test_fallback_order():
    from train.loss import LIGER, fallback

    assert fallback(LossPath(LIGER, "x"), "y").name == CHUNKED
    assert fallback(LossPath(CHUNKED, "x"), "y").name == FULL


@pytest.mark.training
def test_a_run_whose_loss_disagrees_with_the_model_falls_back_to_the_full_logits(tmp_path, monkeypatch, capsys):
    """A wrong logit map stands in for an architecture the chunked loss does not know: the first-row check
    catches it before training and the run goes on with the full logits, saying why."""
    import train.loss
    import train.trainer_setup
    from tests.conftest import SAMPLE
    from train.cli import main

    real = train.loss.choose_loss_path

    def wrong(model, device, dtype=None):
        path = real(model, device, dtype)
        return LossPath(path.name, path.why, LogitMap(scale=3.0), path.dtype)

    monkeypatch.setattr(train.trainer_setup, "choose_loss_path", wrong)
    args = ["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(tmp_path / "run"), "--run.max_steps", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("loss:"))
    assert line.startswith("loss: full logits (the chunked loss differed from the model's own logits by"), line


def _smoke_args(tmp_path) -> list[str]:
    from tests.conftest import SAMPLE

    return ["--smoke", "--data.train", str(SAMPLE), "--output-dir", str(tmp_path / "run"), "--run.max_steps", "2"]


@pytest.mark.training
def test_running_out_of_memory_in_the_loss_check_keeps_the_chunked_path(tmp_path, monkeypatch, capsys):
    """An OOM inside the check says nothing against the path: the run goes on with it, unchecked."""
    import train.trainer
    from train.cli import main

    real, reference_calls = train.trainer.loss_sum, []

    def out_of_memory_in_the_reference(model, ids, pos, labels, path):
        if path.name == FULL and not torch.is_grad_enabled():  # the check's full-logits reference
            reference_calls.append(ids.shape)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.16 GiB")
        return real(model, ids, pos, labels, path)

    monkeypatch.setattr(train.trainer, "loss_sum", out_of_memory_in_the_reference)
    assert main(_smoke_args(tmp_path)) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("loss:"))
    assert line.startswith("loss: labelled positions only, in chunks")
    assert line.endswith("unchecked: the check ran out of memory on a process, the path is kept")
    assert len(reference_calls) == 1  # checked once, not again at every step


@pytest.mark.training
def test_the_check_runs_on_a_window_no_longer_than_one_chunk_of_the_loss(tmp_path, monkeypatch, qwen3):
    """The reference's full logits are (window × vocabulary): at most what one chunk of the chunked loss holds."""
    from transformers import AutoModelForCausalLM

    import train.trainer
    from analyze.config import with_values
    from analyze.model_facts import load_model_config
    from analyze.pipeline import tokenize_files
    from analyze.schema import Config
    from tests.conftest import SAMPLE
    from train.data import build
    from train.model import pick_precision
    from train.smoke import tiny_config
    from train.trainer_setup import make_trainer

    cfg = with_values(Config(), {"optim.micro_batch_size": 2, "max_length": 512, "run.max_steps": 1})
    data = build(cfg, qwen3, tokenize_files([SAMPLE], qwen3, keep_ids=True))
    model = AutoModelForCausalLM.from_config(tiny_config(load_model_config(cfg.model), qwen3))
    real, shapes = train.trainer.loss_sum, []

    def record(model, ids, pos, labels, path):
        if not torch.is_grad_enabled():
            shapes.append((path.name, tuple(ids.shape), int((labels[:, 1:] != IGNORE).sum())))
        return real(model, ids, pos, labels, path)

    monkeypatch.setattr(train.trainer, "loss_sum", record)
    trainer = make_trainer(cfg, data, model, qwen3, pick_precision("cpu"), tmp_path, say=lambda _: None)
    trainer.args.eval_strategy, trainer.args.eval_on_start = "no", False
    trainer.train()
    window = chunk_tokens(model.config.vocab_size)
    assert [s[0] for s in shapes] == [FULL, CHUNKED] and shapes[0][1:] == shapes[1][1:]
    assert shapes[0][1] == (1, window) and window < cfg.max_length and shapes[0][2] > 0  # supervised tokens inside


@pytest.mark.training
def test_a_fallback_to_full_logits_the_plan_says_will_not_fit_stops_with_the_levers(tmp_path, qwen3):
    """A mismatch still falls back; where the full logits will not fit, the run stops with the plan's message."""
    from transformers import AutoModelForCausalLM

    from analyze.config import with_values
    from analyze.errors import RunStopped
    from analyze.memory import memory_model
    from analyze.model_facts import load_model_config
    from analyze.pipeline import tokenize_files
    from analyze.schema import Config
    from tests.conftest import SAMPLE
    from train.data import build
    from train.memory_check import full_logits_refusal
    from train.model import pick_precision
    from train.smoke import tiny_config
    from train.trainer_setup import make_trainer

    cfg = with_values(Config(), {"optim.micro_batch_size": 4, "max_length": 2048, "run.max_steps": 1})
    # Qwen3-1.7B's full logits at 4 × 2048 on a T4: 16.8 GiB alone
    refusal = full_logits_refusal(cfg, memory_model(cfg, budget_gib=14.74))
    assert refusal.startswith("the full logits need") and "fits this GPU (14.7 GiB)" in refusal
    assert "--optim.micro_batch_size" in refusal  # a smaller micro-batch with the same effective batch: the lever
    small = with_values(cfg, {"max_length": 256, "optim.micro_batch_size": 1})
    assert full_logits_refusal(small, memory_model(small, budget_gib=14.74)) is None

    small = with_values(cfg, {"max_length": 256})
    data = build(small, qwen3, tokenize_files([SAMPLE], qwen3, keep_ids=True))
    model = AutoModelForCausalLM.from_config(tiny_config(load_model_config(cfg.model), qwen3))
    said = []
    trainer = make_trainer(small, data, model, qwen3, pick_precision("cpu"), tmp_path, say=said.append,
                           full_logits_refusal=refusal)  # fmt: skip
    trainer.loss_path = LossPath(CHUNKED, "test", LogitMap(scale=3.0))  # a logit map the model does not have
    trainer.args.eval_strategy, trainer.args.eval_on_start = "no", False
    with pytest.raises(RunStopped) as stopped:
        trainer.train()
    message = str(stopped.value)
    assert message.startswith("the chunked loss differed from the model's own logits by") and refusal in message
    assert "\n" not in message and not said  # one line, and nothing printed as if the run went on
