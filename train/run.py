"""One training run, start to end: resolve device and data, load the 4-bit model with LoRA, train, save.

`run()` is a plain function (the CLI is a thin layer over it); each step prints one line of what it decided.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analyze import __version__
from analyze.config import Config
from analyze.errors import RunStopped, UserError
from train.data import TrainData
from train.outputs import (
    ADAPTER_DIR,
    FIGURE,
    LOG_CSV,
    RESOLVED_CONFIG,
    RUN_LOGS,
    SMOKE_MARKER,
    SMOKE_MODEL_DIR,
    SMOKE_OUTPUTS,
    TENSORBOARD,
)
from train.ranks import decided_by_main, world_size

SMOKE_MAX_LENGTH = 256  # rows are capped for the CPU: the logits of a 150k vocabulary dominate the cost
SMOKE_EVAL_ROWS = 8
# What --smoke sets unless the command line says otherwise: a few CPU steps with a rate that visibly moves a
# random model, so "the loss went down" is a real check of the gradient path.
SMOKE = {
    "run.device": "cpu",
    "run.max_steps": 8,
    "schedule.min_evals": 2,  # eval and save at steps 4 and 8
    "run.logging_steps": 1,
    "optim.micro_batch_size": 2,
    "optim.grad_accum_steps": 2,
    "optim.learning_rate": 5e-3,
    "schedule.warmup": 0,
    "optim.lr_scheduler": "constant",
}


@dataclass
class RunResult:
    output_dir: Path
    adapter_dir: Path
    log_csv: Path
    data: TrainData
    model: object
    train_loss: float | None
    trainer: object = None
    schedule: object = None  # train.schedule.Schedule
    cfg: Config | None = None  # as run (after --auto-maxlen)
    memory: dict | None = None  # the memory plan (`check_memory`); None for --smoke

    def dry_run_json(self) -> dict:
        """What `train --dry-run --json` prints: the run as it would go, before any model is loaded."""
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


def run(
    cfg: Config,
    prov: dict[str, str],
    config_path: Path | None = None,
    smoke: bool = False,
    auto_maxlen: bool = False,
    resume: bool = False,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
    argv: list[str] | None = None,
) -> RunResult:
    """Check, tokenize, plan; then (unless `dry_run`) load the 4-bit model with LoRA, train and save.

    `argv`: the command line this run came from, to restart it on one GPU when several are visible (see
    `train.launch`); None when called as a function.
    """
    from analyze.reader import check_paths
    from analyze.tokenizer import load_tokenizer, resolve_tokenizer_name
    from train import data as data_mod
    from train.model import (
        check_ids_fit,
        check_max_length,
        check_same_vocabulary,
        check_tokenizer_matches,
        load_model_config,
        pick_precision,
        resolve_device,
    )

    if not cfg.data.train:
        raise UserError("no training data: set data.train in the config or pass --data.train FILE.jsonl")
    files = check_paths(cfg.data.train, cfg.data.split, cfg.data.subset)  # a typo fails before anything slow
    if cfg.data.eval:
        same = set(files) & set(check_paths(cfg.data.eval, cfg.data.split, cfg.data.subset))
        if same:
            raise UserError(
                f"data.eval reads the same data as data.train ({', '.join(map(str, same))}); name another file or a "
                "dataset's other split, e.g. 'org/data[test]'"
            )
    device = None if dry_run else resolve_device(cfg.run.device, smoke)  # planning needs no GPU
    if device == "cuda" and argv is not None:
        from train.launch import restart_on_one_gpu_if_needed

        restart_on_one_gpu_if_needed(argv)  # several GPUs, no launcher: never DataParallel
    out = Path(cfg.run.output_dir)
    last = decided_by_main(lambda: _check_output_dir(out, resume, smoke, dry_run))
    model_config = load_model_config(cfg.model)
    tokenizer = load_tokenizer(resolve_tokenizer_name(cfg.tokenizer, cfg.model), cfg.chat_template)
    check_tokenizer_matches(model_config, tokenizer, cfg.model)
    if (own := _own_tokenizer(cfg)) is not None:
        check_same_vocabulary(tokenizer, own, cfg.model)

    tokenized = data_mod.tokenize(cfg, tokenizer, files)
    check_ids_fit(tokenized.table, model_config, tokenizer, cfg.model, tokenized.paths)
    budget = _gpu_budget() if device == "cuda" else None  # train plans for the GPU it runs on
    if auto_maxlen:
        cfg = _auto_maxlen(cfg, prov, tokenized, model_config, config_path, smoke, dry_run, say, budget)
    elif not prov.get("max_length", "").startswith("--max"):
        for warning in data_mod.measured_elsewhere(cfg, tokenized, config_path):
            say(f"warning: {warning}")
    check_max_length(model_config, cfg.max_length, cfg.model)
    data = data_mod.build(cfg, tokenizer, tokenized)
    if smoke and data.eval is not None:
        data.eval.row_index = data.eval.row_index[:SMOKE_EVAL_ROWS]
    world = world_size()
    for line in data.summary(cfg.optim.micro_batch_size, cfg.optim.grad_accum_steps, world):
        say(line)
    plan = plan_schedule(cfg, data, world)
    for line in plan.lines():
        say(line)
    for warning in plan.warnings:
        say(f"warning: {warning}")
    watch = _plateau_watch(cfg, data, model_config, config_path, out, world, plan, say, last is not None, budget)
    refuse = device == "cuda" and cfg.run.memory_check
    # the GPU's precision decides the plan's bytes (fp32 for an architecture that overflows fp16 on a T4)
    precision = None if device is None else pick_precision(device, model_config, cfg.run.precision)
    planned = precision.planned if device == "cuda" else None
    memory = None if smoke else check_memory(cfg, budget, refuse=refuse, say=say, precision=planned)
    refusal = full_logits_refusal(cfg, budget, planned) if refuse else None
    if dry_run:
        say("dry run: stopped before loading the model")
        return RunResult(out, out / ADAPTER_DIR, out / LOG_CSV, data, None, None, None, plan, cfg, memory)

    model_path = cfg.model
    if smoke:
        model_path = str(decided_by_main(lambda: _build_smoke_model(model_config, tokenizer, out, cfg.optim.seed)))
        say(f"smoke: tiny random {cfg.model} architecture with the real tokenizer in {model_path}")
    say(f"precision: {precision.describe()}; 4-bit NF4 base (double quantisation), LoRA r={cfg.lora.r}")
    decided_by_main(lambda: save_resolved(cfg, prov, out / RESOLVED_CONFIG))
    model = load_model_for_run(model_path, precision, cfg)
    peak = _peak_callback(precision)
    callbacks = [watch] if peak is None else [watch, peak]
    trainer = make_trainer(
        cfg, data, model, tokenizer, precision, out, callbacks, last is not None, say, full_logits_refusal=refusal
    )
    from train.trainer import NonFiniteLoss, is_out_of_memory

    try:
        result = trainer.train(resume_from_checkpoint=str(last) if last else None)
    except NonFiniteLoss as e:  # raised by every process at the same step (`PackedTrainer._stop_together`)
        raise RunStopped(_non_finite_message(cfg, e, out, precision)) from None
    except Exception as e:
        if is_out_of_memory(e):
            raise RunStopped(_oom_message(cfg, memory)) from None
        raise
    adapter = out / ADAPTER_DIR
    if trainer.is_world_process_zero():
        trainer.model.save_pretrained(adapter)
        tokenizer.save_pretrained(adapter)
        save_resolved(cfg, prov, adapter / RESOLVED_CONFIG)
        say(f"saved: LoRA adapter, tokenizer and resolved config in {adapter}; log in {out / LOG_CSV}")
        if peak is not None:
            say(peak.line(memory))
        _plot_losses(out, say)
        _say_usage(adapter, model_path, tokenizer, precision, smoke, say)
    loss = getattr(result, "training_loss", None)
    return RunResult(out, adapter, out / LOG_CSV, data, trainer.model, loss, trainer, plan, cfg, memory)


def _say_usage(adapter: Path, model_path: str, tokenizer, precision, smoke: bool, say) -> None:
    from train.usage import usage_lines

    say("use it: the Python below loads the adapter, chats through the run's chat template and merges it")
    for line in usage_lines(adapter, model_path, tokenizer, precision.compute_dtype, smoke):
        say(line)


def _build_smoke_model(model_config, tokenizer, out: Path, seed: int) -> Path:
    from train.smoke import build_tiny_model

    out.mkdir(parents=True, exist_ok=True)
    (out / SMOKE_MARKER).touch()
    return build_tiny_model(model_config, tokenizer, out / SMOKE_MODEL_DIR, seed)


def _own_tokenizer(cfg: Config):
    """The model's own tokenizer when the config names another one and the model's can be loaded; else None (the
    config-based checks of `check_tokenizer_matches` still apply)."""
    from analyze.tokenizer import load_tokenizer, other_tokenizer, resolve_tokenizer_name

    if not other_tokenizer(cfg):
        return None
    try:
        return load_tokenizer(resolve_tokenizer_name(None, cfg.model))
    except UserError:  # no tokenizer beside the model (or offline): nothing to compare with
        return None


def load_model_for_run(model_path: str, precision, cfg: Config):
    from train.model import load_model
    from train.trainer import is_out_of_memory

    try:
        return load_model(model_path, precision, cfg.lora, cfg.run.gradient_checkpointing, cfg.optim.seed)
    except Exception as e:
        if is_out_of_memory(e):
            raise UserError(f"CUDA out of memory while loading {model_path!r}; choose a smaller model") from None
        raise


def plan_schedule(cfg: Config, data: TrainData, world: int = 1):
    """The run's `train.schedule.Schedule` for this data and number of processes."""
    from train.schedule import schedule

    has_eval = data.eval is not None and len(data.eval) > 0
    return schedule(cfg, len(data.train), data.train.conversations, has_eval, world)


