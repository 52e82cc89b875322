"""Model families other than the bundled Qwen3, built in-process: nothing is downloaded.

Each family is a folder laid out like a hub model repository without weights: a small byte-level BPE tokenizer
trained on the bundled sample (a few hundred tokens, so tiny models train fast on a CPU) with the family's own
special tokens and its real chat template (`tests/fixtures/templates`), and the family's `config.json`.
`train --smoke --model DIR` builds its tiny random model from that config.

- llama: LlamaForCausalLM; BOS in the template, a system header with a date in every conversation; no pad token,
  EOS `<|eot_id|>`.
- gemma3: Gemma3ForCausalLM; BOS in the template, refuses roles that do not alternate, calls the assistant `model`;
  pad `<pad>`.
"""

from __future__ import annotations

import json
from pathlib import Path

TEMPLATES = Path(__file__).parent / "fixtures" / "templates"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "hh-rlhf-helpful-base-test.messages.jsonl"
VOCAB = 512

FAMILIES = {
    "llama": {
        "template": "llama3.1.jinja",
        "specials": [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>",
            "<|python_tag|>",
        ],
        "tokens": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},  # Llama 3: no pad token
        "config": (
            "LlamaConfig",
            {"eos_token_id": ["<|end_of_text|>", "<|eot_id|>"], "bos_token_id": "<|begin_of_text|>"},
        ),
    },
    "gemma3": {
        "template": "gemma3.jinja",
        "specials": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>"],
        "tokens": {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"},
        "config": (
            "Gemma3TextConfig",
            {"eos_token_id": ["<eos>", "<end_of_turn>"], "bos_token_id": "<bos>", "pad_token_id": "<pad>"},
        ),
    },
}

# Sizes as in a real config.json (the smoke run shrinks them); what matters is the architecture and the ids.
SIZES = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 64, "max_position_embeddings": 8192}  # fmt: skip


def make_family(name: str, folder: Path) -> Path:
    """Write family `name`'s tokenizer files and config.json into `folder`; return it."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILIES[name]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=spec["specials"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_texts(), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, **spec["tokens"])
    tok.chat_template = (TEMPLATES / spec["template"]).read_text()
    folder = Path(folder)
    tok.save_pretrained(folder)

    cls_name, ids = spec["config"]
    resolved = {
        k: [bpe.token_to_id(t) for t in v] if isinstance(v, list) else bpe.token_to_id(v) for k, v in ids.items()
    }
    config = getattr(transformers, cls_name)(vocab_size=bpe.get_vocab_size(), **SIZES, **resolved)
    config.save_pretrained(folder)
    return folder


def _texts():
    with open(SAMPLE, encoding="utf-8") as f:
        for line in f:
            for m in json.loads(line)["messages"]:
                yield m["content"]
