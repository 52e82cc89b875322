"""`train(prepared) -> RunResult`: load the 4-bit model with LoRA, train it as `train.prepare` planned, save the
adapter, and say how to use it. Every stop (a non-finite loss, running out of GPU memory) is one line with the fix,
the same on every process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analyze.errors import RunStopped, UserError
from analyze.schema import Config
from train.checkpoints import last_complete_checkpoint
from train.data import TrainData
from train.memory_check import oom_message
from train.model import Precision, load_model
from train.outputs import ADAPTER_DIR, FIGURE, LOG_CSV, RESOLVED_CONFIG, SMOKE_MARKER, SMOKE_MODEL_DIR
from train.prepare import Prepared
from train.ranks import decided_by_main
from train.resolved import save_resolved
from train.schedule import Schedule
from train.trainer import NonFiniteLoss, is_out_of_memory
from train.trainer_setup import make_trainer

# A loss that is not finite this early on the fp16 path is the forward overflowing fp16, not a learning rate that
# has had no time to move the weights.
EARLY_STEPS = 10


@dataclass
class RunResult:
    output_dir: Path
    adapter_dir: Path
    log_csv: Path
    data: TrainData
    model: object
    train_loss: float | None
    trainer: object = None
    schedule: Schedule | None = None
    cfg: Config | None = None  # as run (after --auto-maxlen)
    memory: dict | None = None  # the memory plan (`train.memory_check.memory_plan`); None for --smoke


def train(p: Prepared, say: Callable[[str], None] = print) -> RunResult:
    """Load, train and save the run `p` describes."""
    cfg, out = p.cfg, p.output_dir
    model_path = cfg.model
    if p.smoke:
        model_path = str(decided_by_main(lambda: _build_smoke_model(p)))
        say(f"smoke: tiny random {cfg.model} architecture with the real tokenizer in {model_path}")
    say(f"precision: {p.precision.describe()}; 4-bit NF4 base (double quantisation), LoRA r={cfg.lora.r}")
    decided_by_main(lambda: save_resolved(cfg, p.provenance, out / RESOLVED_CONFIG))
    model = _load(model_path, p.precision, cfg)
    peak = _peak_callback(p.precision)
    callbacks = [p.watch] if peak is None else [p.watch, peak]
    trainer = make_trainer(cfg, p.data, model, p.tokenizer, p.precision, out, callbacks, p.resume_from is not None,
                           say, p.full_logits_refusal, p.schedule)  # fmt: skip
    try:
        result = trainer.train(resume_from_checkpoint=str(p.resume_from) if p.resume_from else None)
    except NonFiniteLoss as e:  # raised by every process at the same step (`PackedTrainer._stop_together`)
        raise RunStopped(non_finite_message(cfg, e, out, p.precision)) from None
    except Exception as e:
        if is_out_of_memory(e):
            raise RunStopped(oom_message(cfg, p.memory)) from None
        raise
    adapter = out / ADAPTER_DIR
    if trainer.is_world_process_zero():
        _save(p, trainer, adapter, say)
        if peak is not None:
            say(peak.line(p.memory))
        _plot_losses(out, say)
        _say_usage(adapter, model_path, p, say)
    loss = getattr(result, "training_loss", None)
    return RunResult(out, adapter, out / LOG_CSV, p.data, trainer.model, loss, trainer, p.schedule, cfg, p.memory)


def _build_smoke_model(p: Prepared) -> Path:
    from train.smoke import build_tiny_model

    p.output_dir.mkdir(parents=True, exist_ok=True)
    (p.output_dir / SMOKE_MARKER).touch()
    return build_tiny_model(p.model_config, p.tokenizer, p.output_dir / SMOKE_MODEL_DIR, p.cfg.optim.seed)


def _load(model_path: str, precision: Precision, cfg: Config):
    try:
        return load_model(model_path, precision, cfg.lora, cfg.run.gradient_checkpointing, cfg.optim.seed)
    except Exception as e:
        if is_out_of_memory(e):
            raise UserError(f"CUDA out of memory while loading {model_path!r}; choose a smaller model") from None
        raise


def _peak_callback(precision: Precision):
    """The callback that measures the GPU's peak after the first step (None on the CPU)."""
    if precision.device != "cuda":
        return None
    from train.gpu_memory import PeakAfterFirstStep

    return PeakAfterFirstStep()


def _save(p: Prepared, trainer, adapter: Path, say) -> None:
    trainer.model.save_pretrained(adapter)
    p.tokenizer.save_pretrained(adapter)
    save_resolved(p.cfg, p.provenance, adapter / RESOLVED_CONFIG)
    say(f"saved: LoRA adapter, tokenizer and resolved config in {adapter}; log in {p.output_dir / LOG_CSV}")


def _plot_losses(out: Path, say) -> None:
    try:
        from train.loss_plot import plot_run

        say(f"loss curves: {plot_run(out)}")
    except ImportError:
        say(f"loss curves: install matplotlib (pip install 'lengthscan[plot]') for {FIGURE}")


def _say_usage(adapter: Path, model_path: str, p: Prepared, say) -> None:
    from train.usage import usage_lines

    say("use it: the Python below loads the adapter, chats through the run's chat template and merges it")
    for line in usage_lines(adapter, model_path, p.tokenizer, p.precision.compute_dtype, p.smoke):
        say(line)


def non_finite_message(cfg: Config, e: NonFiniteLoss, out: Path, precision: Precision) -> str:
    """A loss that became nan or inf: in the first fp16 steps the forward overflowing fp16, else the levers."""
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
