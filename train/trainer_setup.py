"""The PackedTrainer of a run: TrainingArguments from the config and the schedule in optimizer steps, the packed
collator, the CSV and TensorBoard logs, and the rows evened out across processes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from transformers import TrainingArguments
from transformers.integrations import TensorBoardCallback

from analyze.schema import Config
from train.callbacks import CsvLog, ScheduleFromArgs
from train.collate import PackedCollator
from train.data import TrainData
from train.loss import choose_loss_path
from train.model import pad_id
from train.outputs import LOG_CSV, TENSORBOARD
from train.ranks import world_size
from train.rows import EmptyPadded
from train.schedule import Schedule, schedule
from train.trainer import PackedTrainer


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
    plan: Schedule | None = None,
):
    """The PackedTrainer for this config. `plan`: the run's schedule (`train.prepare`), else computed here for this
    data; `full_logits_refusal`: why the full-logits loss will not fit (stops a fallback to it)."""
    o, r = cfg.optim, cfg.run
    world = world_size()
    plan = plan or schedule(cfg, len(data.train), data.train.conversations, data.has_eval, world)
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
        eval_strategy="steps" if data.has_eval else "no",
        eval_steps=plan.eval_steps,
        save_strategy="steps",
        save_steps=plan.save_steps,
        save_total_limit=r.save_total_limit,
        logging_steps=plan.logging_steps,
        logging_first_step=True,
        eval_on_start=data.has_eval and not resuming,  # the baseline (a resumed run has it in its history already)
        report_to="none",  # TensorBoard is added below with a fixed folder
        remove_unused_columns=False,  # our rows carry position_ids and real_tokens
        prediction_loss_only=True,
        dataloader_pin_memory=precision.device == "cuda",
        disable_tqdm=not sys.stderr.isatty(),
        ddp_find_unused_parameters=False,
    )
    return PackedTrainer(
        model=model,
        args=args,
        train_dataset=_even(data.train, o.micro_batch_size * world),
        # evened too: accelerate would repeat eval rows on some processes, and count their tokens twice
        eval_dataset=_even(data.eval, o.micro_batch_size * world) if data.has_eval else None,
        data_collator=PackedCollator(pad_id(tokenizer), cfg.max_length),
        processing_class=tokenizer,
        callbacks=[*_logs(out), *extra_callbacks],
        loss_path=choose_loss_path(model, precision.device, precision.compute_dtype),
        full_logits_refusal=full_logits_refusal,
        say=say,
    )


def _logs(out: Path) -> list:
    """log.csv (the callback writes on the main process only) and, on the main process, TensorBoard."""
    callbacks = [CsvLog(out / LOG_CSV), ScheduleFromArgs()]
    if int(os.environ.get("RANK", 0)) == 0:
        from torch.utils.tensorboard import SummaryWriter

        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(out / TENSORBOARD))))
    return callbacks


def _even(rows, multiple: int):
    """Pad the row list with empty rows up to a multiple of (micro-batch × processes).

    accelerate gives every process the same number of batches; when the rows do not divide evenly it repeats
    rows from the start, which would train some conversations twice. An empty row (one pad token, no label)
    costs a few milliseconds and teaches nothing.
    """
    extra = (-len(rows)) % multiple
    return EmptyPadded(rows, extra) if extra and multiple > 1 else rows
