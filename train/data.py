"""Training data: the analyzer's tokenization and plan, packed rows, the eval split, and `--auto-maxlen`.

The data is tokenized once (`analyze.pipeline.tokenize_files` with the token ids kept); `--auto-maxlen` analyses
that same table, and the plan at the chosen max_length packs it into rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analyze.analysis import Analysis, analyze, check_skips, eval_plan, held_out, read_options
from analyze.errors import UserError
from analyze.memory import memory_model
from analyze.model_facts import model_positions
from analyze.pipeline import Tokenized, tokenize_files
from analyze.plan import Plan, make_plan
from analyze.reader import check_paths
from analyze.schema import Config
from analyze.stats import optimizer_steps
from analyze.tokenizer import files_fingerprint, resolve_tokenizer_name
from train.ranks import main_first
from train.rows import PackedRows


@dataclass
class TrainData:
    tokenized: Tokenized
    plan: Plan  # the train split's plan
    train: PackedRows
    eval: PackedRows | None
    eval_source: str

    @property
    def has_eval(self) -> bool:
        return self.eval is not None and len(self.eval) > 0

    def summary(self, micro_batch: int, grad_accum: int, world_size: int = 1) -> list[str]:
        """Rows, real-token share and steps per epoch packed vs unpacked (the guide's step counts were unpacked)."""
        rows = self.train
        slots = len(rows) * self.plan.max_length
        per_step = micro_batch * world_size
        packed = optimizer_steps(len(rows), per_step, grad_accum)
        unpacked = optimizer_steps(rows.conversations, per_step, grad_accum)
        lines = [
            f"data: {self.tokenized.records} records from {len(self.tokenized.paths)} file(s) "
            f"({len(self.tokenized.table.without_reply)} with no assistant reply), {self.tokenized.skips.total} "
            f"skipped; {len(self.plan.records)} train at max_length "
            f"{self.plan.max_length} (overlong: {self.plan.policy})",
            f"packed: {rows.conversations} conversations in {len(rows)} rows of {self.plan.max_length}; "
            f"real tokens {rows.real_tokens / max(slots, 1):.1%} of slots, {rows.supervised_tokens} supervised",
            f"steps per epoch: {packed} packed vs {unpacked} unpacked (one conversation per row) at "
            f"{micro_batch} x {grad_accum}" + (f" x {world_size} processes" if world_size > 1 else ""),
        ]
        if self.eval is not None:
            lines.append(f"eval: {self.eval.conversations} conversations in {len(self.eval)} rows ({self.eval_source})")
        else:
            lines.append(f"eval: none ({self.eval_source})")
        return lines


def data_files(cfg: Config) -> list:
    """The training files, resolved: a typo fails before anything slow; eval data may not be the training data."""
    if not cfg.data.train:
        raise UserError("no training data: set data.train in the config or pass --data.train FILE.jsonl")
    files = check_paths(cfg.data.train, cfg.data.split, cfg.data.subset)
    if cfg.data.eval:
        same = set(files) & set(check_paths(cfg.data.eval, cfg.data.split, cfg.data.subset))
        if same:
            raise UserError(
                f"data.eval reads the same data as data.train ({', '.join(map(str, same))}); name another file or a "
                "dataset's other split, e.g. 'org/data[test]'"
            )
    return files


def tokenize(cfg: Config, tokenizer, files: list) -> Tokenized:
    """The token table with ids of `files` (`data_files`); with several processes the main one tokenizes (and fills
    the cache) first."""
    options = read_options(cfg)
    files_fp = files_fingerprint(resolve_tokenizer_name(cfg.tokenizer, cfg.model), cfg.chat_template)
    tokenized = main_first(
        lambda: tokenize_files(files, tokenizer, keep_ids=True, options=options, files_fp=files_fp)
    )  # the cache entry lengthscan made for the same inputs and tokenizer files
    check_skips(tokenized, cfg.data.max_skip)  # the same rule as lengthscan's
    return tokenized


def build(cfg: Config, tokenizer, tokenized: Tokenized) -> TrainData:
    """The train split's plan and rows at cfg.max_length, and the eval rows: the data.eval files, or the
    conversations `analyze.analysis.held_out` holds out (the same ones at any max_length) that the overlong policy
    keeps, packed apart (`analyze.analysis.eval_plan`, as lengthscan counts them)."""
    table = tokenized.table
    held = held_out(table, cfg)
    plan = make_plan(table, cfg.max_length, cfg.overlong, ~held)
    if not len(plan.rows):
        raise UserError(
            f"no record trains at max_length {cfg.max_length} with overlong '{cfg.overlong}' (none has an "
            "assistant token that fits); raise max_length or use --auto-maxlen"
        )
    if cfg.data.eval:
        ev = tokenize(cfg, tokenizer, cfg.data.eval)
        ev_rows = PackedRows(ev.table, make_plan(ev.table, cfg.max_length, cfg.overlong))
        source = "data.eval files" if len(ev_rows) else "no record of the data.eval files trains at this max_length"
        return TrainData(tokenized, plan, PackedRows(table, plan), ev_rows if len(ev_rows) else None, source)
    ev_plan = eval_plan(table, cfg, held)  # the count lengthscan prints as eval_records
    eval_rows = PackedRows(table, ev_plan) if len(ev_plan.rows) else None
    if eval_rows is not None:
        source = f"data.eval_fraction {cfg.data.eval_fraction:g} of the conversations, held out by content hash"
    elif cfg.data.eval_fraction == 0:
        source = "data.eval_fraction is 0 and no data.eval files"
    else:
        source = f"none of the {int(held.sum())} held-out conversations has an assistant token within max_length"
    return TrainData(tokenized, plan, PackedRows(table, plan), eval_rows, source)


def analysis_at(
    cfg: Config, tokenized: Tokenized, model_config, budget_gib: float | None = None, memory: bool = True
) -> Analysis:
    """The analysis `lengthscan` would run on the same tokenized data under the same config, capped by the model's
    positions and by the memory plan (for the config's `gpu`, or `budget_gib` when training on a GPU). Its
    suggestion is `--auto-maxlen`'s new max_length; its numbers are the plateau advice's lever 5.
    """
    positions = model_positions(model_config)
    plan = memory_model(cfg, budget_gib=budget_gib) if memory else None  # config.json as lengthscan reads it
    return analyze(tokenized, cfg, (positions, "model config") if positions else (None, "unknown"), plan)


def write_back(path: Path, analysis: Analysis, version: str) -> bool:
    """Write max_length and its provenance into the config file exactly as `lengthscan --write-config` does."""
    from analyze.config_write import write_suggestion

    return write_suggestion(path, analysis, f"train --auto-maxlen {version}", settings=False)


def measured_elsewhere(cfg: Config, tokenized: Tokenized, config_path: Path | None) -> list[str]:
    """One line when the config's max_length was measured (by lengthscan or --auto-maxlen) on other data or with
    another tokenizer or chat template than this run trains with; nothing when it matches or was never measured."""
    src = cfg.max_length_source or {}
    differs = []
    if src.get("data_fingerprint") and src["data_fingerprint"] != tokenized.data_fingerprint:
        measured_on = ", ".join(map(str, src.get("data") or [])) or src["data_fingerprint"]
        differs.append(f"other data ({measured_on}) than data.train")
    if src.get("tokenizer_fingerprint") and src["tokenizer_fingerprint"] != tokenized.tokenizer_fingerprint:
        differs.append(
            f"another tokenizer or chat template ({src.get('tokenizer', '?')}) than {tokenized.tokenizer_name}"
        )
    if not differs:
        return []
    rerun = f"lengthscan --config {config_path} --write-config" if config_path else "lengthscan DATA --write-config"
    return [
        f"max_length {cfg.max_length} was measured on {' and with '.join(differs)}; measure it again with "
        f"--auto-maxlen, or rerun `{rerun}`"
    ]
