"""This project's trainer against TRL's `SFTTrainer` on the same model, data, LoRA, 4-bit settings and steps.

    pip install 'lengthscan[trl]'
    python benchmarks/bench_vs_trl.py                                # CPU: a random Qwen3, 3 repeats of 4 steps
    python benchmarks/bench_vs_trl.py --repeats 1 --steps 2          # the smallest run (tests/test_bench_vs_trl.py)
    python benchmarks/bench_vs_trl.py --device cuda --model DIR --max-length 1024 --records 2354   # T4 fp16 path

Three arms, each run in a process of its own, interleaved (ours, trl_padded, trl_packed, ours, …):

    ours        `train`'s own pipeline: config → train.data tokenize / build (packed rows) → train.model.load_model
                → train.trainer_setup.make_trainer (PackedTrainer), exactly as `train` runs it
    trl_padded  SFTTrainer, assistant_only_loss=True, one conversation per row, padded to the micro-batch's longest
    trl_packed  SFTTrainer, assistant_only_loss=True, packing=True (TRL's default: best-fit decreasing, padding-free)

All three load the same model folder with the same BitsAndBytesConfig (NF4, double quantisation, compute dtype) and
peft LoraConfig (r, alpha, dropout, all-linear), and train the same micro-batch × gradient accumulation, learning
rate and schedule (no warm-up) for the same number of optimizer steps, with gradient checkpointing, SDPA attention and
no evaluation. The first optimizer step is a warm-up and is not timed. Per run:

- real (non-padding) and supervised tokens per second over the timed steps (data loading included);
- peak memory of training above the loaded model: CPU, resident memory (its high-water mark reset before training,
  minus the resident memory once the model was loaded); CUDA, max_memory_allocated above the loaded model, and
  max_memory_reserved;
- data preparation: records on disk to the trainer's ready dataset (ours: tokenize, plan and pack, with an empty token
  cache; TRL: `datasets.load_dataset("json")` plus SFTTrainer's own preparation: tokenize, labels, truncate or pack);
- the train loss of the last step and the run's mean;
- `load_1min`, the machine's 1-minute load average as the run ended: at most about the arm's own threads if nothing else
  ran. Timings from a busy machine are not comparable; interleaving and medians only soften that.

Each number is the median over the repeats; ratios are ours / TRL's medians.

What the CPU numbers mostly measure: with Qwen3's 151,680-row output layer on a 256-wide model, the output layer and
the loss are most of a step. Ours computes logits for the supervised positions only (`train.loss`); TRL 1.16's fused
LM head (`trl.trainer.utils.add_fused_lm_head`) scores only labelled positions with its Triton kernel on CUDA, but on
the CPU its pure-PyTorch fallback scores every position of the batch, prompts and padding included, and also computes
the entropy and top-1 accuracy it logs. At a real model's size the transformer layers dominate instead: measure there
with `--device cuda --model DIR`. TRL also casts the LoRA adapters of a 4-bit model to bf16 (ours keeps them fp32);
each run reports `lora_dtype`.

Loss: both divide the summed token losses by the supervised tokens of the whole optimizer step (transformers'
`num_items_in_batch`), but supervise different tokens. Ours: each assistant turn's output and its `<|im_end|>`, the
template's own rendering. TRL: its Qwen3 training template, which renders `<think>\\n\\n</think>\\n\\n` in *every*
assistant turn and supervises it together with the output, `<|im_end|>` and the newline after it. Those extra tokens
are easy to predict, so TRL's loss falls below ours for the same model: compare each arm's loss with itself.

Assistant-only loss in TRL needs `{% generation %}` markers in the chat template. Qwen3's has none; SFTTrainer swaps in
its own training template only for templates it knows byte for byte, and the bundled Qwen3 template is an older
revision than TRL's copy, so `assistant_only_loss=True` alone raises "patching is not supported for this template".
This script passes TRL's own `chat_templates/qwen3_training.jinja` as `chat_template_path`, TRL's documented way to
set a training template (`trl_chat_template`).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from analyze.config import with_values  # noqa: E402  (no torch: the module imports in milliseconds)
from analyze.schema import Config  # noqa: E402

DEFAULTS = Config()
SAMPLE = ROOT / "data" / "hh-rlhf-helpful-base-test.messages.jsonl"
ARMS = ("ours", "trl_padded", "trl_packed")
TRLS = ARMS[1:]
RATIOS = ("real_tokens_per_s", "supervised_tokens_per_s", "peak_mib", "data_prep_s")  # ours / TRL's, per TRL arm
CUDA_RATIOS = ("peak_reserved_mib",)
MEDIANS = (*RATIOS, *CUDA_RATIOS, "final_loss", "mean_loss", "train_s")
# lines of a child's output worth showing: library warnings, among them torch's "an autograd kernel was not registered
# … silently incorrect behavior", which here means bitsandbytes' repacked CPU path: no gradient through 4-bit layers
WARNING_MARKS = ("warn", "not registered", "silently", "deprecat", "failed")


@dataclass
class Settings:
    """One comparison: what every arm shares. Unless set, the values of `train`'s default config."""

    model: str  # the model folder all arms load
    data: str  # the JSONL of records all arms read
    tokenizer: str = "bundled:qwen3"
    device: str = "cpu"  # cpu (fp32, AdamW) or cuda (the T4 path: fp16 autocast, paged 8-bit AdamW)
    max_length: int = DEFAULTS.max_length
    micro_batch_size: int = 2  # the config's 4 × 4 makes a CPU run several times longer
    grad_accum_steps: int = 2
    learning_rate: float = DEFAULTS.optim.learning_rate
    steps: int = 4  # optimizer steps; the first is a warm-up, not timed
    seed: int = DEFAULTS.optim.seed
    lora_r: int = DEFAULTS.lora.r
    lora_alpha: int = DEFAULTS.lora.alpha
    lora_dropout: float = DEFAULTS.lora.dropout
    gradient_checkpointing: bool = DEFAULTS.run.gradient_checkpointing
    threads: int = 0  # torch's CPU threads in every arm (0: torch's default, one per core)
    out: str = ""  # the arm's output folder (set per run)


