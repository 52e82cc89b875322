"""What to do with a trained adapter: the Python that `train` prints at the end of a run, for this run.

The adapter folder holds the LoRA weights, the tokenizer the run trained with (its chat template included) and the
resolved config; its `adapter_config.json` names the base model, so `peft.AutoPeftModelForCausalLM` loads base and
adapter from the folder alone. The printed code is plain peft and transformers (nothing of lengthscan is needed
where it runs): load, chat through the run's own chat template, merge into a 16-bit copy of the base and save.
README's "Using what you trained" shows it for the default run, and a test runs it on a smoke run's adapter.

>>> from types import SimpleNamespace
>>> qwen3 = SimpleNamespace(chat_template="... {%- if enable_thinking is defined and enable_thinking is false %} ...")
>>> lines = usage_lines(Path("runs/lengthscan/adapter"), "Qwen/Qwen3-1.7B", qwen3, "torch.float16")
>>> lines[0]
'# use the adapter: its folder holds the tokenizer and chat template it was trained with (base: Qwen/Qwen3-1.7B)'
>>> [line for line in lines if "enable_thinking" in line][0].strip()
'messages, add_generation_prompt=True, enable_thinking=False, return_dict=True, return_tensors="pt"'
>>> llama = SimpleNamespace(chat_template="{{- bos_token }} ...")
>>> any("enable_thinking" in line for line in usage_lines(Path("a"), "m", llama, "torch.float16"))
False
"""

from __future__ import annotations

from pathlib import Path

MERGED_DIR = "merged"  # where the printed code saves the merged model: beside the adapter, in the run's folder
MAX_NEW_TOKENS = 512


def has_thinking_switch(tokenizer) -> bool:
    """Whether the chat template reads `enable_thinking` (Qwen3's switch between reasoning in `<think>` first and
    replying at once): known from the template's text, so a Qwen3 model with another template has none."""
    template = getattr(tokenizer, "chat_template", None)
    return template is not None and "enable_thinking" in str(template)  # a dict of named templates: all of them


def usage_lines(adapter_dir: Path, base_model: str, tokenizer, dtype, smoke: bool = False) -> list[str]:
    """Python that loads the adapter in `adapter_dir`, chats with it and merges it, one string per line.

    base_model: what the adapter's `adapter_config.json` names (shown only; loading reads that file).
    tokenizer: the run's tokenizer, as saved into `adapter_dir`: its chat template decides how the prompt is built
    (Qwen3's `enable_thinking` switch only where the template has it; plain text when it has no template).
    dtype: the run's compute dtype (`torch.float16` on a T4, `torch.bfloat16` on Ampere, `torch.float32` on a CPU),
    to chat in the precision the adapter was trained in. The merge loads the base in its own dtype (`"auto"`, its
    16-bit release for hub models), never in 4-bit: the sum would be quantised again, rounding away much of the small
    LoRA update (peft's advice for QLoRA adapters).
    smoke: a `--smoke` run's adapter sits on a tiny random model; the code is the same, its replies are noise.
    """
    adapter = str(adapter_dir)
    merged = str(Path(adapter_dir).parent / MERGED_DIR)
    lines = [
        f"# use the adapter: its folder holds the tokenizer and chat template it was trained with (base: {base_model})"
    ]
    if smoke:
        lines.append(
            "# a --smoke run: its base is a tiny random model, so the replies are noise; the code is a real run's"
        )
    lines += [
        "import torch",
        "from peft import AutoPeftModelForCausalLM",
        "from transformers import AutoTokenizer",
        "",
        f"adapter = {_string(adapter)}",
        "tokenizer = AutoTokenizer.from_pretrained(adapter)",
        f'model = AutoPeftModelForCausalLM.from_pretrained(adapter, dtype={_dtype_code(dtype)}, device_map="auto")',
        "",
    ]
    if getattr(tokenizer, "chat_template", None) is None:
        lines.append('inputs = tokenizer("Once upon a time", return_tensors="pt").to(model.device)  # no chat template')
    else:
        thinking = " enable_thinking=False," if has_thinking_switch(tokenizer) else ""
        lines += [
            'messages = [{"role": "user", "content": "Hello! Who are you?"}]',
            "inputs = tokenizer.apply_chat_template(",
            f'    messages, add_generation_prompt=True,{thinking} return_dict=True, return_tensors="pt"',
            ").to(model.device)",
        ]
        if thinking:
            lines.append("# enable_thinking=True: the model reasons in <think> first (give it more max_new_tokens)")
    lines += [
        f"output = model.generate(**inputs, max_new_tokens={MAX_NEW_TOKENS})",
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))',
        "",
        "# merge into the base in its own 16-bit dtype (not the 4-bit copy it trained on), to serve without peft",
        'merged = AutoPeftModelForCausalLM.from_pretrained(adapter, dtype="auto").merge_and_unload()',
        f"merged.save_pretrained({_string(merged)})",
        f"tokenizer.save_pretrained({_string(merged)})",
    ]
    return lines


def _string(text: str) -> str:
    """A Python string literal in double quotes, as ruff formats the rest of the code."""
    import json

    return json.dumps(text, ensure_ascii=False)


def _dtype_code(dtype) -> str:
    """`torch.float16` (a torch.dtype or its name) as code; anything else (`"auto"`) as a string literal."""
    name = str(dtype)
    return name if name.startswith("torch.") else repr(name)
