"""The config's schema: one typed dataclass per concern, shared by `lengthscan` and `train`, each field with its
default, its help text and the values it takes. Reading, checking and writing a config is `analyze.config`'s job;
this module imports nothing of the project, so anything may import it.

Defaults are the tuning guide's run (LoRA r=16, alpha=16, dropout 0.05 on all linear layers, 4 × 4 batch,
lr 2e-4 cosine, 200 warmup steps, 3 epochs, max_length 512, T4). Each field's help text lives here once; the
default YAML file and its comments are generated from it (`analyze.config.default_yaml`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

AUTO = "auto"  # data.format: detect each record's format from its keys
FORMATS = (AUTO, "messages", "sharegpt", "alpaca", "prompt_completion", "text")  # `analyze.formats` reads each
DEFAULT_SPLIT = "train"  # the split read from a Hugging Face dataset unless one is named (`data.split`)
DEFAULT_CONFIG_NAME = "lengthscan.yaml"
SMOKE_DIR_SUFFIX = "-smoke"  # `train --smoke` writes into run.output_dir + this: never the real run's folder
OVERLONG_POLICIES = ("cut_turns", "truncate", "drop")
SUGGEST_POLICIES = ("coverage", "supervised")
RUN_DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32")
PLATEAU_ACTIONS = ("warn", "stop")
# transformers schedules that need no extra arguments (a test checks each is a transformers SchedulerType)
LR_SCHEDULERS = (
    "cosine", "cosine_with_restarts", "linear", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt"
)  # fmt: skip
# Keys whose values are file paths: in a config file they are relative to the file's own folder.
PATH_KEYS = ("data.train", "data.eval", "data.tools", "chat_template", "run.output_dir")
# Keys that name a hub id or a local folder: relative to the config file when such a folder exists there.
PATH_OR_ID_KEYS = ("model", "tokenizer")


def _f(default, help: str, *, choices: tuple | None = None, ge=None, gt=None, le=None, lt=None):
    """A config field: its default, its help text, and what values it takes (checked by `analyze.config.check`)."""
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    train: list[str] = _f(
        [],
        "training data: files (.jsonl, .ndjson, .json, optionally .gz or .zst; .parquet, .arrow), folders, globs, or "
        "Hugging Face dataset ids; lengthscan uses them when given none",
    )
    split: str = _f(
        DEFAULT_SPLIT, "the split read from a Hugging Face dataset (a hub id or a dataset repository folder)"
    )
    subset: str | None = _f(None, "the subset (configuration) of a Hugging Face dataset, if it has several")
    format: str = _f(AUTO, f"record format: {', '.join(FORMATS[:-1])} or {FORMATS[-1]}", choices=FORMATS)
    eval: list[str] = _f([], "train: held-out eval files; empty = hold out eval_fraction of the conversations")
    eval_fraction: float = _f(
        0.05,
        "share of conversations held out for eval when there are no eval files, chosen by a hash of each "
        "conversation's content (the same ones at any max_length); 0 = none",
        ge=0.0,
        lt=0.5,
    )
    eval_max: int = _f(
        2000, "…and at most this many conversations (the lowest hashes), so evaluating stays cheap on big data", ge=1
    )
    tools: str | None = _f(
        None, "a JSON file with a list of tool schemas, given to the template for records that have no 'tools'"
    )
    fix_roles: bool = _f(
        False,
        "when the chat template refuses a conversation's roles: merge consecutive turns of one role, then fold tool "
        "turns into user and assistant text; each change is counted in the report (off: such records are skipped)",
    )
    max_skip: float = _f(
        0.05,
        "stop (exit 2) when more than this share of the records is skipped (malformed, unknown format, refused by "
        "the template…), naming the top reasons; 1 = never",
        ge=0.0,
        le=1.0,
    )


@dataclass
class LoraConfig:
    r: int = _f(16, "LoRA rank: adapter capacity (the guide's first lever is r=32 with alpha=32)", ge=1)
    alpha: int = _f(16, "LoRA alpha; the adapter's scale is alpha / r", ge=1)
    dropout: float = _f(0.05, "dropout on the LoRA path", ge=0.0, lt=1.0)
    target_modules: str | list[str] = _f("all-linear", "layers that get adapters: all-linear or a list of names")


@dataclass
class OptimConfig:
    micro_batch_size: int = _f(4, "rows per forward pass on the GPU", ge=1)
    grad_accum_steps: int = _f(4, "micro-batches per optimizer step (effective batch = micro_batch_size × this)", ge=1)
    learning_rate: float = _f(2e-4, "peak learning rate", gt=0.0, le=1.0)
    lr_scheduler: str = _f("cosine", f"learning-rate schedule: {', '.join(LR_SCHEDULERS)}", choices=LR_SCHEDULERS)
    epochs: float = _f(
        3.0, "passes over the training data (the guide: not more than 3 for dialogue)", gt=0.0, le=1000.0
    )
    weight_decay: float = _f(0.0, "AdamW weight decay", ge=0.0, lt=1.0)
    seed: int = _f(42, "seed for shuffling, the eval hold-out and LoRA initialisation", ge=0, le=2**32 - 1)


@dataclass
class RunConfig:
    output_dir: str = _f(
        "runs/lengthscan",
        "train: folder for checkpoints, logs, the adapter and the resolved config (--smoke uses this name + "
        f"'{SMOKE_DIR_SUFFIX}')",
    )
    device: str = _f(
        "auto", "train: auto (CUDA when present), cuda, or cpu (slow; for checks, not real runs)", choices=RUN_DEVICES
    )
    precision: str = _f(
        "auto",
        "train: auto (bf16 autocast where the GPU has bf16, fp16 on a T4, fp32 for architectures that overflow fp16 "
        "there) or fp32 (no autocast: slower; attention and the adapters' inputs take twice the bytes, the memory "
        "plan counts it)",
        choices=PRECISIONS,
    )
    max_steps: int = _f(-1, "train: stop after this many optimizer steps (-1 = all epochs)", ge=-1)
    save_total_limit: int = _f(3, "train: keep at most this many checkpoints", ge=1)
    logging_steps: int = _f(10, "train: log loss, learning rate and throughput every N optimizer steps", ge=1)
    gradient_checkpointing: bool = _f(
        True, "train: recompute activations in the backward pass: far less memory, ~30% slower"
    )
    memory_check: bool = _f(
        True, "train: refuse, before loading the model, a config the memory plan predicts will not fit the GPU"
    )


@dataclass
class PlateauConfig:
    action: str = _f(
        "warn",
        "plateau watch: on a real plateau, warn (write the advice and go on) or stop the run",
        choices=PLATEAU_ACTIONS,
    )
    min_evals: int = _f(2, "plateau watch: eval loss must be flat across at least this many evaluations…", ge=2)
    eval_tolerance: float = _f(
        0.01,
        "plateau watch: a change under this share of the loss is noise until 6 evaluations give the run's own noise "
        "(and a train–eval gap must widen by at least this)",
        gt=0.0,
        lt=1.0,
    )
    train_band: float = _f(
        0.1, "plateau watch: 'tight band' = train loss p10–p90 spread under this share of its mean", gt=0.0
    )
    train_drift: float = _f(
        0.02, "plateau watch: 'no downward drift' = the trend fell less than this share over the window", gt=0.0
    )
    overfit_evals: int = _f(
        3,
        "plateau watch: overfitting = train below eval, eval not improving over this many evals, and eval risen "
        "from its best or the gap widening",
        ge=2,
    )


@dataclass
class ScheduleConfig:
    warmup: float = _f(
        200,
        "linear learning-rate warm-up, in guide steps (a guide step = micro_batch_size × grad_accum_steps × processes "
        "conversations, unpacked: the guide's batches of 4 × 4)",
        ge=0,
    )
    warmup_max: float = _f(0.05, "…and at most this share of the run's optimizer steps", gt=0.0, le=1.0)
    eval_every: float = _f(200, "evaluate every N guide steps…", gt=0)
    save_every: float = _f(200, "save a checkpoint every N guide steps… (train --resume continues from the last)", gt=0)
    min_evals: int = _f(
        8, "…shortened so the run has at least this many evaluations and checkpoints (0 = never shortened)…", ge=0
    )
    max_evals: int = _f(
        100, "…and lengthened so it has at most this many (each costs a pass over the eval set; 0 = no limit)", ge=0
    )
    plateau_window: float = _f(
        1000, "plateau watch: eval loss flat across this many guide steps (the guide: 2+ evals, 1000+ steps)…", gt=0
    )
    plateau_max: float = _f(
        0.25, "…and at most this share of the run (the guide's 1000 of its ~6,000 steps is 1/6)", gt=0.0, le=1.0
    )


@dataclass
class SuggestConfig:
    policy: str = _f(
        "coverage",
        "how max_length is suggested: coverage (records fit whole) or supervised (assistant tokens kept)",
        choices=SUGGEST_POLICIES,
    )
    target: float = _f(0.99, "the share the policy must keep (0.99: 99% of records fit whole)", gt=0.0, le=1.0)
    round_to: int = _f(64, "round the suggestion up to a multiple of this", ge=1)


@dataclass
class Config:
    model: str = _f("Qwen/Qwen3-1.7B", "base model: Hugging Face hub id or local folder (4-bit QLoRA fits a T4)")
    tokenizer: str | None = _f(
        None, "tokenizer: hub id or folder; empty = the model's own (bundled for Qwen3, so it works offline)"
    )
    chat_template: str | None = _f(None, "a Jinja chat template file to use instead of the tokenizer's")
    max_length: int = _f(512, "tokens per training row; `lengthscan --write-config` sets it from the data", ge=1)
    max_length_source: dict | None = _f(
        None, "where max_length came from: data and tokenizer fingerprints (written by lengthscan; train checks them)"
    )
    overlong: str = _f(
        "cut_turns",
        "records longer than max_length: cut_turns (keep the whole turns that fit), truncate (cut at max_length) "
        "or drop",
        choices=OVERLONG_POLICIES,
    )
    gpu: str | float = _f(
        "T4",
        # the names of analyze/gpus.py's GPUS (the schema imports nothing; tests/test_layout.py checks the list)
        "the GPU the memory plan is for: T4, L4, A10G, A100-40GB, A100-80GB, H100, or its memory in GiB (train plans "
        "for the GPU it runs on)",
    )
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "training data"})
    schedule: ScheduleConfig = field(
        default_factory=ScheduleConfig,
        metadata={"help": "train: the guide's step numbers in its own units, converted to packed optimizer steps"},
    )
    suggest: SuggestConfig = field(
        default_factory=SuggestConfig, metadata={"help": "how lengthscan and train --auto-maxlen suggest max_length"}
    )
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA adapter"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimisation"})
    run: RunConfig = field(default_factory=RunConfig, metadata={"help": "the training run (used by `train` only)"})
    plateau: PlateauConfig = field(
        default_factory=PlateauConfig,
        metadata={"help": "plateau watch: the tuning guide's signs, checked at each eval"},
    )

    def __post_init__(self):
        if isinstance(self.gpu, str):  # "--gpu 12" arrives as text: a number of GiB is kept as one
            with contextlib.suppress(ValueError):
                self.gpu = float(self.gpu)

    @property
    def effective_batch(self) -> int:
        return self.optim.micro_batch_size * self.optim.grad_accum_steps
