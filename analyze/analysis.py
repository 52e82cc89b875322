"""Put the pieces together: tokenized data → statistics, the plan at max_length, candidates, a suggestion.

`Analysis.as_json()` is the public `--json` document; its keys are a contract for scripts and notebooks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from analyze import tool_drops
from analyze.config import with_values
from analyze.formats import Options, load_tools
from analyze.memory import Fit, MemoryModel, memory_model
from analyze.model_facts import model_limit
from analyze.pipeline import Tokenized, cached, tokenize_files
from analyze.plan import Plan, make_plan
from analyze.preference import PairAnalysis, is_pair_data, suggest_pairs, tokenize_pairs
from analyze.reader import check_paths
from analyze.render import FIXABLE
from analyze.schema import Config, SuggestConfig
from analyze.split import eval_mask
from analyze.stats import LengthStats, PlanStats, candidate_lengths, candidates, length_stats, plan_stats
from analyze.suggest import Suggestion, suggest
from analyze.tokenizer import files_fingerprint, load_tokenizer, measured_model, resolve_tokenizer_name, tokenizer_name


@dataclass
class Analysis:
    """Every number of the report, for one tokenized data set under one config (`cfg`, overrides applied)."""

    tokenized: Tokenized
    cfg: Config
    held_out: np.ndarray  # per record: held out for eval (`analyze.split`), so not in the train numbers
    eval_plan: Plan  # the held-out records after the overlong policy, packed apart: what `train` evaluates
    lengths: LengthStats
    at_max_length: PlanStats
    suggestion: Suggestion
    limit: int | None
    limit_source: str
    candidates: list[PlanStats] = field(default_factory=list)
    memory: MemoryModel | None = None  # the memory plan's inputs; None when not asked for
    fit: Fit | None = None  # what fits the GPU at the data's max_length; None when the model's shape is unknown
    intervals: dict[str, tuple[float, float]] | None = None  # `--sample`: 95% bootstrap interval of each number
    train_check: object | None = None  # `analyze.train_check.TrainCheck` of the config's tokenizer; set by lengthscan

    @property
    def micro_batch(self) -> int:
        return self.cfg.optim.micro_batch_size

    @property
    def grad_accum(self) -> int:
        return self.cfg.optim.grad_accum_steps

    @property
    def seed(self) -> int:
        return self.cfg.optim.seed  # the eval hold-out's and the dynamic-padding shuffle's seed

    @property
    def options(self) -> SuggestConfig:
        return self.cfg.suggest

    @property
    def eval_records(self) -> int:
        """The conversations `train` evaluates: held out, and kept by the overlong policy with a supervised token."""
        return len(self.eval_plan.records)

    @property
    def table(self):
        return self.tokenized.table

    def memory_json(self) -> dict | None:
        m, o = self.memory, self.cfg.optim
        if m is None:
            return None
        doc: dict = {"gpu": m.gpu, "budget_gib": m.budget_gib, "model": m.model, "model_reason": m.why,
                     "model_config": m.source}  # fmt: skip
        if m.shape is None:
            return doc | {"unknown": m.source, "candidates": []}
        lengths = sorted({c.max_length for c in self.candidates} | {self.suggestion.max_length})
        return doc | {
            "loss": m.settings.loss,
            "candidates": [m.candidate(n, o.micro_batch_size, o.grad_accum_steps) for n in lengths],
            "change": self.fit.change if self.fit else None,
            "at_suggestion": self.fit.plan.as_dict(),
        }

    def histogram(self, bins: int = 20) -> tuple[np.ndarray, np.ndarray, int]:
        """Counts over equal bins up to a round number just past p99 (or max_length), and the count beyond.

        Long tails get one overflow bucket instead of squashing the rest of the picture.
        """
        tokens = self.table.tokens
        top = max(self.lengths.p99, self.at_max_length.max_length, self.suggestion.max_length)
        top = min(top, self.lengths.max)
        step = _nice_step(top / bins)
        edges = np.arange(0, top + step, step)
        counts, _ = np.histogram(tokens, bins=edges)
        return edges, counts, int((tokens >= edges[-1]).sum())

    def as_json(self) -> dict:
        t, s = self.tokenized, self.at_max_length
        return {
            "kind": "conversations",  # or "preference" (`analyze.preference.PairAnalysis.as_json`)
            "records": t.records,
            "records_without_reply": len(self.table.without_reply),
            "skipped": t.skips.total,
            "skipped_reasons": dict(t.skips.counts),
            "skipped_examples": list(t.skips.examples),
            "roles_fixed": dict(t.roles_fixed),
            "tools": tool_drops.as_json(t.tool_drops),
            "files": [str(p) for p in t.paths],
            "data_fingerprint": t.data_fingerprint,
            "tokenizer": t.tokenizer_name,
            "tokens": {"total": int(self.table.tokens.sum()), "supervised": int(self.table.supervised.sum())},
            "lengths": asdict(self.lengths),
            "max_length": s.max_length,
            "overlong_policy": s.policy,
            "truncation": {
                "records": s.records_truncated,
                "rate": s.truncation_rate,
                "records_dropped": s.records_dropped,
                "tokens_lost": s.tokens_lost,
                "tokens_lost_rate": s.tokens_lost_rate,
                "supervised_tokens_lost": s.supervised_tokens_lost,
                "supervised_tokens_lost_rate": s.supervised_tokens_lost_rate,
                "records_without_supervised": s.records_without_supervised,
            },
            "padding_waste": {
                "pad_to_max": s.padding_waste_pad_to_max,
                "dynamic": s.padding_waste_dynamic,
                "packed": s.padding_waste_packed,
            },
            "packed_rows": s.packed_rows,
            "split": {
                "train_records": s.records_trained,
                "eval_records": self.eval_records,
                "eval_fraction": 0.0 if self.cfg.data.eval else self.cfg.data.eval_fraction,
                "eval_files": list(self.cfg.data.eval),
            },
            "steps_per_epoch": {
                "micro_batch_size": self.micro_batch,
                "grad_accum_steps": self.grad_accum,
                "pad_to_max": s.steps_per_epoch_unpacked,
                "dynamic": s.steps_per_epoch_unpacked,
                "packed": s.steps_per_epoch_packed,
            },
            "model_max_positions": self.limit,
            "suggested_max_length": self.suggestion.max_length,
            "suggestion_policy": self.suggestion.policy,
            "suggestion_reason": self.suggestion.reason,
            "sample": None if t.sample is None else asdict(t.sample),
            "intervals": None if self.intervals is None else {k: list(v) for k, v in self.intervals.items()},
            "memory": self.memory_json(),
            "train_check": None if self.train_check is None else self.train_check.as_json(),
            "candidates": [
                {
                    "max_length": c.max_length,
                    "truncation_rate": c.truncation_rate,
                    "tokens_lost_rate": c.tokens_lost_rate,
                    "supervised_tokens_lost_rate": c.supervised_tokens_lost_rate,
                    "padding_waste_pad_to_max": c.padding_waste_pad_to_max,
                    "padding_waste_dynamic": c.padding_waste_dynamic,
                    "padding_waste_packed": c.padding_waste_packed,
                    "packed_rows": c.packed_rows,
                    "steps_per_epoch_packed": c.steps_per_epoch_packed,
                }
                for c in self.candidates
            ],
        }


def analyze(
    tokenized: Tokenized,
    cfg: Config,
    limit: tuple[int | None, str] = (None, "unknown"),
    memory: MemoryModel | None = None,
) -> Analysis:
    """All numbers of the report for one tokenized data set, under `cfg` (max_length, overlong policy, batch,
    seed, eval hold-out and suggestion policy); `limit` is the model's maximum positions and where it came from.

    With a `memory` model the suggestion never exceeds what fits its GPU: a smaller micro-batch (same effective
    batch) first, then a shorter max_length (`analyze.memory.fit`)."""
    check_skips(tokenized, cfg.data.max_skip)
    table = tokenized.table
    held = held_out(table, cfg)
    train = ~held
    o, s = cfg.optim, cfg.suggest
    here = plan_stats(
        table, make_plan(table, cfg.max_length, cfg.overlong, train), o.micro_batch_size, o.grad_accum_steps, o.seed
    )
    suggestion = suggest(table, s.policy, s.target, s.round_to, limit[0], cfg.overlong)
    fitted = None
    if memory is not None and memory.shape is not None:
        fitted = memory.fit(suggestion.max_length, o.micro_batch_size, o.grad_accum_steps, s.round_to)
        if fitted.change:
            suggestion = replace(
                suggestion,
                max_length=fitted.max_length,
                reason=f"{suggestion.reason}; {_memory_reason(fitted, suggestion.max_length, memory.gpu)}",
                micro_batch_size=fitted.micro_batch_size,
                grad_accum_steps=fitted.grad_accum_steps,
            )
    ladder = candidate_lengths(table.tokens, [cfg.max_length, suggestion.max_length], limit[0])
    return Analysis(
        tokenized=tokenized,
        cfg=cfg,
        held_out=held,
        eval_plan=eval_plan(table, cfg, held),
        lengths=length_stats(table.tokens),
        at_max_length=here,
        suggestion=suggestion,
        limit=limit[0],
        limit_source=limit[1],
        candidates=candidates(table, ladder, cfg.overlong, o.micro_batch_size, o.grad_accum_steps, o.seed, train),
        memory=memory,
        fit=fitted,
        intervals=None if tokenized.sample is None else _intervals(table, cfg, limit[0]),
    )


def numbers(table, cfg: Config, limit: int | None) -> dict[str, float]:
    """The report's headline numbers for one table, flat: what a `--sample` run gives an interval for."""
    o, s = cfg.optim, cfg.suggest
    stats = plan_stats(
        table, make_plan(table, cfg.max_length, cfg.overlong, ~held_out(table, cfg)), o.micro_batch_size,
        o.grad_accum_steps, o.seed,
    )  # fmt: skip
    lengths = length_stats(table.tokens)
    return {
        **{f"lengths.{k}": float(getattr(lengths, k)) for k in ("mean", "p50", "p90", "p95", "p99")},
        "truncation.rate": stats.truncation_rate,
        "truncation.tokens_lost_rate": stats.tokens_lost_rate,
        "truncation.supervised_tokens_lost_rate": stats.supervised_tokens_lost_rate,
        "padding_waste.pad_to_max": stats.padding_waste_pad_to_max,
        "padding_waste.dynamic": stats.padding_waste_dynamic,
        "padding_waste.packed": stats.padding_waste_packed,
        "suggested_max_length": float(suggest(table, s.policy, s.target, s.round_to, limit, cfg.overlong).max_length),
    }


