"""The terminal report: everything a user needs to pick max_length, readable at a glance."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from analyze import tool_drops
from analyze.analysis import Analysis

BAR_WIDTH = 40
UNBOUNDED = 10_000  # a width no table here reaches: to measure one's natural width


def render(a: Analysis, current_source: str) -> Group:
    t = a.tokenized
    s = a.at_max_length
    total, sup = int(a.table.tokens.sum()), int(a.table.supervised.sum())
    lines: list = []
    files = ", ".join(p.name for p in t.paths)
    lines.append(Text.assemble(("lengthscan", "bold"), f"  {files}  ·  tokenizer {t.tokenizer_name}"))
    if t.sample is not None:  # say plainly that every number below is a sample's
        lines.append(
            Text(
                f"sample   {t.sample.size:,} of {t.sample.population:,} records ({t.sample.method} sample, seed "
                f"{t.sample.seed}): the numbers are the sample's; 95% intervals for the whole data at the end",
                style="bold yellow",
            )
        )
    lines += skip_warning(t.skips, t.records)
    no_reply = len(t.table.without_reply)  # most such records stop both commands (`check_replies`)
    replies = f" ({no_reply:,} with no assistant reply: nothing to train)" if no_reply else ""
    lines.append(Text(f"records  {t.records:,} analysed{replies} · {skipped(t.skips)}"))
    if t.roles_fixed:
        fixes = ", ".join(f"{k} {v:,}" for k, v in t.roles_fixed.most_common())
        lines.append(Text(f"fixed    roles the chat template refused (data.fix_roles): {fixes}", style="yellow"))
    if tools_warning := tool_drops.warning(t.tool_drops):
        lines.append(Text(f"warning  {tools_warning}", style="bold yellow"))
    lines.append(Text(f"tokens   {total:,} total · {sup:,} supervised ({_pct(sup, total)})"))
    L = a.lengths
    lines.append(
        Text(
            f"lengths  min {L.min:,} · mean {L.mean:,.0f} · p50 {L.p50:,} · p90 {L.p90:,} · p95 {L.p95:,} · "
            f"p99 {L.p99:,} · max {L.max:,}"
        )
    )
    lines += ["", _histogram(a), ""]
    lines.append(
        Text.assemble(
            ("at max_length ", "bold"),
            (f"{s.max_length:,}", "bold cyan"),
            f" ({current_source}; overlong policy '{s.policy}')",
        )
    )
    lines.append(
        Text(
            f"  records over it   {s.records_truncated:,} ({s.truncation_rate:.1%}), {s.records_dropped:,} of them "
            f"dropped whole\n"
            f"  tokens lost       {s.tokens_lost:,} ({s.tokens_lost_rate:.1%}) · supervised tokens lost "
            f"{s.supervised_tokens_lost:,} ({s.supervised_tokens_lost_rate:.1%})\n"
            f"  nothing to train  {_records(s.records_without_supervised)} (no assistant token left)"
        )
    )
    lines += ["", _waste_table(a), "", _candidates(a), ""]
    g = a.suggestion
    lines.append(
        Text.assemble(
            ("suggested max_length ", "bold"),
            (f"{g.max_length:,}", "bold green"),
            f" at micro-batch {g.micro_batch_size} × {g.grad_accum_steps}" if g.micro_batch_size else "",
            f"  (policy '{g.policy}')",
        )
    )
    lines.append(Text(f"  why: {g.reason}."))
    if a.limit:
        lines.append(Text(f"  model limit: {a.limit:,} positions ({a.limit_source})", style="dim"))
    if a.memory is not None:
        lines.append(Text(f"  memory: {_memory_line(a)}", style="dim" if a.fit and not a.fit.change else "yellow"))
    if a.train_check is not None and (said := a.train_check.line()):
        lines.append(Text(f"  {said}", style="bold yellow" if a.train_check.refusal else "dim"))
    if a.intervals:
        lines += ["", _intervals_line(a)]
    return Group(*lines)


def _intervals_line(a: Analysis) -> Text:
    """The whole data's 95% intervals, from the bootstrap over the sample."""
    iv = a.intervals

    def tokens(k):
        return f"{iv[k][0]:,.0f}–{iv[k][1]:,.0f}"

    def share(k):
        return f"{iv[k][0]:.1%}–{iv[k][1]:.1%}"

    return Text(
        f"95% intervals for the whole data (bootstrap over the sample): p50 {tokens('lengths.p50')} · p90 "
        f"{tokens('lengths.p90')} · p99 {tokens('lengths.p99')} · records cut {share('truncation.rate')} · tokens "
        f"lost {share('truncation.tokens_lost_rate')} · waste pad-to-max {share('padding_waste.pad_to_max')}, "
        f"dynamic {share('padding_waste.dynamic')}, packed {share('padding_waste.packed')} (an upper bound: more "
        f"records pack tighter) · suggested max_length {tokens('suggested_max_length')}",
        style="yellow",
    )


