"""`lengthscan --plot` and the figures behind the notebook: sizes, labels, long tails, atomic writes."""

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from analyze import plot
from analyze.analysis import analyze
from analyze.cli import main
from analyze.config import with_values
from analyze.errors import UserError
from analyze.lengths import LengthTable
from analyze.pipeline import Tokenized, tokenize_files
from analyze.reader import SkipLog
from analyze.schema import Config
from tests.conftest import SAMPLE, write_log_csv

pytest.importorskip("matplotlib")  # the optional `plot` extra; analyze.plot itself imports it only when drawing

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAIN_SIZE = (1300, 600)  # plot.FIGSIZE (13 × 6 inches) × plot.DPI (100)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has first, right after the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def sample(qwen3):
    return analyze(tokenize_files([SAMPLE], qwen3), Config())  # 512, cut_turns, 4 × 4, seed 42


@pytest.fixture(scope="module")
def long_tail():
    """300 records of 100 tokens and two of 3,000 and 5,000 (half of each supervised, in one final turn)."""
    n = np.array([100] * 300 + [3000, 5000])
    rows = len(n)
    table = LengthTable(
        file_index=np.zeros(rows, np.int32),
        line=np.arange(1, rows + 1),
        tokens=n,
        supervised=n // 2,
        span_record=np.arange(rows),
        span_start=n - n // 2,
        span_end=n,
    )
    tokenized = Tokenized([Path("literal.jsonl")], table, SkipLog(), "literal", "", "")
    return analyze(tokenized, with_values(Config(), {"overlong": "truncate", "data.eval_fraction": 0.0}))


def test_plot_flag_writes_a_png_of_the_expected_size(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no lengthscan.yaml around: built-in defaults
    out = tmp_path / "lengths.png"
    assert main([str(SAMPLE), "--tokenizer", "bundled:qwen3", "--plot", str(out), "--json"]) == 0
    assert png_size(out) == MAIN_SIZE == (plot.FIGSIZE[0] * plot.DPI, plot.FIGSIZE[1] * plot.DPI)
    assert out.stat().st_size > 20_000  # a drawn figure, not an empty canvas
    assert capsys.readouterr().out.lstrip().startswith("{")  # stdout stays one JSON document
    assert [p.name for p in tmp_path.iterdir()] == ["lengths.png"]  # no temporary file left beside it


def test_main_figure_names_what_it_shows(sample):
    fig = plot.main_figure(sample)
    hist, waste = fig.axes
    assert hist.get_xlabel().startswith("tokens per record") and hist.get_ylabel() == "records"
    assert waste.get_xlabel().startswith("max_length (tokens") and "%" in waste.get_ylabel()
    assert "2,354 records" in hist.get_title() and "Padding waste" in waste.get_title()
    hist_labels = [t.get_text() for t in hist.get_legend().get_texts()]
    # the sample's longest record is 951 tokens, past the axis: the legend says so
    assert hist_labels == [
        "max_length (current) 512: 3.3% of records longer",
        f"suggested max_length {sample.suggestion.max_length}: 0.9% of records longer",
        "≥ 720 tokens: 21 records, longest 951",
    ]
    waste_labels = [t.get_text() for t in waste.get_legend().get_texts()]
    assert waste_labels[0] == "padding, every record padded to max_length: 63.0% → 72.3%"
    assert len(waste_labels) == 6  # three batchings, records cut, two max_length lines


def test_a_few_very_long_records_do_not_squash_the_histogram(long_tail):
    # p99 is 100 tokens and max_length 512: the axis stops at 520 (bins of 20) and the hatched bar holds the two
    # long records; the 5,000-token one would otherwise push every other bar into the first tenth of the axis
    fig = plot.main_figure(long_tail)
    hist = fig.axes[0]
    assert hist.get_xlim()[1] < 600
    assert "≥ 520 tokens: 2 records, longest 5,000" in [t.get_text() for t in hist.get_legend().get_texts()]
    assert "bins of 20 tokens" in hist.get_title()


def test_waste_curve_samples_multiples_of_64_and_reuses_the_reports_numbers(long_tail):
    curve = plot.waste_curve(long_tail)
    lengths = [c.max_length for c in curve]
    # p99.9 is 5,000 tokens: 48 points of 64 would stop at 3,072, so the step widens to 128
    assert lengths[:4] == [128, 256, 384, 512] and lengths[-1] == 5120
    assert all(x % 128 == 0 for x in lengths) and len(lengths) <= plot.WASTE_POINTS + 2
    assert curve[lengths.index(512)] is long_tail.at_max_length
    for c in curve:
        assert c.padding_waste_pad_to_max >= c.padding_waste_dynamic >= 0
        assert 0 <= c.padding_waste_packed < 1


def test_notebook_panels_draw_on_any_axes(sample):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 10))
    axes = fig.subplots(2, 2).ravel()
    for ax, draw in zip(axes, (plot.plot_histogram, plot.plot_cdf, plot.plot_waste, plot.plot_supervised), strict=True):
        draw(ax, sample)
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() and ax.get_legend()
    cdf = axes[1]
    assert {"p50 = 165", "p90 = 382", "p95 = 460", "p99 = 687"} <= {t.get_text() for t in cdf.texts}
    assert cdf.get_xscale() == "linear"  # longest 951 ≤ 4 × p99: no long tail to compress


