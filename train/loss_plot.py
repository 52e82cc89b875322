"""The loss curves of a run: train and eval loss against steps, the plateau window shaded (`train plot RUN_DIR`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from analyze.atomic import replacing
from analyze.errors import UserError
from train.outputs import FIGURE, LOG_CSV, REPORT

SIZE, DPI = (9, 5), 100


def read_log(path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, train loss), (step, eval loss) and (step, learning rate) points of a run's log.csv, one per step (the
    last written)."""
    columns: dict[str, dict[int, float]] = {"train_loss": {}, "eval_loss": {}, "learning_rate": {}}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for name, points in columns.items():
                if row.get(name):
                    points[int(row["step"])] = float(row[name])
    train, evals, lrs = (sorted(points.items()) for points in columns.values())
    return train, evals, lrs


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw `run_dir`/log.csv (and the window of `run_dir`/plateau.json if any) into a PNG; return its path."""
    run_dir = Path(run_dir)
    fig = loss_figure(run_dir)
    target = Path(out) if out else run_dir / FIGURE
    with replacing(target) as tmp:
        fig.savefig(tmp, format="png")
    return target


def loss_figure(run_dir: Path):
    """The figure `plot_run` writes (a matplotlib `Figure`, pyplot left alone). The legend sits below the axes, out
    of the way of every curve: inside, wherever it went, it covered the last eval point of some run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    log = run_dir / LOG_CSV
    if not log.is_file():
        raise UserError(f"{run_dir}: no {LOG_CSV} here; pass the output folder of a `train` run")
    train, evals, _ = read_log(log)
    if not train and not evals:
        raise UserError(f"{log}: no loss logged yet; plot again after the first logging step")
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train, strict=True), color="tab:blue", alpha=0.8, linewidth=1, label="train loss")
    if evals:
        ax.plot(*zip(*evals, strict=True), color="tab:orange", marker="o", linewidth=2, label="eval loss")
    verdict = _verdict(run_dir)
    if verdict and verdict.get("window"):
        a, b = verdict["window"]["steps"]
        ax.axvspan(a, b, color="tab:red", alpha=0.12, label=f"{verdict['verdict']} window (steps {a}–{b})")
    ax.axhspan(2.3, 2.5, color="grey", alpha=0.08, label="natural dialogue floor ≈ 2.3–2.5 (guide)")
    ax.set(
        xlabel="optimizer step",
        ylabel="loss (cross-entropy, nats per supervised token)",
        title=f"Loss curves — {run_dir.name}",
    )
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, frameon=False)
    return fig


def _verdict(run_dir: Path) -> dict | None:
    path = run_dir / REPORT
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