def _memory_line(a: Analysis) -> str:
    m = a.memory
    if m.shape is None:
        return f"unknown for {m.model} ({m.why}): {m.source}"
    f = a.fit
    if f.change:
        return f"to fit {m.gpu} ({m.budget_gib:g} GiB): {f.change}; --write-config writes it; {m.planned_for}"
    peak = f"{f.plan.peak_gib:.1f} of {m.budget_gib:g} GiB on {m.gpu} at micro-batch {f.micro_batch_size}"
    return f"{peak}, {m.planned_for}"


def skip_warning(skips, analysed: int) -> list[Text]:
    """The report's first lines when records were skipped (so nobody misses them): the count and the first few."""
    if not skips.total:
        return []
    return [
        Text(f"warning  {skips.summary(analysed)}", style="bold yellow"),
        *(Text(f"  skipped {example}", style="yellow") for example in skips.examples),
    ]


def skipped(skips) -> str:
    """'3 skipped (malformed_json: 2, unknown_format: 1)', or '0 skipped'."""
    reasons = ", ".join(f"{k}: {v:,}" for k, v in skips.counts.most_common())
    return f"{skips.total:,} skipped" + (f" ({reasons})" if skips.total else "")


def print_report(a: Analysis, current_source: str, console: Console | None = None) -> None:
    (console or Console()).print(render(a, current_source))


def _histogram(a: Analysis) -> Table:
    edges, counts, over = a.histogram()
    marks = {a.at_max_length.max_length: "◀ max_length", a.suggestion.max_length: "◀ suggested"}
    peak = max(int(counts.max()), over, 1)
    table = Table(title="records by length (tokens)", box=None, show_header=False, padding=(0, 1))
    for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
        note = " ".join(m for x, m in marks.items() if lo < x <= hi)
        table.add_row(f"{lo:>6,}–{hi - 1:<6,}", _bar(int(c), peak), f"{c:,}", Text(note, style="cyan"))
    if over:
        note = " ".join(m for x, m in marks.items() if x > edges[-1])
        table.add_row(f"≥ {edges[-1]:,}".rjust(13), _bar(over, peak), f"{over:,}", Text(note, style="cyan"))
    return table


def _bar(count: int, peak: int) -> Text:
    width = round(BAR_WIDTH * count / peak)
    return Text("█" * width or ("▏" if count else ""), style="blue")


def _waste_table(a: Analysis) -> Table:
    s = a.at_max_length
    title = f"padding waste at max_length {s.max_length:,}, train split: {_records(s.records_trained)}"
    table = Table(title=title, caption=_split_line(a), box=None, padding=(0, 2))
    table.add_column("batching")
    table.add_column("padding\n(share of slots)", justify="right")
    table.add_column(f"optimizer steps\nper epoch ({a.micro_batch}×{a.grad_accum})", justify="right")
    table.add_row(
        "pad each record to max_length",
        f"{s.padding_waste_pad_to_max:.1%}",
        f"{s.steps_per_epoch_unpacked:,}",
    )
    table.add_row(
        f"dynamic, per micro-batch of {a.micro_batch}",
        f"{s.padding_waste_dynamic:.1%}",
        f"{s.steps_per_epoch_unpacked:,}",
    )
    table.add_row(
        Text(f"packed: {s.packed_rows:,} rows", style="bold"),
        f"{s.padding_waste_packed:.1%}",
        f"{s.steps_per_epoch_packed:,}",
    )
    return table


