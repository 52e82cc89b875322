"""`train --smoke --model DIR` for other model families: Llama (no pad token) and Gemma 3 (roles must alternate),
each with its real chat template, a tokenizer trained in-process and a tiny model built from its config.json,
through the real 4-bit NF4 + LoRA path. Also the tokenizer/model pairing checks and other architectures."""

import json

import bitsandbytes as bnb
import pytest
import torch

from analyze.tokenizer import load_tokenizer
from tests.conftest import SAMPLE
from tests.families import make_family
from train.cli import main, run_from_args

# Two user turns in a row: Gemma 3's template refuses it, Llama 3's renders it.
NOT_ALTERNATING = {
    "messages": [
        {"role": "user", "content": "First question."},
        {"role": "user", "content": "Second question."},
        {"role": "assistant", "content": "One answer."},
    ]
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The first 300 bundled conversations and one that does not alternate."""
    path = tmp_path_factory.mktemp("data") / "mixed.jsonl"
    lines = SAMPLE.read_text().splitlines()[:300]
    path.write_text("\n".join([*lines, json.dumps(NOT_ALTERNATING)]) + "\n")
    return path


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    made = {}

    def get(name):
        if name not in made:
            made[name] = make_family(name, tmp_path_factory.mktemp(name))
        return made[name]

    return get


@pytest.mark.training
@pytest.mark.parametrize("name", ["llama", "gemma3"])
def test_smoke_trains_a_tiny_model_of_the_family(name, family, data, tmp_path):
    model_dir = family(name)
    tok = load_tokenizer(str(model_dir))
    result = run_from_args(["--smoke", "--model", str(model_dir), "--data.train", str(data),
                            "--output-dir", str(tmp_path / "run")])  # fmt: skip

    # the architecture of config.json, really quantised to 4-bit, LoRA on top
    config = json.loads((result.output_dir / "smoke-model" / "config.json").read_text())
    assert config["model_type"] == json.loads((model_dir / "config.json").read_text())["model_type"]
    assert config["hidden_size"] == 64 and config["vocab_size"] >= len(tok)
    linear4 = [m for m in result.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linear4) == 14  # 2 layers × q, k, v, o, gate, up, down

    # padding without a pad token: Llama pads with EOS, Gemma with its own pad
    assert result.trainer.data_collator.pad_id == (
        tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    )
    assert (tok.pad_token_id is None) == (name == "llama")

    # BOS comes from the template, once: each record's ids are exactly apply_chat_template's
    table = result.data.tokenized.table
    first = json.loads(SAMPLE.read_text().splitlines()[0])["messages"]
    expected = tok.apply_chat_template(first, tokenize=True)["input_ids"]
    assert table.row_ids(0).tolist() == list(expected)
    assert expected[0] == tok.bos_token_id and expected.count(tok.bos_token_id) == 1

    # role orders the template refuses are counted skips, not crashes
    skips = result.data.tokenized.skips.counts
    assert skips.get("template_error", 0) == (1 if name == "gemma3" else 0)
    assert result.data.tokenized.records == (300 if name == "gemma3" else 301)

    evals = [float(r.split(",")[2]) for r in (result.log_csv.read_text().splitlines()[1:]) if r.split(",")[2]]
    assert len(evals) == 3 and evals[-1] < evals[0]
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_another_familys_tokenizer_is_refused_before_anything_slow(family, data, capsys):
    llama, gemma = str(family("llama")), str(family("gemma3"))
    # same vocabulary size, other ids: compared with the model's own tokenizer beside its config
    err = _error(capsys, ["--dry-run", "--model", llama, "--tokenizer", gemma, "--data.train", str(data)])
    assert "is not model" in err and "leave `tokenizer` empty" in err
    # the bundled Qwen3 tokenizer with a Llama model: more tokens than embeddings
    err = _error(capsys, ["--dry-run", "--model", llama, "--tokenizer", "bundled:qwen3", "--data.train", str(data)])
    assert "151,669 tokens" in err and "embeddings for 512" in err
    # and a small tokenizer for the default Qwen3 model: another vocabulary
    err = _error(capsys, ["--dry-run", "--tokenizer", llama, "--data.train", str(data)])
    assert "another vocabulary" in err


def test_the_models_own_tokenizer_passes_the_checks(family, data, capsys):
    gemma = str(family("gemma3"))
    assert main(["--dry-run", "--model", gemma, "--tokenizer", gemma, "--data.train", str(data)]) == 0


@pytest.mark.training
@pytest.mark.parametrize(
    "config_class", ["LlamaConfig", "MistralConfig", "Phi3Config", "Qwen2Config", "Gemma2Config", "Gemma3TextConfig"]
)
def test_other_architectures_keep_packed_conversations_apart(config_class, qwen3):
    """Any causal LM: a tiny model is built from the architecture's config (eager attention where it has no SDPA),
    and a conversation's logits inside a packed row equal its logits alone."""
    import transformers
    from transformers import AutoModelForCausalLM

    from train.model import attention_for
    from train.smoke import tiny_config

    config = tiny_config(getattr(transformers, config_class)().to_dict(), qwen3)  # as config.json reads
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attention_for(config)).eval()
    a, b = torch.randint(0, len(qwen3), (1, 7)), torch.randint(0, len(qwen3), (1, 5))
    row = torch.cat([a, b], dim=1)
    pos = torch.cat([torch.arange(7), torch.arange(5)])[None]
    with torch.no_grad():
        packed = model(input_ids=row, position_ids=pos).logits
        alone = model(input_ids=b, position_ids=torch.arange(5)[None]).logits
    assert config.hidden_size == 64
    torch.testing.assert_close(packed[:, 7:], alone, atol=1e-4, rtol=1e-4)