def make_trainer(
    cfg: Config,
    data: TrainData,
    model,
    tokenizer,
    precision,
    out: Path,
    extra_callbacks=(),
    resuming: bool = False,
    say: Callable[[str], None] = print,
    full_logits_refusal: str | None = None,
):
    """The PackedTrainer for this config: arguments (the schedule in optimizer steps), collator, CSV and
    TensorBoard logs. `full_logits_refusal`: why the full-logits loss will not fit (stops a fallback to it)."""
    from transformers import TrainingArguments
    from transformers.integrations import TensorBoardCallback

    from train.callbacks import CsvLog, ScheduleFromArgs
    from train.collate import PackedCollator
    from train.loss import choose_loss_path
    from train.model import pad_id
    from train.trainer import PackedTrainer

    o, r = cfg.optim, cfg.run
    has_eval = data.eval is not None and len(data.eval) > 0
    world = world_size()
    plan = plan_schedule(cfg, data, world)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=o.micro_batch_size,
        per_device_eval_batch_size=o.micro_batch_size,
        gradient_accumulation_steps=o.grad_accum_steps,
        learning_rate=o.learning_rate,
        lr_scheduler_type=o.lr_scheduler,
        warmup_steps=plan.warmup_steps,
        num_train_epochs=o.epochs,
        max_steps=r.max_steps,
        weight_decay=o.weight_decay,
        seed=o.seed,
        data_seed=o.seed,
        optim=precision.optim,
        fp16=precision.fp16,
        bf16=precision.bf16,
        use_cpu=precision.device == "cpu",
        eval_strategy="steps" if has_eval else "no",
        eval_steps=plan.eval_steps,
        save_strategy="steps",
        save_steps=plan.save_steps,
        save_total_limit=r.save_total_limit,
        logging_steps=plan.logging_steps,
        logging_first_step=True,
        eval_on_start=has_eval and not resuming,  # the baseline (a resumed run has it in its history already)
        report_to="none",  # TensorBoard is added below with a fixed folder
        remove_unused_columns=False,  # our rows carry position_ids and real_tokens
        prediction_loss_only=True,
        dataloader_pin_memory=precision.device == "cuda",
        disable_tqdm=not sys.stderr.isatty(),
        ddp_find_unused_parameters=False,
    )
    callbacks = [CsvLog(out / LOG_CSV), ScheduleFromArgs(), *extra_callbacks]
    if int(os.environ.get("RANK", 0)) == 0:
        from torch.utils.tensorboard import SummaryWriter

        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(out / TENSORBOARD))))
    return PackedTrainer(
        model=model,
        args=args,
        train_dataset=_even(data.train, o.micro_batch_size * world),
        # evened too: accelerate would repeat eval rows on some processes, and count their tokens twice
        eval_dataset=_even(data.eval, o.micro_batch_size * world) if has_eval else None,
        data_collator=PackedCollator(pad_id(tokenizer), cfg.max_length),
        processing_class=tokenizer,
        callbacks=callbacks,
        loss_path=choose_loss_path(model, precision.device, precision.compute_dtype),
        full_logits_refusal=full_logits_refusal,
        say=say,
    )