def _split_line(a: Analysis) -> str:
    """Which records the batching numbers leave out, and why: they are the train split `train` uses."""
    if a.cfg.data.eval:
        return "eval: the config's data.eval files; nothing held out here"
    if not a.eval_records and not a.cfg.data.eval_fraction:
        return "no eval hold-out (data.eval_fraction 0)"
    if not a.eval_records:  # as train says it: the held-out conversations all lose their assistant tokens
        held = int(a.held_out.sum())
        return f"no eval: none of the {held:,} held-out conversations has an assistant token within max_length"
    return f"+ {a.eval_records:,} held out for eval (data.eval_fraction {a.cfg.data.eval_fraction:g}), packed apart"


# The candidate table's headers: as wide as they read best, and narrower ones (two or three lines, no word longer
# than its column's numbers) for a terminal too narrow for the first: rich would cut a header word with "…".
CANDIDATE_HEADERS = (
    ("max_length", "max\nlength"),
    ("records\ncut", "records\ncut"),
    ("tokens\nlost", "tokens\nlost"),
    ("assistant\ntokens lost", "asst.\ntokens\nlost"),
    ("waste\npad-to-max", "waste\npad to\nmax"),
    ("waste\npacked", "waste\npacked"),
    ("packed\nrows", "packed\nrows"),
    ("steps/\nepoch", "steps/\nepoch"),
)


def _candidates(a: Analysis) -> _FirstThatFits:
    return _FirstThatFits(_candidate_table(a, narrow=False), _candidate_table(a, narrow=True))


def _candidate_table(a: Analysis, narrow: bool) -> Table:
    table = Table(title="candidate max_lengths (train split packed, same overlong policy)", box=None, padding=(0, 1))
    for headers in CANDIDATE_HEADERS:
        table.add_column(headers[narrow], justify="right")
    memory = _memory_cells(a)
    if memory:
        peak = "peak\nGiB" if narrow else "peak GiB"
        table.add_column(f"{peak}\n({a.memory.gpu})", justify="right")
    for c in a.candidates:
        style = (
            "bold green"
            if c.max_length == a.suggestion.max_length
            else ("cyan" if c.max_length == a.at_max_length.max_length else None)
        )
        table.add_row(
            f"{c.max_length:,}",
            f"{c.truncation_rate:.1%}",
            f"{c.tokens_lost_rate:.1%}",
            f"{c.supervised_tokens_lost_rate:.1%}",
            f"{c.padding_waste_pad_to_max:.1%}",
            f"{c.padding_waste_packed:.1%}",
            f"{c.packed_rows:,}",
            f"{c.steps_per_epoch_packed:,}",
            *([memory[c.max_length]] if memory else []),
            style=style,
        )
    return table


class _FirstThatFits:
    """Renders the first of `choices` whose natural width fits the console (else the last): a table keeps its
    readable headers on a wide terminal and switches to narrower ones instead of being cut on a narrow one."""

    def __init__(self, *choices):
        self.choices = choices

    def _choice(self, console: Console, options: ConsoleOptions):
        unbounded = options.update(max_width=UNBOUNDED)
        for choice in self.choices:
            if Measurement.get(console, unbounded, choice).maximum <= options.max_width:
                return choice
        return self.choices[-1]

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        yield self._choice(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self._choice(console, options))


def _memory_cells(a: Analysis) -> dict[int, str]:
    """max_length → predicted peak at the config's micro-batch, or the smaller one that fits (`mb 2`), or ✗."""
    if a.memory is None or a.memory.shape is None:
        return {}
    o, cells = a.cfg.optim, {}
    for c in a.candidates:
        row = a.memory.candidate(c.max_length, o.micro_batch_size, o.grad_accum_steps)
        note = "" if row["micro_batch_size"] == o.micro_batch_size else f" mb {row['micro_batch_size']}"
        cells[c.max_length] = f"{row['peak_gib']:.1f}{note}" + ("" if row["fits"] else " ✗")
    return cells


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def _records(n: int) -> str:
    return f"{n:,} record" + ("" if n == 1 else "s")
