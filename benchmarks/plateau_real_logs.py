"""Replay the plateau watch on public Trainer logs against labels written before any replay (the untuned set).

The labels and sources are in docs/plateau_untuned_sources.json (docs/plateau_untuned_labels.md says how they were
found and labelled); the logs themselves are not shipped (their licences are unknown): download each file at the
commit given into a folder as NN.json, then

    python benchmarks/plateau_real_logs.py --logs DIR

prints one row per log (label against the watch's final verdict and first warning) and, last, a JSON line with the
agreement. A row agrees when the final verdicts are the same and the first warnings are the same evaluation (the
labelled step read as the nearest evaluation), or both none. `warnings_agree` counts the rows where only the first
warning is compared: what a user watching live is told to act on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from train.plateau.replay import load_log, watch_report  # noqa: E402

SOURCES = ROOT / "docs" / "plateau_untuned_sources.json"  # --sources docs/plateau_tuned_sources.json: the tuned set


def _nearest_eval(steps: list[int], step: int | None) -> int | None:
    return None if step is None else min(steps, key=lambda s: abs(s - step))


def _accepted(span: list[int] | None, step: int | None) -> bool:
    """A warning the label calls acceptable (an overfitting warning in a span of steps) though it wants none."""
    return span is not None and step is not None and span[0] <= step <= span[1]


def replay_one(source: dict, path: Path) -> dict:
    doc = watch_report(load_log(path))
    steps = [e["step"] for e in doc["per_eval"]]
    want_end, want_first = source["label_end"], _nearest_eval(steps, source["label_first_warning"])
    got_end, got_first = doc["verdict"], doc["first_warning_step"]
    return {
        "n": source["n"],
        "repo": source["repo"],
        "evals": len(steps),
        "label": f"{want_end}; {want_first if want_first is not None else 'none'}",
        "watch": f"{got_end}; {got_first if got_first is not None else 'none'}",
        "agree": got_end == want_end
        and (got_first == want_first or _accepted(source.get("accept_warning"), got_first)),
        "warning_agrees": got_first == want_first or _accepted(source.get("accept_warning"), got_first),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logs", type=Path, required=True, help="the folder holding NN.json for each source")
    p.add_argument("--sources", type=Path, default=SOURCES, help="the labels and sources (default: the untuned set)")
    args = p.parse_args(argv)
    rows = [replay_one(s, args.logs / f"{s['n']}.json") for s in json.loads(args.sources.read_text())]
    for r in rows:
        agree = "yes" if r["agree"] else "no"
        print(f"| {r['n']} | {r['repo']} | {r['evals']} | {r['label']} | {r['watch']} | {agree} |")
    print(json.dumps({"logs": len(rows), "agree": sum(r["agree"] for r in rows),
                      "warnings_agree": sum(r["warning_agrees"] for r in rows)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