def _even(rows, multiple: int):
    """Pad the row list with empty rows up to a multiple of (micro-batch × processes).

    accelerate gives every process the same number of batches; when the rows do not divide evenly it repeats
    rows from the start, which would train some conversations twice. An empty row (one pad token, no label)
    costs a few milliseconds and teaches nothing.
    """
    from train.rows import EmptyPadded

    extra = (-len(rows)) % multiple
    return EmptyPadded(rows, extra) if extra and multiple > 1 else rows


def last_complete_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint that finished saving: Trainer writes trainer_state.json last, so a run killed while
    saving leaves a newer folder without a readable one, which is passed over."""
    import json

    folders = [p for p in out.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for folder in sorted(folders, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            return folder
        except (OSError, ValueError):
            continue
    return None


def _check_output_dir(out: Path, resume: bool, smoke: bool, dry_run: bool = False) -> Path | None:
    """The checkpoint to resume from, if any. A smoke run writes only into an empty folder or an earlier smoke
    run's (marked by SMOKE_MARKER), whose outputs it replaces; a real run never starts in, or resumes, a smoke run's
    folder, nor overwrites a real run's checkpoints. With `dry_run`, the same checks and nothing removed."""
    marked = (out / SMOKE_MARKER).is_file()
    if marked and not smoke:
        raise UserError(
            f"{out} holds a --smoke run (a tiny random model); choose another --run.output_dir for the real run"
        )
    if smoke and not resume:
        if marked:
            if not dry_run:
                _remove_smoke_outputs(out)  # an earlier smoke run: throwaway by design
            return None
        if out.is_dir() and any(out.iterdir()):
            raise UserError(
                f"{out} is not empty and holds no --smoke run; give --smoke an empty or new folder with --output-dir"
            )
    found = sorted(p.name for p in out.glob("checkpoint-*")) if out.is_dir() else []
    last = last_complete_checkpoint(out) if found else None
    if resume and last is None:
        raise UserError(
            f"--resume: no complete checkpoint-* folder in {out}; start without --resume or set run.output_dir"
        )
    if not resume and found:
        raise UserError(
            f"{out} already holds checkpoints ({found[-1]}); pass --resume to continue that run, "
            "or choose another --run.output_dir"
        )
    if not resume and not dry_run and out.is_dir():
        for name in RUN_LOGS:  # left by a run stopped before its first checkpoint
            (out / name).unlink(missing_ok=True)
    return last