def _intervals(table, cfg: Config, limit: int | None) -> dict[str, tuple[float, float]]:
    from analyze.sample import intervals

    return intervals(lambda t: numbers(t, cfg, limit), table, cfg.optim.seed)


def _memory_reason(f: Fit, wanted: int, gpu: str) -> str:
    if f.max_length < wanted:
        return f"shortened from {wanted} to fit {gpu} even at micro-batch 1"
    return f"micro-batch {f.micro_batch_size} × {f.grad_accum_steps} accumulation to fit {gpu}"


def read_options(cfg: Config) -> Options:
    """The config's format and normalisation options (`data.format`, `data.tools`, `data.fix_roles`)."""
    return Options(cfg.data.format, load_tools(cfg.data.tools), cfg.data.fix_roles)


def check_skips(tokenized: Tokenized, max_skip: float) -> None:
    """The data checks both commands run before using it: a file of preference pairs is refused (SFT trains on
    conversations), then the skip share (`check_skip_share`), then records with nothing to train
    (`check_replies`)."""
    from analyze.preference import refuse_pairs

    refuse_pairs(tokenized.skips, tokenized.records, tokenized.paths)
    check_skip_share(tokenized.skips, tokenized.records, tokenized.paths, max_skip)
    check_replies(tokenized)