def test_dry_run_plans_without_loading_a_model(family, data, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--dry-run", "--json", "--model", str(family("llama")), "--data.train", str(data), "--output-dir", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    plan = json.loads(captured.out)  # stdout is the JSON document alone; the log went to stderr
    for key in ("model", "tokenizer", "max_length", "train_rows", "eval_rows", "train_conversations",
                "eval_conversations", "steps_per_epoch", "total_steps", "warmup_steps", "eval_steps", "save_steps",
                "evals"):  # fmt: skip
        assert key in plan, key
    assert plan["train_conversations"] + plan["eval_conversations"] <= 301
    assert plan["total_steps"] == 3 * plan["steps_per_epoch"]
    # at step 0, every eval_steps and at the end: at least schedule.min_evals (8) after the start
    assert plan["evals"] == 1 + -(-plan["total_steps"] // plan["eval_steps"]) >= 9
    assert "dry run: stopped before loading the model" in captured.err
    assert not out.exists()  # nothing written, nothing trained


@pytest.mark.training
def test_smoke_has_a_folder_of_its_own_and_runs_twice(family, data, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {family('llama')}\ndata:\n  train: [{data}]\nrun:\n  output_dir: out/real\n")
    argv = ["--config", str(config), "--smoke", "--max-steps", "2", "--schedule.min_evals", "2"]
    first = run_from_args(argv)
    assert first.output_dir == tmp_path / "out" / "real-smoke"  # relative to the config file, + "-smoke"
    assert f"smoke: writing into {first.output_dir}" in capsys.readouterr().out
    (first.output_dir / "notes.txt").write_text("mine")
    second = run_from_args(argv)  # the earlier smoke run is replaced, not resumed and not an error
    assert second.trainer.state.global_step == 2 and (second.output_dir / "checkpoint-2").is_dir()
    assert (second.output_dir / "notes.txt").read_text() == "mine"  # only what a smoke run writes is replaced

    # the real run is neither blocked by the smoke run's checkpoints nor able to resume them
    err_real = _error(capsys, ["--config", str(config), "--resume", "--device", "cpu"])
    assert "no complete checkpoint" in err_real and "real-smoke" not in err_real
    # and a smoke run's folder is never used as a real run's
    err = _error(capsys, ["--config", str(config), "--device", "cpu", "--output-dir", str(second.output_dir)])
    assert "holds a --smoke run" in err


@pytest.mark.training
def test_a_multimodal_model_gets_adapters_on_its_language_model_only(tmp_path):
    """Gemma 3 4B+ loads with a vision tower: LoRA goes on the language model, its text config gives the limits."""
    from transformers import AutoModelForCausalLM, Gemma3Config

    from analyze.model_facts import load_model_config, model_positions
    from analyze.schema import LoraConfig
    from train.model import load_model, pick_precision
    from train.smoke import TINY

    text = {**TINY, "vocab_size": 512, "max_position_embeddings": 512}  # the smoke run's tiny sizes
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 16}  # fmt: skip
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, boi_token_index=500,
                          eoi_token_index=501, image_token_index=502)  # fmt: skip
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    assert model_positions(load_model_config(str(tmp_path))) == 512  # from text_config
    model = load_model(str(tmp_path), pick_precision("cpu"), LoraConfig(), True, seed=0)
    adapted = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert len(adapted) == 14 and all("language_model" in n for n in adapted)
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) >= 14


def test_the_memory_plans_eager_list_is_what_the_trainer_picks():
    """`analyze.memory.EAGER_ATTENTION` (the memory plan, without transformers) names exactly the architectures of
    transformers' causal LMs that `attention_for` trains with eager attention."""
    import transformers

    from analyze.memory import EAGER_ATTENTION
    from train.model import attention_for

    configs = ["LlamaConfig", "MistralConfig", "Phi3Config", "Qwen2Config", "Qwen3Config", "Gemma2Config",
               "Gemma3TextConfig", "Gemma3Config", "Cohere2Config", "GraniteConfig"]  # fmt: skip
    eager = {
        getattr(transformers, c).model_type for c in configs if attention_for(getattr(transformers, c)()) == "eager"
    }
    assert eager == EAGER_ATTENTION