def _remove_smoke_outputs(out: Path) -> None:
    """What a smoke run writes, and nothing else: the folder was marked as a smoke run's when it was empty."""
    import shutil

    for p in list(out.iterdir()):
        if p.name in SMOKE_OUTPUTS or p.name.startswith("checkpoint-"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _plateau_watch(
    cfg: Config,
    data: TrainData,
    model_config,
    config_path,
    out: Path,
    world: int,
    plan,
    say,
    resuming: bool,
    budget: float | None = None,
):
    """The guide's start-up checks, and the callback that watches for plateaus with this run's own numbers."""
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
    return PlateauWatch(cfg, out, plan.plateau_steps, scale, analysis, base, say, resuming, plan.steps_per_epoch)


def _plot_losses(out: Path, say) -> None:
    try:
        from train.loss_plot import plot_run

        say(f"loss curves: {plot_run(out)}")
    except ImportError:
        say(f"loss curves: install matplotlib (pip install 'lengthscan[plot]') for {FIGURE}")


def _auto_maxlen(
    cfg: Config, prov: dict, tokenized, model_config, config_path, smoke: bool, dry_run: bool, say, budget=None
):
    from dataclasses import replace

    from analyze.config import config_target, with_values
    from train.data import analysis_at, write_back

    analysis = analysis_at(cfg, tokenized, model_config, budget, memory=not smoke)
    value = analysis.suggestion.max_length
    at = analysis.candidates and next((c for c in analysis.candidates if c.max_length == value), None)
    detail = f"; packed waste {at.padding_waste_packed:.1%}, truncated {at.truncation_rate:.1%}" if at else ""
    say(f"auto-maxlen: max_length {cfg.max_length} -> {value} ({analysis.suggestion.reason}{detail})")
    target = config_target(config_path)
    if dry_run:
        say(f"auto-maxlen: dry run, {target} left as it is")
    else:
        created = decided_by_main(lambda: write_back(target, analysis, __version__))
        say(f"auto-maxlen: {'created' if created else 'updated'} {target}: max_length = {value}")
    prov["max_length"] = f"auto: {analysis.suggestion.reason}"
    if analysis.suggestion.micro_batch_size:  # the memory plan split the batch to fit: same effective batch
        s = analysis.suggestion
        say(f"auto-maxlen: micro_batch_size {s.micro_batch_size}, grad_accum_steps {s.grad_accum_steps} to fit")
        cfg = with_values(
            cfg, {"optim.micro_batch_size": s.micro_batch_size, "optim.grad_accum_steps": s.grad_accum_steps}
        )
        prov["optim.micro_batch_size"] = prov["optim.grad_accum_steps"] = "auto: the memory plan"
    if smoke and value > SMOKE_MAX_LENGTH:
        say(f"auto-maxlen: --smoke trains at {SMOKE_MAX_LENGTH} on the CPU; a real run uses {value}")
        value = SMOKE_MAX_LENGTH
    return replace(cfg, max_length=value)


def save_resolved(cfg: Config, prov: dict[str, str], path: Path) -> None:
    """The config as run, as loadable YAML, each value commented with where it came from; paths relative to it."""
    from analyze.atomic import atomic_write
    from analyze.config import is_section, to_file_dict
    from analyze.yaml_text import commented, dump

    doc = commented(to_file_dict(cfg, path.parent), prov.get, is_section)  # paths relative to the file, as read
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, dump(doc, f"resolved by train {__version__}: the config this run used"))