def our_config(s: Settings):
    """The `train` config of these settings: all records train (no eval hold-out), logging every step, no warm-up."""
    return with_values(
        DEFAULTS,
        {
            "model": s.model,
            "tokenizer": s.tokenizer,
            "max_length": s.max_length,
            "data.train": [s.data],
            "data.eval_fraction": 0.0,
            "optim.micro_batch_size": s.micro_batch_size,
            "optim.grad_accum_steps": s.grad_accum_steps,
            "optim.learning_rate": s.learning_rate,
            "optim.seed": s.seed,
            "lora.r": s.lora_r,
            "lora.alpha": s.lora_alpha,
            "lora.dropout": s.lora_dropout,
            "run.device": s.device,
            "run.max_steps": s.steps,
            "run.logging_steps": 1,
            "run.output_dir": s.out,
            "run.gradient_checkpointing": s.gradient_checkpointing,
            "schedule.warmup": 0,  # the same schedule in both trainers (TRL: warmup_steps=0)
            "schedule.min_evals": 0,  # no checkpoint inside the timed steps (one is saved at the end)
        },
        where="bench_vs_trl",
    )


def precision_for(device: str):
    """CPU: fp32 and AdamW, as `train` on a CPU; CUDA: the T4 path (fp16 autocast, LoRA fp32, paged 8-bit AdamW)
    on any GPU, so a bigger GPU measures what a T4 would run."""
    import torch

    from analyze.memory import GPU_OPTIMIZER
    from train.model import Precision, pick_precision

    if device == "cpu":
        return pick_precision("cpu")
    return Precision("cuda", "fp16 autocast, LoRA in fp32 (T4 path)", torch.float16, True, False, GPU_OPTIMIZER)