def check_skip_share(skips, analysed: int, paths: list, max_skip: float) -> None:
    """A one-line error when nothing could be analysed or more than `max_skip` of the records were skipped: the
    count, the top reasons, the first skipped lines and the fixes (`--fix-roles` when it renders some of them,
    `--max-skip`)."""
    from analyze.errors import UserError

    n = analysed
    first = "; ".join(skips.examples[:3])
    if not n and not skips.total:
        where = ", ".join(str(p) for p in paths)
        raise UserError(f"{where}: no records to analyse (an empty table, split or sample); point at data with records")
    if not skips.total:
        return
    fixable = sum(1 for _, reason, detail in skips.records if reason == "template_error" and detail.endswith(FIXABLE))
    roles = (
        f"pass --fix-roles (data.fix_roles: true), which renders the {fixable:,} the chat template refuses for their "
        "roles (turns of one role merged, tool turns folded into user and assistant text)"
    )
    if not n:
        raise UserError(
            f"no record could be analysed: {skips.summary(n)}; first: {first}; {roles if fixable else 'check --format'}"
        )
    if skips.total / (n + skips.total) > max_skip:
        raise UserError(
            f"{skips.summary(n)}, more than data.max_skip {max_skip:g}; first: {first}; "
            f"{roles + '; ' if fixable else ''}fix the data (`lengthscan DATA --skipped-out FILE` lists every one), "
            "or allow it with --max-skip RATE"
        )