# A loss that is not finite this early on the fp16 path is the forward overflowing fp16, not a learning rate that
# has had no time to move the weights.
EARLY_STEPS = 10


def _non_finite_message(cfg: Config, e, out: Path, precision) -> str:
    last = last_complete_checkpoint(out) if out.is_dir() else None
    kept = f"the last good checkpoint is {last}; continue from it with --resume" if last else "no checkpoint yet"
    what = f"the {e.kind} loss became {e.value} at step {e.step}"
    if precision.fp16 and e.step <= EARLY_STEPS:
        return (
            f"{what}, in the first steps on the fp16 path: the model's forward overflows fp16 (a T4 has no bf16; "
            f"Gemma 3 is known to); nothing from that step was applied or saved; rerun with --run.precision fp32 "
            "(slower; the memory plan counts its bytes), or on a GPU with bf16"
        )
    cause = (
        "fp16 overflow (a T4 has no bf16) or too high a learning rate"
        if precision.fp16
        else "too high a learning rate or a diverging run"
    )
    return (
        f"{what}, likely {cause}; nothing from that step was applied "
        f"or saved, {kept} after pulling a lever: lower --optim.learning_rate (now {cfg.optim.learning_rate:g}), "
        f"raise --schedule.warmup (now {cfg.schedule.warmup:g} guide steps), or lower --lora.alpha (now "
        f"{cfg.lora.alpha})"
    )


def _gpu_budget() -> float:
    from train.gpu_memory import gpu_memory_gib

    return gpu_memory_gib()


def _peak_callback(precision):
    """The callback that measures the GPU's peak after the first step (None on the CPU)."""
    if precision.device != "cuda":
        return None
    from train.gpu_memory import PeakAfterFirstStep

    return PeakAfterFirstStep()


def full_logits_refusal(cfg: Config, budget: float | None, precision: str | None = None) -> str | None:
    """Why a fallback to the full-logits loss would not fit (the plan's peak and the levers), or None where it fits
    or the plan is unknown: a run stops there rather than run out of memory after its loss check."""
    from dataclasses import replace

    from analyze.memory import memory_model

    m = memory_model(cfg, budget_gib=budget, precision=precision)
    if m.shape is None:
        return None
    full = replace(m, settings=replace(m.settings, loss="full"))
    plan = full.plan(cfg.max_length, cfg.optim.micro_batch_size)
    if plan.fits(full.budget_gib):
        return None
    return (
        f"the full logits need {plan.peak_gib:.1f} GiB at max_length {cfg.max_length} × micro_batch_size "
        f"{cfg.optim.micro_batch_size}, more than fits {_gpu_text(full)}; "
        f"{_memory_levers(cfg, full)}"
    )