class Memory:
    """Peak memory of training above the loaded model: `loaded()` after the model loads, `start()` just before
    training, `peak()` after it."""

    def __init__(self, device: str):
        self.device, self.since = device, "training"

    def loaded(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = _status_kib("VmRSS") * 1024

    def start(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
            return
        try:  # Linux 4.0+: "5" resets the resident high-water mark, so loading's transient peak is not counted
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.since = "process start"

    def peak(self) -> dict:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            return {
                "peak_mib": round((torch.cuda.max_memory_allocated() - self.base) / 2**20, 1),
                "peak_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20, 1),
                "model_mib": round(self.base / 2**20, 1),
            }
        return {
            "peak_mib": round((_status_kib("VmHWM") * 1024 - self.base) / 2**20, 1),
            "model_mib": round(self.base / 2**20, 1),  # the whole process once the model is loaded
            "peak_since": self.since,
        }


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _meter():
    """A TrainerCallback that times each optimizer step and counts the tokens of each (see `Meter.attach`)."""
    from transformers import TrainerCallback

    class Meter(TrainerCallback):
        def __init__(self, device: str):
            self.device = device
            self.ends: dict[int, float] = {}  # optimizer step → when it ended
            self.tokens: dict[int, list[int]] = {}  # optimizer step → [real, supervised, token slots]

        def attach(self, trainer) -> None:
            """Count each micro-batch as the Trainer hands it to `training_step` (the batch the model sees)."""
            step = trainer.training_step

            def counted(model, inputs, *args, **kwargs):
                counts = self.tokens.setdefault(trainer.state.global_step + 1, [0, 0, 0])
                for i, n in enumerate(batch_tokens(inputs)):
                    counts[i] += n
                return step(model, inputs, *args, **kwargs)

            trainer.training_step = counted

        def on_step_end(self, args, state, control, **kwargs):
            if self.device == "cuda":
                import torch

                torch.cuda.synchronize()
            self.ends[state.global_step] = time.perf_counter()

        def rates(self) -> dict:
            """Tokens per second over steps 2..N (step 1 warms up allocators and kernels)."""
            last = max(self.ends)
            seconds = self.ends[last] - self.ends[1]
            real, supervised, slots = (sum(self.tokens[k][i] for k in range(2, last + 1)) for i in range(3))
            return {
                "timed_steps": last - 1,
                "train_s": round(seconds, 3),
                "real_tokens": real,
                "supervised_tokens": supervised,
                "real_token_share": round(real / max(slots, 1), 4),
                "real_tokens_per_s": round(real / seconds, 1),
                "supervised_tokens_per_s": round(supervised / seconds, 1),
            }

    return Meter


def batch_tokens(inputs: dict) -> tuple[int, int, int]:
    """(real tokens, supervised tokens, token slots) of one micro-batch of either trainer.

    Real: ours carries `real_tokens` per row; TRL's padded batches have an attention mask; TRL's padding-free batches
    are one row of real tokens only. Supervised: labels other than -100 past the first position (the tokens the loss
    is put on, as transformers' `num_items_in_batch` counts them).

    >>> import torch
    >>> batch_tokens({"input_ids": torch.zeros(2, 4), "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
    ...               "labels": torch.tensor([[-100, 5, 6, -100], [-100, 7, -100, -100]])})
    (5, 3, 8)
    """
    ids, labels = inputs["input_ids"], inputs["labels"]
    if "real_tokens" in inputs:
        real = int(inputs["real_tokens"].sum())
    elif "attention_mask" in inputs:
        real = int(inputs["attention_mask"].sum())
    else:
        real = ids.numel()
    return real, int((labels[..., 1:] != -100).sum()), ids.numel()


def run_ours(s: Settings, say=print) -> dict:
    """`train`'s own pipeline, as `train.fit.train` runs it, with the meter and memory probe added."""
    from analyze.tokenizer import load_tokenizer
    from train import data as data_mod
    from train.model import load_model
    from train.trainer_setup import make_trainer

    cfg, precision = our_config(s), precision_for(s.device)
    tokenizer = load_tokenizer(s.tokenizer)
    start = time.perf_counter()
    tokenized = data_mod.tokenize(cfg, tokenizer, data_mod.data_files(cfg))
    data = data_mod.build(cfg, tokenizer, tokenized)
    prep = time.perf_counter() - start
    memory = Memory(s.device)
    # as train loads it (its 4-bit layers keep a differentiable path on the CPU)
    model = load_model(s.model, precision, cfg.lora, cfg.run.gradient_checkpointing, cfg.optim.seed)
    memory.loaded()
    meter = _meter()(s.device)
    trainer = make_trainer(cfg, data, model, tokenizer, precision, Path(s.out), [meter], say=say)
    meter.attach(trainer)
    memory.start()
    result = trainer.train()
    return _row("ours", prep, meter, memory, trainer, result) | {
        "rows": len(data.train),
        "conversations": data.train.conversations,
        "loss_path": trainer.loss_path.name,
    }


def run_trl(s: Settings, packing: bool, say=print) -> dict:
    """TRL's SFTTrainer on the same model folder, data, quantisation, LoRA and optimisation settings."""
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from trl import SFTConfig, SFTTrainer

    from analyze.model_facts import load_model_config
    from analyze.tokenizer import load_tokenizer
    from train.model import attention_for, keep_4bit_differentiable

    datasets.disable_progress_bars()
    cfg, precision = our_config(s), precision_for(s.device)
    tokenizer = load_tokenizer(s.tokenizer)
    template, how = trl_chat_template(tokenizer)
    say(f"trl: assistant-only loss through {how}")

    class TimedSFT(SFTTrainer):
        """SFTTrainer that times its own dataset preparation (tokenize, labels, truncate or pack)."""

        prepare_s = 0.0

        def _prepare_dataset(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return super()._prepare_dataset(*args, **kwargs)
            finally:
                TimedSFT.prepare_s += time.perf_counter() - start

    memory = Memory(s.device)
    quant = BitsAndBytesConfig(  # train.model.load_model's
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=precision.compute_dtype,
    )
    model = AutoModelForCausalLM.from_pretrained(
        s.model,
        quantization_config=quant,
        dtype=precision.compute_dtype,
        attn_implementation=attention_for(load_model_config(s.model)),
        device_map={"": 0} if s.device == "cuda" else {"": "cpu"},
    )
    memory.loaded()
    start = time.perf_counter()
    records = datasets.load_dataset("json", data_files=s.data, split="train")
    load_s = time.perf_counter() - start
    # transformers 5.2x renamed gradient_checkpointing* to activation_checkpointing* (the old names warn)
    name = "activation" if "activation_checkpointing" in SFTConfig.__dataclass_fields__ else "gradient"
    checkpointing = {f"{name}_checkpointing": s.gradient_checkpointing}
    checkpointing[f"{name}_checkpointing_kwargs"] = {"use_reentrant": False}  # as train.model.load_model
    args = SFTConfig(
        output_dir=s.out,
        per_device_train_batch_size=s.micro_batch_size,
        gradient_accumulation_steps=s.grad_accum_steps,
        learning_rate=s.learning_rate,
        lr_scheduler_type=cfg.optim.lr_scheduler,
        warmup_steps=0,
        max_steps=s.steps,
        weight_decay=cfg.optim.weight_decay,
        seed=s.seed,
        data_seed=s.seed,
        optim=precision.optim,
        fp16=precision.fp16,
        bf16=precision.bf16,  # SFTConfig's default is bf16=True: set either way
        use_cpu=s.device == "cpu",
        **checkpointing,
        eval_strategy="no",
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        dataloader_pin_memory=s.device == "cuda",
        disable_tqdm=True,
        max_length=s.max_length,
        packing=packing,
        assistant_only_loss=True,
        chat_template_path=template,
    )
    lora = LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
    )
    meter = _meter()(s.device)
    trainer = TimedSFT(
        model=model, args=args, train_dataset=records, processing_class=tokenizer, peft_config=lora, callbacks=[meter]
    )
    kept = keep_4bit_differentiable(trainer.model) if s.device == "cpu" else 0  # as load_model does for ours
    meter.attach(trainer)
    memory.start()
    result = trainer.train()
    adapter = next(p for p in trainer.model.parameters() if p.requires_grad)
    arm = "trl_packed" if packing else "trl_padded"
    return _row(arm, load_s + TimedSFT.prepare_s, meter, memory, trainer, result) | {
        "rows": len(trainer.train_dataset),
        "chat_template": how,
        "lora_dtype": str(adapter.dtype).replace("torch.", ""),  # TRL casts adapters of a 4-bit model to bf16
        "kept_differentiable": kept,
    }


def _row(arm: str, prep: float, meter, memory: Memory, trainer, result) -> dict:
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    row = {"arm": arm, "data_prep_s": round(prep, 3), **meter.rates(), **memory.peak()}
    row["final_loss"] = round(float(losses[-1]), 4) if losses else None
    row["mean_loss"] = round(float(result.training_loss), 4)
    return row


def trl_chat_template(tokenizer) -> tuple[str | None, str]:
    """(`chat_template_path` for SFTConfig, how TRL gets assistant-only labels) for this tokenizer's template.

    TRL's assistant mask comes from `{% generation %}` markers. A template that has them is used as it is; one TRL
    recognises is swapped for TRL's training variant inside SFTTrainer; an unrecognised Qwen3 template (the bundled
    one) gets TRL's own Qwen3 training template as a file. Anything else: a one-line error.
    """
    import trl
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return None, "the tokenizer's own template ({% generation %} markers)"
    try:
        get_training_chat_template(tokenizer)
        return None, "SFTTrainer's swap to its training template for this template"
    except ValueError:
        pass
    if "<|im_start|>" in tokenizer.chat_template and "<think>" in tokenizer.chat_template:
        path = Path(trl.__file__).parent / "chat_templates" / "qwen3_training.jinja"
        return str(
            path
        ), "TRL's qwen3_training.jinja as chat_template_path (this Qwen3 template is not one TRL patches)"
    raise SystemExit(
        "bench_vs_trl: TRL cannot mask assistant tokens with this chat template (no {% generation %} markers, not one "
        "TRL patches); pass --tokenizer with a template that has them"
    )


def run_arm(arm: str, s: Settings, say=print) -> dict:
    """One arm in this process (`compare` runs each in a process of its own)."""
    if s.threads:
        import torch

        torch.set_num_threads(s.threads)
    if arm == "ours":
        return run_ours(s, say)
    return run_trl(s, arm == "trl_packed", say)


def build_model(folder: Path, tokenizer, hidden: int, layers: int, seed: int) -> Path:
    """A random Qwen3 (the bundled config's architecture) of `hidden` × `layers`, with the tokenizer's vocabulary."""
    import torch
    from transformers import AutoModelForCausalLM

    from analyze.model_facts import load_model_config
    from train.smoke import tiny_config

    tiny = tiny_config(load_model_config("Qwen/Qwen3-1.7B"), tokenizer)  # the vocabulary, special ids, fp32
    values = tiny.to_dict()
    values.pop("layer_types", None)  # derived from num_hidden_layers again
    values |= {"hidden_size": hidden, "intermediate_size": 3 * hidden, "num_hidden_layers": layers, "head_dim": 64}
    values |= {"num_attention_heads": max(1, hidden // 64), "num_key_value_heads": max(1, hidden // 128)}
    config = type(tiny).from_dict(values)
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config, dtype=torch.float32).save_pretrained(folder)
    return folder


def slice_records(source: Path, n: int, dest: Path) -> Path:
    """The first `n` records of `source` (all when n <= 0), as a file every arm reads."""
    with open(source, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    dest.write_text("".join(lines[:n] if n > 0 else lines), encoding="utf-8")
    return dest


def run_in_subprocess(arm: str, s: Settings, tmp: Path) -> tuple[dict, list[str]]:
    """One arm in a process of its own, with empty caches (ours: the token cache; TRL: datasets'): (row, warnings)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), LENGTHSCAN_CACHE=str(tmp / "cache"))
    env["HF_DATASETS_CACHE"] = str(tmp / "datasets")
    s = replace(s, out=str(tmp / "out"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_arm", arm, "--_settings", json.dumps(asdict(s))]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise SystemExit(f"bench_vs_trl: the {arm} arm failed (exit {done.returncode}):\n{tail}")
    found = [x.strip() for x in (done.stderr + done.stdout).splitlines() if any(m in x.lower() for m in WARNING_MARKS)]
    found = [x for x in found if not x.startswith("warnings.warn(")]  # the source line printed under a warning
    return json.loads(lines[-1]) | {"load_1min": round(os.getloadavg()[0], 2)}, list(dict.fromkeys(found))


def compare(s: Settings, repeats: int, say=print) -> dict:
    """Every arm `repeats` times, interleaved, each in its own process; medians per arm, ratios ours / TRL's."""
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    warnings: dict[str, list[str]] = {arm: [] for arm in ARMS}
    for r in range(repeats):
        for arm in ARMS:
            with tempfile.TemporaryDirectory(prefix=f"bench_vs_trl_{arm}_") as tmp:
                row, found = run_in_subprocess(arm, s, Path(tmp))
            runs[arm].append(row)
            warnings[arm] = list(dict.fromkeys(warnings[arm] + found))
            say(f"repeat {r + 1}/{repeats} {_describe(row)}")
    medians = {arm: _medians(rows) for arm, rows in runs.items()}
    ratios = {
        trl: {k: _ratio(medians["ours"].get(k), medians[trl].get(k)) for k in (*RATIOS, *CUDA_RATIOS)} for trl in TRLS
    }
    ratios = {trl: {k: v for k, v in r.items() if v is not None} for trl, r in ratios.items()}
    return {"runs": runs, "medians": medians, "ratios": ratios, "warnings": warnings}


def _medians(rows: list[dict]) -> dict:
    out = {}
    for key in MEDIANS:
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            out[key] = round(float(statistics.median(values)), 4)
    return out


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or not theirs:
        return None
    return round(ours / theirs, 4)


def _describe(row: dict) -> str:
    return (
        f"{row['arm']:>10}: {row['real_tokens_per_s']:,.0f} real / {row['supervised_tokens_per_s']:,.0f} supervised "
        f"tokens/s, peak {row['peak_mib']:,.0f} MiB above the model, data {row['data_prep_s']:.2f} s, loss "
        f"{row['final_loss']} (mean {row['mean_loss']}), {row['rows']} rows, load {row.get('load_1min')}"
    )


def table(result: dict) -> list[str]:
    """The medians of each arm and the ratios, as aligned text."""
    m, r = result["medians"], result["ratios"]
    keys = [k for k in MEDIANS if k in m["ours"]]
    lines = [f"{'median':<26}" + "".join(f"{a:>13}" for a in ARMS) + "".join(f"{'ours/' + t[4:]:>15}" for t in TRLS)]
    for k in keys:
        cells = "".join(f"{m[a].get(k, float('nan')):>13,.4g}" for a in ARMS)
        ratio = "".join(f"{r[t][k]:>14.2f}x" if k in r[t] else f"{'':>15}" for t in TRLS)
        lines.append(f"{k:<26}{cells}{ratio}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--model", help="a model folder (default: a random Qwen3 of --hidden × --layers built here)")
    p.add_argument("--tokenizer", default="bundled:qwen3", help="hub id, folder or bundled:qwen3 (default)")
    p.add_argument("--hidden", type=int, default=256, help="the random model's hidden size")
    p.add_argument("--layers", type=int, default=4, help="the random model's layers")
    p.add_argument("--data", default=str(SAMPLE), help="a JSONL of {'messages': [...]} records (the bundled sample)")
    p.add_argument("--records", type=int, default=1000, help="use the first N records (0 = all)")
    p.add_argument("--max-length", type=int, default=Settings.max_length)
    p.add_argument("--micro-batch", type=int, default=Settings.micro_batch_size)
    p.add_argument("--grad-accum", type=int, default=Settings.grad_accum_steps)
    p.add_argument("--lr", type=float, default=Settings.learning_rate)
    p.add_argument(
        "--steps", type=int, default=Settings.steps, help="optimizer steps per run, at least 2 (1 not timed)"
    )
    p.add_argument("--repeats", type=int, default=3, help="runs of each arm, interleaved")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per arm (0: one per core)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--_arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    p.add_argument("--_settings", help=argparse.SUPPRESS)
    args = p.parse_args()
    try:
        import trl
    except ImportError:
        print("bench_vs_trl: TRL is not installed; pip install 'lengthscan[trl]'", file=sys.stderr)
        sys.exit(2)
    if args._arm:
        row = run_arm(args._arm, Settings(**json.loads(args._settings)), say=lambda x: print(x, file=sys.stderr))
        print(json.dumps(row))
        return
    if args.steps < 2:
        p.error("--steps must be at least 2: the first optimizer step is a warm-up and is not timed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers

    from analyze.tokenizer import load_tokenizer

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_vs_trl_") as tmp:
        tmp = Path(tmp)
        data = slice_records(Path(args.data), args.records, tmp / "records.jsonl")
        model = args.model
        if model is None:
            model = str(
                build_model(tmp / "model", load_tokenizer(args.tokenizer), args.hidden, args.layers, Settings.seed)
            )
        s = Settings(
            model=model,
            data=str(data),
            tokenizer=args.tokenizer,
            device=args.device,
            max_length=args.max_length,
            micro_batch_size=args.micro_batch,
            grad_accum_steps=args.grad_accum,
            learning_rate=args.lr,
            steps=args.steps,
            threads=args.threads,
        )
        what = args.model or f"random Qwen3, hidden {args.hidden}, {args.layers} layers"
        threads = args.threads or torch.get_num_threads()
        print(
            f"{what}; {args.device} ({threads} threads); {args.records or 'all'} records of "
            f"{Path(args.data).name}; max_length {s.max_length}, {s.micro_batch_size} x {s.grad_accum_steps}, "
            f"{s.steps} steps ({s.steps - 1} timed), {args.repeats} repeats; TRL {trl.__version__}",
            flush=True,
        )
        result = compare(s, args.repeats, say=lambda x: print(x, flush=True))
    for line in table(result):
        print(line)
    for arm, found in result["warnings"].items():
        for w in found:
            print(f"warning ({arm}): {w[:300]}")
    result |= {
        "device": args.device,
        "model": what,
        "records": args.records,
        "settings": {k: v for k, v in asdict(s).items() if k not in ("out", "model", "data")},
        "repeats": args.repeats,
        "trl": trl.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
