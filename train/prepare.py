"""Everything a run decides before its model loads, each thing computed once: `prepare(cfg) -> Prepared`.

Checked in order of cost, so a typo fails before anything slow: the data paths, the output folder, the model's
config.json and tokenizer (and that they belong together), then the tokenization both commands share, `--auto-maxlen`,
the packed rows, the schedule, the plateau watch and the memory plan. `train --dry-run` prints this and stops;
`--json` prints `Prepared.as_json()`; `train.fit.train(prepared)` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analyze.memory import memory_model
from analyze.model_facts import check_ids_fit, check_max_length, load_model_config
from analyze.schema import Config
from analyze.tokenizer import load_tokenizer, resolve_tokenizer_name
from analyze.tool_drops import warning as tools_warning
from analyze.train_check import check_model_tokenizer
from train import data as data_mod
from train.auto_maxlen import auto_maxlen
from train.checkpoints import check_output_dir
from train.data import TrainData
from train.memory_check import full_logits_refusal, memory_plan
from train.model import Precision, pick_precision, resolve_device
from train.ranks import decided_by_main, world_size
from train.schedule import Schedule, schedule
from train.smoke import SMOKE_EVAL_ROWS


@dataclass
class Prepared:
    """A run before its model loads: what `train --dry-run` shows and `train.fit.train` runs."""

    cfg: Config  # as it will run (after --auto-maxlen)
    provenance: dict[str, str]  # where each value came from (`train.overrides.describe`)
    config_path: Path | None  # the config file read, if any (--auto-maxlen writes into it)
    smoke: bool
    output_dir: Path
    resume_from: Path | None  # the checkpoint a --resume continues
    model_config: dict  # the model's config.json (`analyze.model_facts.load_model_config`)
    tokenizer: object
    data: TrainData
    schedule: Schedule
    watch: object  # train.plateau.watch.PlateauWatch, with this run's numbers
    device: str | None  # None for a dry run: planning needs no GPU
    precision: Precision | None  # None for a dry run
    memory: dict | None  # the memory plan as --json shows it; None for --smoke
    full_logits_refusal: str | None  # why a fallback to the full logits would not fit the GPU

    def as_json(self) -> dict:
        """What `train --dry-run --json` prints: the run as it would go."""
        cfg, data = self.cfg, self.data
        return {
            "model": cfg.model,
            "tokenizer": data.tokenized.tokenizer_name,
            "max_length": cfg.max_length,
            "train_rows": len(data.train),
            "eval_rows": len(data.eval) if data.eval is not None else 0,
            "train_conversations": data.train.conversations,
            "eval_conversations": data.eval.conversations if data.eval is not None else 0,
            "eval_source": data.eval_source if data.eval is not None else None,
            "output_dir": str(self.output_dir),
            "memory": self.memory,
            **self.schedule.as_dict(),
        }


def prepare(
    cfg: Config,
    prov: dict[str, str],
    config_path: Path | None = None,
    smoke: bool = False,
    auto_maxlen_on: bool = False,
    resume: bool = False,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    argv: list[str] | None = None,
) -> Prepared:
    """Check, tokenize and plan the run; each step prints one line of what it decided.

    `argv`: the command line this run came from, to restart it on one GPU when several are visible (see
    `train.launch`); None when called as a function.
    """
    files = data_mod.data_files(cfg)
    device = None if dry_run else resolve_device(cfg.run.device, smoke)
    if device == "cuda" and argv is not None:
        from train.launch import restart_on_one_gpu_if_needed

        restart_on_one_gpu_if_needed(argv)  # several GPUs, no launcher: never DataParallel
    out = Path(cfg.run.output_dir)
    last = decided_by_main(lambda: check_output_dir(out, resume, smoke, dry_run))
    model_config, tokenizer = _model_and_tokenizer(cfg)

    tokenized = data_mod.tokenize(cfg, tokenizer, files)
    check_ids_fit(tokenized.table, model_config, tokenizer, cfg.model, tokenized.paths)
    if dropped := tools_warning(tokenized.tool_drops):  # the words of lengthscan's report
        say(f"warning: {dropped}")
    budget = _gpu_budget() if device == "cuda" else None  # train plans for the GPU it runs on
    if auto_maxlen_on:
        auto = auto_maxlen(cfg, tokenized, model_config, config_path, smoke, dry_run, budget)
        cfg, prov = auto.cfg, prov | auto.provenance
        for line in auto.lines:
            say(line)
    elif not prov.get("max_length", "").startswith("--max"):
        for warning in data_mod.measured_elsewhere(cfg, tokenized, config_path):
            say(f"warning: {warning}")
    check_max_length(model_config, cfg.max_length, cfg.model)
    data = data_mod.build(cfg, tokenizer, tokenized)
    if smoke and data.eval is not None:
        data.eval.row_index = data.eval.row_index[:SMOKE_EVAL_ROWS]
    world = world_size()
    plan = schedule(cfg, len(data.train), data.train.conversations, data.has_eval, world)
    for line in [*data.summary(cfg.optim.micro_batch_size, cfg.optim.grad_accum_steps, world), *plan.lines()]:
        say(line)
    for warning in plan.warnings:
        say(f"warning: {warning}")
    smoke_settings = _smoke_settings(cfg, prov) if smoke else None
    watch = _plateau_watch(cfg, data, model_config, config_path, out, world, plan, say, last is not None, budget,
                           smoke_settings)  # fmt: skip

    refuse = device == "cuda" and cfg.run.memory_check
    # the GPU's precision decides the plan's bytes (fp32 for an architecture that overflows fp16 on a T4)
    precision = None if device is None else pick_precision(device, model_config, cfg.run.precision)
    planned = precision.planned if device == "cuda" else None
    memory, refusal = None, None
    if not smoke or refuse:
        m = memory_model(cfg, budget_gib=budget, precision=planned)  # config.json read once, as lengthscan reads it
        if not smoke:
            memory, lines = memory_plan(cfg, m, refuse=refuse)
            for line in lines:
                say(line)
        refusal = full_logits_refusal(cfg, m) if refuse else None
    return Prepared(cfg, prov, config_path, smoke, out, last, model_config, tokenizer, data, plan, watch, device,
                    precision, memory, refusal)  # fmt: skip


def _model_and_tokenizer(cfg: Config) -> tuple[dict, object]:
    """The model's config.json and the tokenizer, checked to belong together before anything slow
    (`analyze.train_check.check_model_tokenizer`, the rule `lengthscan --write-config` checks too)."""
    model_config = load_model_config(cfg.model)
    tokenizer = load_tokenizer(resolve_tokenizer_name(cfg.tokenizer, cfg.model), cfg.chat_template)
    check_model_tokenizer(cfg, model_config, tokenizer)
    return model_config, tokenizer


def _gpu_budget() -> float:
    from train.gpu_memory import gpu_memory_gib

    return gpu_memory_gib()


def _smoke_settings(cfg: Config, prov: dict[str, str]) -> dict:
    """The values --smoke set (`train.smoke.SMOKE`, the smoke folder, the CPU's max_length): the provenance says so."""
    from analyze.config import flatten, to_dict

    flat = flatten(to_dict(cfg))
    return {key: flat[key] for key, source in prov.items() if source.startswith("--smoke") and key in flat}


def _plateau_watch(cfg: Config, data: TrainData, model_config: dict, config_path, out: Path, world: int,
                   plan: Schedule, say, resuming: bool, budget: float | None, smoke: dict | None):  # fmt: skip
    """The guide's start-up checks, and the callback that watches for plateaus with this run's own numbers (lever 5:
    the analysis at the run's max_length); a smoke run (`smoke`: the settings --smoke set) is watched, not judged."""
    from train.data import analysis_at
    from train.plateau.advice import start_warnings
    from train.plateau.report import StepScale
    from train.plateau.watch import PlateauWatch

    rows = data.train
    for warning in start_warnings(cfg, rows.conversations / max(len(rows), 1), world):
        say(f"warning: {warning}")
    analysis = analysis_at(cfg, data.tokenized, model_config, budget)
    per_step = cfg.optim.micro_batch_size * cfg.optim.grad_accum_steps * world
    scale = StepScale.from_plan(rows.conversations, max(len(rows), 1), rows.real_tokens, per_step)
    base = Path(config_path).read_text(encoding="utf-8") if config_path else None
    return PlateauWatch(cfg, out, plan.plateau_steps, scale, analysis, base, say, resuming, plan.steps_per_epoch,
                        smoke=smoke)  # fmt: skip
