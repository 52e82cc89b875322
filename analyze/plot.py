"""The length analysis as pictures: the histogram, the CDF, padding waste against max_length, supervised tokens.

Each `plot_*` function draws one panel on a matplotlib `Axes` from an `Analysis` and computes nothing the
analyzer does not already provide (the waste curve calls `analyze.stats.candidates` on a denser ladder).
`write_main_figure` is what `lengthscan --plot FILE.png` writes. matplotlib is optional (`lengthscan[plot]`)
and imported only here; figures are plain `Figure` objects on the Agg canvas, so no pyplot state is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analyze.errors import UserError
from analyze.stats import PlanStats, candidates, percentile

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from analyze.analysis import Analysis

FIGSIZE = (13.0, 6.0)  # inches; at DPI 100 the PNG is 1300 × 600 pixels
DPI = 100
HIST_BINS = 50  # target bin count up to the clip point; the width is rounded to 1, 2 or 5 × 10^k tokens
WASTE_STEP = 64  # the waste curve samples max_length at multiples of this…
WASTE_POINTS = 48  # …widened so there are at most about this many points (each one packs the whole data set)
CURRENT = {"color": "tab:red", "linestyle": "-", "linewidth": 1.8}
SUGGESTED = {"color": "tab:green", "linestyle": "--", "linewidth": 1.8}


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'lengthscan[plot]'") from None


def main_figure(analysis: Analysis) -> Figure:
    """The histogram with both max_length lines, beside padding waste against max_length."""
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=(1.15, 1))
    plot_histogram(left, analysis)
    plot_waste(right, analysis)
    fig.suptitle(_data_title(analysis), fontsize=11)
    return fig


def write_main_figure(analysis: Analysis, path: Path) -> None:
    """Write `main_figure` as a FIGSIZE × DPI PNG, atomically (readers never see half a file)."""
    from analyze.atomic import replacing

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UserError(f"--plot {path}: the figure is a PNG; give a file name ending in .png")
    if not path.parent.is_dir():
        raise UserError(f"--plot {path}: folder {path.parent} does not exist; create it or choose another path")
    fig = main_figure(analysis)
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def plot_histogram(ax: Axes, analysis: Analysis, bins: int = HIST_BINS) -> None:
    """Records per token length, clipped at a round number past p99; the current and suggested max_length."""
    edges, counts, beyond = analysis.histogram(bins)
    width = edges[1] - edges[0]
    ax.bar(edges[:-1], counts, width=width, align="edge", color="tab:blue", alpha=0.8, edgecolor="white")
    if beyond:  # the long tail in one hatched bar, so a few very long records do not squash the rest
        label = f"≥ {edges[-1]:,} tokens: {beyond:,} records, longest {analysis.lengths.max:,}"
        ax.bar(edges[-1], beyond, width=width, align="edge", color="white", edgecolor="gray", hatch="///", label=label)
    _max_length_lines(ax, analysis, with_rates=True)
    ax.set_xlim(0, _x_top(analysis, edges[-1] + (width if beyond else 0)))
    ax.set_title(f"Token lengths of {analysis.table.tokens.size:,} records (bins of {width:,} tokens)")
    ax.set_xlabel("tokens per record (chat template applied)")
    ax.set_ylabel("records")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8.5)  # below: never hides a bar
    ax.grid(axis="y", alpha=0.3)


def plot_cdf(ax: Axes, analysis: Analysis, log_x: bool | None = None) -> None:
    """Share of records at or under each length, with p50/p90/p95/p99 marked.

    `log_x=None` picks a log axis when the longest record is more than 4 × p99 (a long tail).
    """
    from matplotlib.ticker import PercentFormatter

    n, L = analysis.lengths, analysis.table.tokens
    if log_x is None:
        log_x = n.max > 4 * n.p99
    ax.ecdf(L, color="tab:blue", linewidth=1.8, label="records ≤ length")
    for q, x in ((50, n.p50), (90, n.p90), (95, n.p95), (99, n.p99)):
        ax.plot(x, q / 100, "o", color="black", markersize=4)
        # to the left of a CDF point the curve is lower: free space for the label
        ax.annotate(
            f"p{q} = {x:,}",
            (x, q / 100),
            xytext=(-6, 2),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=9,
        )
    _max_length_lines(ax, analysis)
    if log_x:
        ax.set_xscale("log")
        ax.set_xlim(max(n.min, 1) * 0.9, _x_top(analysis, n.max))
    else:
        ax.set_xlim(0, _x_top(analysis, n.max))
    ax.set_ylim(0, 1.04)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title("Cumulative distribution of token lengths")
    ax.set_xlabel("tokens per record" + (" (log scale)" if log_x else ""))
    ax.set_ylabel("records at or under this length")
    ax.legend(loc="lower right", fontsize=9)
    ax.grid(alpha=0.3)


def waste_curve(analysis: Analysis) -> list[PlanStats]:
    """`PlanStats` at max_length = 64, 128, … up to past p99.9 and both marked lengths (at most ~48 points).

    Lengths the analysis already evaluated are taken from it, so the marked values match the report exactly.
    """
    tokens, here = analysis.table.tokens, analysis.at_max_length
    top = max(percentile(tokens, 99.9), here.max_length, analysis.suggestion.max_length)
    step = WASTE_STEP * -(-top // (WASTE_STEP * WASTE_POINTS))  # ceil: 64, or the multiple that keeps ≤ 48 points
    grid = set(range(step, top + step, step)) | {here.max_length, analysis.suggestion.max_length}
    if analysis.limit:
        grid = {x for x in grid if x <= analysis.limit}
    known = {c.max_length: c for c in [*analysis.candidates, here]}
    missing = sorted(grid - known.keys())
    a = analysis
    known |= {
        c.max_length: c
        for c in candidates(a.table, missing, here.policy, a.micro_batch, a.grad_accum, a.seed, ~a.held_out)
    }
    return [known[x] for x in sorted(grid)]


def plot_waste(ax: Axes, analysis: Analysis) -> None:
    """Padding waste of the three batchings, and the records cut, against max_length."""
    from matplotlib.ticker import PercentFormatter

    curve = waste_curve(analysis)
    x = [c.max_length for c in curve]
    mb, policy = analysis.micro_batch, analysis.at_max_length.policy
    lines = (
        ("padding_waste_pad_to_max", "padding, every record padded to max_length", "tab:orange", "-"),
        ("padding_waste_dynamic", f"padding, each batch of {mb} padded to its longest", "tab:purple", "-"),
        ("padding_waste_packed", "padding, packed rows of max_length", "tab:blue", "-"),
        ("truncation_rate", f"records longer than max_length (cut by {policy})", "gray", ":"),
    )
    at = {c.max_length: c for c in curve}
    marked = list(dict.fromkeys([analysis.at_max_length.max_length, analysis.suggestion.max_length]))
    for attr, label, color, style in lines:
        values = " → ".join(f"{getattr(at[m], attr):.1%}" for m in marked if m in at)
        ax.plot(x, [getattr(c, attr) for c in curve], style, color=color, linewidth=1.8, label=f"{label}: {values}")
    _max_length_lines(ax, analysis)
    ax.set_xlim(0, x[-1])
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title("Padding waste and records cut against max_length")
    ax.set_xlabel("max_length (tokens per training row)")
    ax.set_ylabel("padding: % of token slots · cut: % of records")
    title = "at max_length " + " → ".join(f"{m:,}" for m in marked if m in at)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8.5, title=title, title_fontsize=8.5)
    ax.grid(alpha=0.3)


def plot_supervised(ax: Axes, analysis: Analysis) -> None:
    """Each record as a dot: all its tokens against its supervised (assistant) tokens."""
    table = analysis.table
    total, sup = table.tokens, table.supervised
    edges, _, beyond = analysis.histogram(HIST_BINS)
    top = _x_top(analysis, edges[-1])
    alpha = float(np.clip(2000 / max(len(total), 1), 0.05, 0.6))  # dense data: lighter dots show the density
    ax.scatter(total, sup, s=6, alpha=alpha, color="tab:blue", linewidths=0, rasterized=True, label="one record")
    ax.plot([0, top], [0, top], color="black", linewidth=0.8, alpha=0.6, label="all tokens supervised")
    share = sup.sum() / max(total.sum(), 1)
    label = f"overall: {share:.0%} of tokens supervised"
    ax.plot([0, top], [0, share * top], color="tab:orange", linewidth=1.2, label=label)
    _max_length_lines(ax, analysis)
    if beyond:
        ax.plot([], [], " ", label=f"{beyond:,} records ≥ {edges[-1]:,} tokens lie beyond the right edge")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_title("Supervised (assistant) tokens against all tokens per record")
    ax.set_xlabel("tokens per record")
    ax.set_ylabel("supervised tokens per record (trained on)")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)


def _max_length_lines(ax: Axes, analysis: Analysis, with_rates: bool = False) -> None:
    """Vertical lines at the current and the suggested max_length; `with_rates` adds the share of records cut."""
    cur, sug = analysis.at_max_length.max_length, analysis.suggestion.max_length
    rates = {c.max_length: c.truncation_rate for c in analysis.candidates}
    rates[cur] = analysis.at_max_length.truncation_rate

    def label(name: str, value: int) -> str:
        rate = rates.get(value) if with_rates else None
        return f"{name} {value:,}" + ("" if rate is None else f": {rate:.1%} of records longer")

    if cur == sug:
        ax.axvline(cur, **CURRENT, label=label("max_length (current = suggested)", cur))
        return
    ax.axvline(cur, **CURRENT, label=label("max_length (current)", cur))
    ax.axvline(sug, **SUGGESTED, label=label("suggested max_length", sug))


def _x_top(analysis: Analysis, data_top: float) -> float:
    """Right edge of a length axis: the data's clip point, or further when a max_length line lies past it."""
    return max(data_top, analysis.at_max_length.max_length, analysis.suggestion.max_length) * 1.05


def _data_title(analysis: Analysis) -> str:
    t = analysis.tokenized
    names = ", ".join(p.name for p in t.paths[:2]) + (f" and {len(t.paths) - 2} more" if len(t.paths) > 2 else "")
    return f"{names}: {t.records:,} records, tokenizer {t.tokenizer_name}"
