"""The 4-bit layers keep a true gradient on the CPU, in train and after eval, on tiny models of three families.

bitsandbytes 0.50 on a CPU with AVX512-BF16 repacks a `Linear4bit` weight the first time it runs in eval mode with no
gradient (every evaluation, the first-step loss check) and then computes it with a kernel that has no backward: no
gradient reaches anything below a 4-bit layer. `train.model.keep_4bit_differentiable` keeps the differentiable path.
The reference is independent of bitsandbytes' matmul: the same model with every 4-bit weight dequantized into a plain
fp32 `nn.Linear`.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch

from analyze.schema import Config

pytestmark = pytest.mark.training

VOCAB = 300
SIZES = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16)  # fmt: skip
CONFIGS = {"llama": "LlamaConfig", "qwen3": "Qwen3Config", "gemma3": "Gemma3TextConfig"}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def loaded(request, tmp_path_factory):
    """(4-bit model with LoRA through train's loader, the same with plain fp32 base layers): equal LoRA weights."""
    import transformers

    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    config = getattr(transformers, CONFIGS[request.param])(**SIZES)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    model, reference = _load(folder), _load(folder)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # B starts at zero: make every adapter matter
    reference.load_state_dict(model.state_dict(), strict=False)  # LoRA weights only differ
    replaced = _dequantize_base_layers(reference)
    assert replaced == 7 * SIZES["num_hidden_layers"]
    return model, reference


def _load(folder):
    from train.model import load_model, pick_precision

    lora = replace(Config().lora, dropout=0.0)  # dropout would make two backward passes differ
    return load_model(str(folder), pick_precision("cpu"), lora, gradient_checkpointing=False, seed=0)


def _dequantize_base_layers(model) -> int:
    """Swap every 4-bit base layer for an fp32 `nn.Linear` holding its dequantized weight."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import dequantize_4bit

    count = 0
    for module in list(model.modules()):
        base = getattr(module, "base_layer", None)
        if isinstance(base, bnb.nn.Linear4bit):
            weight = dequantize_4bit(base.weight.data, base.weight.quant_state).float()
            plain = torch.nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
            plain.weight.data, plain.weight.requires_grad = weight, False
            if base.bias is not None:
                plain.bias.data, plain.bias.requires_grad = base.bias.data.float(), False
            module.base_layer = plain
            count += 1
    return count


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, 24), generator=g)
    return ids, torch.arange(24).repeat(2, 1)


def _lora_grads(model) -> dict[str, torch.Tensor]:
    ids, pos = _batch()
    model.train()
    model.zero_grad()
    model(input_ids=ids, position_ids=pos, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _eval_forward(model) -> None:
    ids, pos = _batch()
    model.eval()
    with torch.no_grad():
        model(input_ids=ids, position_ids=pos)


def test_an_eval_forward_leaves_every_lora_gradient_as_it_was(loaded):
    model, _ = loaded
    before = _lora_grads(model)
    _eval_forward(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "an autograd kernel was not registered": a backward through gemv_4bit
        after = _lora_grads(model)
    assert before.keys() == after.keys() and len(before) == 2 * 7 * SIZES["num_hidden_layers"]
    for name in before:
        assert torch.equal(before[name], after[name]), name
        assert before[name].abs().sum() > 0, name  # the lowest layers' adapters get a gradient too


def test_lora_gradients_equal_those_of_the_dequantized_fp32_model(loaded):
    model, reference = loaded
    _eval_forward(model)  # the case that broke: gradients after an evaluation
    got, want = _lora_grads(model), _lora_grads(reference)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)
