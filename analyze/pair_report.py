"""The terminal report for preference data: the pairs' lengths as TRL's DPOTrainer tokenizes them, and its
max_length."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from analyze.preference import PairAnalysis
from analyze.report import skip_warning, skipped

PROMPT_LENGTH_UNTIL = "0.29"  # the TRL release that removed DPOConfig.max_prompt_length (deprecated in 0.28)


def render(a: PairAnalysis) -> Group:
    pairs, s = a.pairs, a.suggestion
    files = ", ".join(getattr(p, "name", str(p)) for p in pairs.paths)
    formats = ", ".join(f"{name}: {n:,}" for name, n in pairs.formats.most_common())
    lines: list = [Text.assemble(("lengthscan", "bold"), f"  {files}  ·  tokenizer {a.tokenizer_name}")]
    lines += skip_warning(pairs.skips, pairs.records)
    lines.append(Text(f"pairs    {pairs.records:,} preference pairs ({formats}) · {skipped(pairs.skips)}"))
    lines.append(
        Text(
            "         DPO data (train is SFT and refuses pairs): lengths as TRL's DPOTrainer tokenizes them",
            style="yellow",
        )
    )
    lines += ["", _lengths_table(a), ""]
    lines.append(Text.assemble(("suggested ", "bold"), ("DPOConfig(max_length=", "bold"),
                               (f"{s.max_length}", "bold green"), (")", "bold")))  # fmt: skip
    lines.append(Text(f"  why: {s.reason}."))
    lines.append(
        Text(
            f"  at {s.max_length:,}: {s.truncated:,} pairs cut in a reply, {s.dropped:,} dropped (DPOTrainer drops "
            f"a pair whose prompt fills max_length); {s.reply_tokens_lost:.1%} of reply tokens lost"
        )
    )
    lines.append(
        Text(
            f"  max_prompt_length={s.max_prompt_length} for TRL before {PROMPT_LENGTH_UNTIL} (the same share of "
            "prompts whole); later TRL has no such key",
            style="dim",
        )
    )
    if a.limit:
        lines.append(Text(f"  model limit: {a.limit:,} positions", style="dim"))
    return Group(*lines)


def _lengths_table(a: PairAnalysis) -> Table:
    table = Table(title="tokens per pair", box=None, padding=(0, 1))
    stats = a.lengths()
    columns = list(next(iter(stats.values())))
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for name, row in stats.items():
        table.add_row(name, *(f"{row[c]:,}" for c in columns))
    return table


def print_pair_report(a: PairAnalysis, console: Console | None = None) -> None:
    (console or Console()).print(render(a))