def check_replies(tokenized: Tokenized) -> None:
    """A one-line error when most records have nothing to train (no assistant token in their whole rendering):
    prompt-only data, or a format read wrongly. A few such records are only counted (`records_without_reply`)."""
    from analyze.errors import UserError
    from analyze.reader import shown_place

    table = tokenized.table
    empty = table.without_reply
    if 2 * len(empty) <= len(table):
        return
    first = shown_place(f"{tokenized.paths[table.file_index[empty[0]]]}:{table.line[empty[0]]}")
    raise UserError(
        f"{len(empty):,} of {len(table):,} records have nothing to train: no assistant reply (first: {first}); "
        "fine-tuning learns only from the assistant's turns, so add each prompt's reply (prompt-only data is for "
        "generation, not training), or check --format"
    )


def held_out(table, cfg: Config) -> np.ndarray:
    """The records `train` holds out for eval: none when the config names eval files, else `data.eval_fraction`
    of the conversations by content (`analyze.split`)."""
    fraction = 0.0 if cfg.data.eval else cfg.data.eval_fraction
    if fraction == 0:
        return np.zeros(len(table), dtype=bool)
    return eval_mask(table.content_hash, fraction, cfg.optim.seed, cfg.data.eval_max)


def eval_plan(table, cfg: Config, held: np.ndarray | None = None) -> Plan:
    """The eval conversations' plan at cfg.max_length: the held-out records (`held`, default `held_out`) that the
    overlong policy keeps with a supervised token, packed apart from the train split. Both commands count eval from
    it — lengthscan's `eval_records`, train's eval rows — so a held-out record the policy drops counts in neither.

    >>> import numpy as np
    >>> from analyze.config import with_values
    >>> from analyze.lengths import LengthTable
    >>> t = LengthTable(file_index=np.zeros(3, np.int32), line=np.array([1, 2, 3]), tokens=np.array([6, 12, 5]),
    ...     supervised=np.array([3, 7, 2]), span_record=np.array([0, 1, 2]), span_start=np.array([3, 5, 3]),
    ...     span_end=np.array([6, 12, 5]))
    >>> cfg = with_values(Config(), {"max_length": 8, "overlong": "drop"})
    >>> held = np.array([False, True, True])          # records 2 and 3 held out; record 2 (12 tokens) is dropped
    >>> eval_plan(t, cfg, held).records.tolist()
    [2]
    """
    held = held_out(table, cfg) if held is None else held
    return make_plan(table, cfg.max_length, cfg.overlong, held)


