"""What `train` tells a user to do with the adapter (`train.usage`): the printed code, run on a smoke run's adapter —
load, chat through the chat template, merge — and the merged model checked against the unmerged adapter."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from analyze.config import DEFAULTS
from tests.conftest import REPO, SAMPLE
from train.usage import MAX_NEW_TOKENS, has_thinking_switch, usage_lines

TEMPLATES = REPO / "tests" / "fixtures" / "templates"
QWEN3_NO_THINKING = "<|im_start|>assistant\n<think>\n\n</think>\n\n"  # Qwen3's generation prompt, enable_thinking=False


def _code(*args, **kwargs) -> str:
    return "\n".join(usage_lines(*args, **kwargs))


def test_the_thinking_switch_comes_from_the_template_text(qwen3):
    assert has_thinking_switch(qwen3)
    assert "enable_thinking=False," in _code(Path("a"), "Qwen/Qwen3-1.7B", qwen3, "torch.float16")
    # the families' real templates have no switch, and none is printed even under a Qwen3 name: the text decides
    for name in ("llama3.1.jinja", "gemma3.jinja"):
        other = SimpleNamespace(chat_template=(TEMPLATES / name).read_text())
        assert not has_thinking_switch(other)
        code = _code(Path("a"), "Qwen/Qwen3-1.7B", other, "torch.float16")
        assert "apply_chat_template(" in code and "enable_thinking" not in code


def test_without_a_chat_template_the_prompt_is_plain_text():
    code = _code(Path("a"), "m", SimpleNamespace(chat_template=None), "torch.float32")
    assert "apply_chat_template" not in code and 'inputs = tokenizer("Once upon a time"' in code


def test_paths_dtype_and_the_merge_folder():
    code = _code(Path("runs/x/adapter"), "Qwen/Qwen3-1.7B", SimpleNamespace(chat_template=None), "torch.bfloat16")
    assert 'adapter = "runs/x/adapter"' in code
    assert "from_pretrained(adapter, dtype=torch.bfloat16," in code  # chat in the run's precision
    assert 'from_pretrained(adapter, dtype="auto").merge_and_unload()' in code  # merge into the 16-bit base
    assert 'merged.save_pretrained("runs/x/merged")' in code and 'tokenizer.save_pretrained("runs/x/merged")' in code
    compile(code, "usage", "exec")  # valid Python


def test_readme_shows_what_a_default_run_prints(qwen3):
    """README's "Using what you trained" block is the code a default run on a T4 prints, character for character."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Using what you trained", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```python\n(.+?)\n```", section, re.S).group(1)
    adapter = Path(DEFAULTS["run.output_dir"]) / "adapter"
    assert block == _code(adapter, DEFAULTS["model"], qwen3, "torch.float16")


@pytest.fixture(scope="module")
def smoke_adapter(tmp_path_factory):
    """A smoke run cut down to 2 optimizer steps of 2 rows of 128 tokens: a tiny random Qwen3 and a LoRA adapter
    that has moved off its zero start (10 s on 2 idle cores)."""
    from train.cli import run_from_args

    tmp = tmp_path_factory.mktemp("usage")
    data = tmp / "data.jsonl"
    data.write_text("\n".join(SAMPLE.read_text().splitlines()[:60]) + "\n")
    result = run_from_args(["--smoke", "--data.train", str(data), "--output-dir", str(tmp / "run"), "--max-steps", "2",
                            "--max_length", "128", "--optim.grad_accum_steps", "1"])  # fmt: skip
    return result.adapter_dir


# peft 0.21 reads `model.is_gradient_checkpointing` when it wraps a model, which transformers 5 deprecates in favour
# of `is_activation_checkpointing`: a FutureWarning on every AutoPeftModel load, harmless until transformers 6.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.training
def test_the_printed_code_chats_and_merges_a_smoke_adapter(smoke_adapter):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smoke_adapter)  # what the run saved: its tokenizer and template
    base = json.loads((smoke_adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    code = _code(smoke_adapter, base, tokenizer, torch.float32, smoke=True)  # a CPU run computes in fp32
    assert "replies are noise" in code
    # the tiny random model never says EOS, and without a KV cache 512 tokens take a minute and a half
    ns: dict = {}
    exec(code.replace(f"max_new_tokens={MAX_NEW_TOKENS}", "max_new_tokens=8"), ns)
    model, inputs, output = ns["model"], ns["inputs"], ns["output"]
    assert type(model).__name__ == "PeftModelForCausalLM" and model.peft_config["default"].r == 16

    # the prompt is the chat template's, ending in its generation prompt (replying at once: an empty <think>)
    prompt = inputs["input_ids"][0]
    rendered = tokenizer.apply_chat_template(ns["messages"], tokenize=False, add_generation_prompt=True,
                                             enable_thinking=False)  # fmt: skip
    assert rendered.endswith(QWEN3_NO_THINKING)
    assert prompt.tolist() == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert len(output[0]) > len(prompt) and torch.equal(output[0, : len(prompt)], prompt)  # new tokens produced

    # the merged folder: a plain transformers model with the tokenizer and chat template
    merged_dir = smoke_adapter.parent / "merged"
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"} <= {
        p.name for p in merged_dir.iterdir()
    }
    assert not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert not any("lora_" in name for name, _ in merged.named_parameters())

    # reference: the unmerged adapter (base + LoRA computed on the fly), on the chat prompt; and the base alone, to
    # show the adapter moves the logits by far more than the tolerance
    plain = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        want = model(**inputs).logits
        got = merged(**inputs).logits
        before = plain(**inputs).logits
    tolerance = 1e-4 * want.abs().max()
    assert (got - want).abs().max() <= tolerance
    assert (before - want).abs().max() > 100 * tolerance