def _gpu_text(m) -> str:
    """'T4 (14.7 GiB)' or 'this GPU (14.7 GiB)'."""
    return m.gpu if "GiB" in m.gpu else f"{m.gpu} ({m.budget_gib:.1f} GiB)"


def check_memory(cfg: Config, budget: float | None, refuse: bool, say, precision: str | None = None) -> dict:
    """Print the memory plan of this config; stop before the model loads when it is predicted not to fit the GPU
    (`refuse`: training on one), else warn. Returns the plan as `train --dry-run --json` shows it. `precision`: the
    plan's ("16-bit" or "fp32") as the GPU decided it; None: the config's GPU decides."""
    from analyze.memory import memory_model

    m = memory_model(cfg, budget_gib=budget, precision=precision)  # config.json, read as lengthscan reads it
    doc: dict = {"gpu": m.gpu, "budget_gib": round(m.budget_gib, 2), "model_config": m.source}
    if m.shape is None:
        say(f"memory plan: unknown ({m.source})")
        return doc | {"unknown": m.source}
    o = cfg.optim
    plan = m.plan(cfg.max_length, o.micro_batch_size)
    shown = plan.as_dict()
    doc |= {"peak_gib": shown["peak_gib"], "fits": plan.fits(m.budget_gib), "parts_gib": shown["parts_gib"]}
    say(
        f"memory plan: peak {plan.peak_gib:.1f} of {m.budget_gib:.1f} GiB on {m.gpu} at {o.micro_batch_size} rows "
        f"× {cfg.max_length} tokens ({plan.describe()})"
    )
    if plan.fits(m.budget_gib):
        return doc
    message = (
        f"the memory plan predicts {plan.peak_gib:.1f} GiB at max_length {cfg.max_length} × micro_batch_size "
        f"{o.micro_batch_size}, more than the {m.budget_gib:.1f} GiB of {m.gpu}; {_memory_levers(cfg, m)}"
    )
    if refuse:
        raise UserError(message + " (or --run.memory_check false to try anyway)")
    say(f"warning: {message}")
    return doc


def _memory_levers(cfg: Config, m) -> str:
    """The changes that fit, as flags, then the other levers."""
    o = cfg.optim
    f = m.fit(cfg.max_length, o.micro_batch_size, o.grad_accum_steps, cfg.suggest.round_to)
    flags = []
    if f.max_length != cfg.max_length:
        flags.append(f"--max_length {f.max_length}")
    if f.micro_batch_size != o.micro_batch_size:
        flags.append(f"--optim.micro_batch_size {f.micro_batch_size} --optim.grad_accum_steps {f.grad_accum_steps}")
    if not f.plan.fits(m.budget_gib):
        fits = f"even one row of {f.max_length} tokens needs {f.plan.peak_gib:.1f} GiB: choose a smaller model; "
    elif flags:
        fits = f"{' '.join(flags)} fits ({f.plan.peak_gib:.1f} GiB, same effective batch); "
    else:
        fits = ""
    checkpointing = "" if cfg.run.gradient_checkpointing else "--run.gradient_checkpointing true, "
    return (
        f"{fits}other levers: {checkpointing}a lower --lora.r (now {cfg.lora.r}), a shorter --max_length "
        f"(lengthscan shows what each length cuts)"
    )


def _oom_message(cfg: Config, memory: dict | None = None) -> str:
    o = cfg.optim
    peak = (memory or {}).get("peak_gib")
    predicted = f" (the memory plan predicted {peak:.1f} of {memory['budget_gib']:.1f} GiB)" if peak else ""
    return (
        f"CUDA out of memory at max_length {cfg.max_length}, micro_batch_size {o.micro_batch_size}{predicted}; "
        f"lower --optim.micro_batch_size (and raise --optim.grad_accum_steps to keep the effective batch of "
        f"{cfg.effective_batch}), lower --max_length (lengthscan shows what that cuts), lower --lora.r, and keep "
        "--run.gradient_checkpointing true"
    )
