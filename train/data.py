"""Training data: the analyzer's tokenization and plan, packed rows, the eval split, and `--auto-maxlen`.

The data is tokenized once (`analyze.pipeline.tokenize_files` with the token ids kept); `--auto-maxlen` analyses
that same table, and the plan at the chosen max_length packs it into rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analyze.analysis import Analysis, SuggestOptions, analyze
from analyze.config import Config
from analyze.errors import UserError
from analyze.pipeline import Tokenized, tokenize_files
from analyze.plan import Plan, make_plan
from analyze.stats import optimizer_steps
from train.rows import PackedRows, split_rows


@dataclass
class TrainData:
    tokenized: Tokenized
    plan: Plan
    train: PackedRows
    eval: PackedRows | None
    eval_source: str

    def summary(self, micro_batch: int, grad_accum: int, world_size: int = 1) -> list[str]:
        """Rows, real-token share and steps per epoch packed vs unpacked (the guide's step counts were unpacked)."""
        rows = self.train
        slots = len(rows) * self.plan.max_length
        per_step = micro_batch * world_size
        packed = optimizer_steps(len(rows), per_step, grad_accum)
        unpacked = optimizer_steps(rows.conversations, per_step, grad_accum)
        lines = [
            f"data: {self.tokenized.records} records from {len(self.tokenized.paths)} file(s), "
            f"{self.tokenized.skips.total} skipped; {len(self.plan.records)} train at max_length "
            f"{self.plan.max_length} (overlong: {self.plan.policy})",
            f"packed: {rows.conversations} conversations in {len(rows)} rows of {self.plan.max_length}; "
            f"real tokens {rows.real_tokens / max(slots, 1):.1%} of slots, {rows.supervised_tokens} supervised",
            f"steps per epoch: {packed} packed vs {unpacked} unpacked (one conversation per row) at "
            f"{micro_batch} x {grad_accum}" + (f" x {world_size} processes" if world_size > 1 else ""),
        ]
        if self.eval is not None:
            lines.append(f"eval: {self.eval.conversations} conversations in {len(self.eval)} rows ({self.eval_source})")
        else:
            lines.append("eval: none (data.eval_fraction is 0 and no data.eval files)")
        return lines


def tokenize(cfg: Config, tokenizer, files: list) -> Tokenized:
    tokenized = tokenize_files(files, tokenizer, fmt=cfg.data.format, keep_ids=True)
    if not len(tokenized.table):
        raise UserError(
            f"no usable record in {', '.join(map(str, files))} ({tokenized.skips.total} skipped: "
            f"{', '.join(f'{k} {v}' for k, v in tokenized.skips.counts.items())}); check data.format"
        )
    return tokenized


def build(cfg: Config, tokenizer, tokenized: Tokenized) -> TrainData:
    """Plan at cfg.max_length, rows, and the eval rows (eval files, or a held-out share of the packed rows)."""
    plan = make_plan(tokenized.table, cfg.max_length, cfg.overlong)
    if not len(plan.rows):
        raise UserError(
            f"no record trains at max_length {cfg.max_length} with overlong '{cfg.overlong}' (none has an "
            "assistant token that fits); raise max_length or use --auto-maxlen"
        )
    if cfg.data.eval:
        ev = tokenize(cfg, tokenizer, cfg.data.eval)
        ev_plan = make_plan(ev.table, cfg.max_length, cfg.overlong)
        return TrainData(
            tokenized, plan, PackedRows(tokenized.table, plan), PackedRows(ev.table, ev_plan), "data.eval files"
        )
    train_idx, eval_idx = split_rows(len(plan.rows), cfg.data.eval_fraction, cfg.optim.seed)
    eval_rows = PackedRows(tokenized.table, plan, eval_idx) if eval_idx else None
    source = f"{cfg.data.eval_fraction:g} of the packed rows held out"
    return TrainData(tokenized, plan, PackedRows(tokenized.table, plan, train_idx), eval_rows, source)


def analysis_at(cfg: Config, tokenized: Tokenized, model_config) -> Analysis:
    """The analysis `lengthscan` would run on the same tokenized data at the config's max_length, capped by the
    model's positions. Its suggestion is `--auto-maxlen`'s new max_length; its numbers are the plateau advice's
    lever 5.
    """
    positions = getattr(model_config, "max_position_embeddings", None)
    return analyze(
        tokenized,
        cfg.max_length,
        cfg.overlong,
        cfg.optim.micro_batch_size,
        cfg.optim.grad_accum_steps,
        cfg.optim.seed,
        SuggestOptions(),
        (positions, "model config") if positions else (None, "unknown"),
    )


def write_back(path: Path, analysis: Analysis, version: str) -> bool:
    """Write max_length and its provenance into the config file exactly as `lengthscan --write-config` does."""
    from analyze.config_write import write_suggestion

    return write_suggestion(path, analysis, f"train --auto-maxlen {version}")
