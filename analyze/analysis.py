"""Put the pieces together: tokenized data → statistics, the plan at max_length, candidates, a suggestion.

`Analysis.as_json()` is the public `--json` document; its keys are a contract for scripts and notebooks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from analyze.config import Config
from analyze.pipeline import Tokenized, tokenize_files
from analyze.plan import make_plan
from analyze.reader import check_paths
from analyze.stats import LengthStats, PlanStats, candidate_lengths, candidates, length_stats, plan_stats
from analyze.suggest import Suggestion, suggest
from analyze.tokenizer import load_tokenizer, model_limit, resolve_tokenizer_name


@dataclass
class SuggestOptions:
    policy: str = "coverage"
    target: float = 0.99
    round_to: int = 64


@dataclass
class Analysis:
    tokenized: Tokenized
    lengths: LengthStats
    at_max_length: PlanStats
    suggestion: Suggestion
    limit: int | None
    limit_source: str
    candidates: list[PlanStats] = field(default_factory=list)
    micro_batch: int = 4
    grad_accum: int = 4
    seed: int = 0  # the dynamic-padding shuffle's seed (the config's optim.seed)
    options: SuggestOptions = field(default_factory=SuggestOptions)

    @property
    def table(self):
        return self.tokenized.table

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
            "records": t.records,
            "skipped": t.skips.total,
            "skipped_reasons": dict(t.skips.counts),
            "skipped_examples": list(t.skips.examples),
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
    max_length: int,
    overlong: str,
    micro_batch: int,
    grad_accum: int,
    seed: int = 0,
    options: SuggestOptions | None = None,
    limit: tuple[int | None, str] = (None, "unknown"),
) -> Analysis:
    """All numbers of the report for one tokenized data set."""
    from analyze.errors import UserError

    table = tokenized.table
    if not len(table):
        raise UserError(
            f"no record could be analysed ({tokenized.skips.total} skipped: "
            f"{', '.join(f'{k} {v}' for k, v in tokenized.skips.counts.items())}); see the first skipped lines above"
        )
    options = options or SuggestOptions()
    here = plan_stats(table, make_plan(table, max_length, overlong), micro_batch, grad_accum, seed)
    suggestion = suggest(table, options.policy, options.target, options.round_to, limit[0], overlong)
    ladder = candidate_lengths(table.tokens, [max_length, suggestion.max_length], limit[0])
    return Analysis(
        tokenized=tokenized,
        lengths=length_stats(table.tokens),
        at_max_length=here,
        suggestion=suggestion,
        limit=limit[0],
        limit_source=limit[1],
        candidates=candidates(table, ladder, overlong, micro_batch, grad_accum, seed),
        micro_batch=micro_batch,
        grad_accum=grad_accum,
        seed=seed,
        options=options,
    )


def analyze_files(
    files: list,
    cfg: Config | None = None,
    *,
    tokenizer: str | None = None,
    chat_template: str | None = None,
    fmt: str | None = None,
    max_length: int | None = None,
    overlong: str | None = None,
    options: SuggestOptions | None = None,
    strict: bool = False,
    progress: bool | None = None,
    cache: bool = True,
) -> Analysis:
    """Files → `Analysis`, with the config's settings unless overridden: what `lengthscan` and the notebook run.

    The tokenizer is `tokenizer`, else the config's, else the config's model's own (bundled for Qwen3).
    """
    cfg = cfg or Config()
    paths = check_paths(list(files))  # before the tokenizer loads: a typo fails at once
    tok = load_tokenizer(
        resolve_tokenizer_name(tokenizer or cfg.tokenizer, cfg.model), chat_template or cfg.chat_template
    )
    tokenized = tokenize_files(paths, tok, fmt=fmt or cfg.data.format, strict=strict, progress=progress, cache=cache)
    o = cfg.optim
    return analyze(
        tokenized, max_length or cfg.max_length, overlong or cfg.overlong, o.micro_batch_size, o.grad_accum_steps,
        o.seed, options, model_limit(tok, cfg.model),
    )  # fmt: skip


def _nice_step(raw: float) -> int:
    """Round a bin width up to 1, 2 or 5 × a power of ten.

    >>> _nice_step(37), _nice_step(120), _nice_step(0.3)
    (50, 200, 1)
    """
    if raw <= 1:
        return 1
    mag = 10 ** int(np.floor(np.log10(raw)))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