def test_cdf_switches_to_log_scale_for_a_long_tail(long_tail):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    plot.plot_cdf(ax, long_tail)
    assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel()


def test_writing_leaves_pyplot_alone_and_replaces_the_file(sample, tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    out = tmp_path / "main.png"
    out.write_bytes(b"old")
    plot.write_main_figure(sample, out)
    assert png_size(out) == MAIN_SIZE
    assert plt.get_fignums() == before
    assert [p.name for p in tmp_path.iterdir()] == ["main.png"]


@pytest.mark.parametrize(
    ("name", "message"),
    [("main.svg", r"--plot .*main\.svg: .*ending in \.png"), ("missing/main.png", r"folder .*missing does not exist")],
)
def test_bad_plot_paths_say_how_to_fix_them(sample, tmp_path, name, message):
    with pytest.raises(UserError, match=message):
        plot.write_main_figure(sample, tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_missing_matplotlib_names_the_extra(sample, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    with pytest.raises(UserError, match=r"--plot needs matplotlib: pip install 'lengthscan\[plot\]'"):
        plot.write_main_figure(sample, tmp_path / "main.png")


def test_train_plots_legend_covers_no_point(tmp_path):
    """`train plot`: eval loss rising to its highest at the last step puts that point in the top right corner, where
    the legend was; no train or eval point may lie under the legend's box."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from train.loss_plot import DPI, SIZE, loss_figure, plot_run

    train = [(s, 3.0 - s / 1000) for s in range(10, 1001, 10)]  # falling from 3.0 to 2.0
    evals = [(s, 2.4 + (s / 1000) ** 3) for s in range(0, 1001, 100)]  # rising to 3.4 at the last step, 1,000
    write_log_csv(tmp_path, train, evals)
    (tmp_path / "plateau.json").write_text('{"verdict": "overfitting", "window": {"steps": [600, 1000]}}')
    fig = loss_figure(tmp_path)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    (ax,) = fig.axes
    legend = fig.legends[0] if fig.legends else ax.get_legend()
    box = legend.get_window_extent(renderer)
    points = ax.transData.transform(evals + train)
    assert not box.contains(*points[len(evals) - 1])  # the last eval point, (1000, 3.4)
    assert not any(box.contains(x, y) for x, y in points)
    assert len(legend.get_texts()) == 4  # train, eval, the verdict's window, the guide's floor
    assert png_size(plot_run(tmp_path)) == (SIZE[0] * DPI, SIZE[1] * DPI)  # the figure keeps its size