def analyze_files(
    files: list,
    cfg: Config | None = None,
    *,
    strict: bool = False,
    progress: bool | None = None,
    cache: bool = True,
    on_tokenized=None,
    sample=None,
    **overrides,
) -> Analysis | PairAnalysis:
    """Files → `Analysis` under the config (`overrides` by dotted key, e.g. `max_length=1024` or
    `**{"suggest.policy": "supervised"}`): what `lengthscan` and the notebook run.

    The tokenizer is the config's `tokenizer`, else its model's own (bundled for Qwen3). `on_tokenized` is called
    with the `Tokenized` data before it is analysed. `sample`: a `SampleSpec` to analyse a seeded random sample,
    with intervals.
    """
    cfg = with_values(cfg or Config(), {k: v for k, v in overrides.items() if v is not None})
    paths = check_paths(list(files), cfg.data.split, cfg.data.subset)  # before the tokenizer loads: typos fail now
    name, options = resolve_tokenizer_name(cfg.tokenizer, cfg.model), read_options(cfg)
    files_fp = files_fingerprint(name, cfg.chat_template)
    tokenized = None
    if cache and files_fp and sample is None:  # unchanged inputs and tokenizer files: no tokenizer to load
        tokenized = cached(paths, files_fp, options, strict=strict)
    if tokenized is None:
        tok = load_tokenizer(name, cfg.chat_template)
        tokenized = tokenize_files(
            paths, tok, strict=strict, progress=progress, cache=cache, options=options, sample=sample,
            sample_seed=cfg.optim.seed, files_fp=files_fp,
        )  # fmt: skip
    if is_pair_data(tokenized.skips, tokenized.records):  # train's rule: pairs outnumber conversations
        return analyze_pairs(paths, cfg, name, options, strict, sample, on_tokenized)
    tokenized.skips.replay_strict(deferred=True)  # --strict: conversations, so a pair among them is a bad record
    if on_tokenized is not None:  # before the checks, so a run stopped for its skips still writes their list
        on_tokenized(tokenized)
    return analyze(tokenized, cfg, model_limit(name, measured_model(cfg)), memory_model(cfg))


def analyze_pairs(paths: list, cfg: Config, name: str, options: Options, strict: bool, sample, on_tokenized=None):
    """Preference pairs → `PairAnalysis`: their lengths as TRL's DPOTrainer tokenizes them, and its max_length."""
    from analyze.errors import UserError

    if sample is not None:
        raise UserError("preference pairs are analysed whole, not sampled; run without a sample")
    tokenizer = load_tokenizer(name, cfg.chat_template)
    pairs = tokenize_pairs(paths, tokenizer, options.tools, strict)
    if on_tokenized is not None:
        on_tokenized(pairs)
    check_skip_share(pairs.skips, pairs.records, paths, cfg.data.max_skip)
    limit, _ = model_limit(name, measured_model(cfg))
    s = cfg.suggest
    suggestion = suggest_pairs(pairs.table, s.target, s.round_to, limit)
    return PairAnalysis(pairs, tokenizer_name(tokenizer), suggestion, limit)


def _nice_step(raw: float) -> int:
    """Round a bin width up to 1, 2 or 5 × a power of ten.

    >>> _nice_step(37), _nice_step(120), _nice_step(0.3)
    (50, 200, 1)
    """
    if raw <= 1:
        return 1
    mag = 10 ** int(np.floor(np.log10(raw)))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
