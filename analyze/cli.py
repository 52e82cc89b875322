"""`lengthscan`: the command-line layer over `analyze.analysis` — parse, call, print."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from analyze import __version__
from analyze.config import config_path, config_target, load_config, with_values
from analyze.errors import UserError, run_command
from analyze.flags import Parser, add_config_flags, config_values
from analyze.schema import DEFAULT_CONFIG_NAME

# What `lengthscan` accepted before the one grammar (analyze/flags.py): their unique prefixes still work for a release.
BEFORE = (
    "--help", "--config", "--model", "--tokenizer", "--chat-template", "--format", "--max-length", "--overlong",
    "--policy", "--target", "--round-to", "--gpu", "--micro-batch-size", "--grad-accum-steps", "--max-skip", "--split",
    "--subset", "--write-config", "--json", "--sample", "--lengths-out", "--skipped-out", "--plot", "--strict",
    "--cache", "--no-cache", "--progress", "--no-progress", "--version",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="lengthscan",
        before=BEFORE,
        usage="%(prog)s [FILES ...] [options]",
        description="Token lengths of chat data as the trainer sees them: distribution, truncation, padding "
        "waste, and a suggested max_length (optionally written into the trainer's config).",
    )
    p.add_argument("files", nargs="*", help=".jsonl / .json files, optionally .gz (default: the config's data.train)")
    p.add_argument(
        "--config",
        metavar="PATH",
        help=f"YAML config to read (default: ./{DEFAULT_CONFIG_NAME} if present, else built-in defaults)",
    )
    p.add_argument(
        "--write-config",
        nargs="?",
        const="",
        metavar="PATH",
        help=f"write the suggestion as max_length into PATH (default: --config or ./{DEFAULT_CONFIG_NAME})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of the report")
    p.add_argument(
        "--sample",
        metavar="N",
        help="analyse a seeded random sample: N records, or a fraction such as 0.05; every share, percentile and "
        "the suggestion get a 95%% interval",
    )
    p.add_argument("--lengths-out", metavar="FILE", help="write per-record lengths to FILE (.csv or .parquet)")
    p.add_argument(
        "--skipped-out",
        metavar="FILE",
        help="write every skipped record's file, line, reason and detail to FILE (.csv or .jsonl)",
    )
    p.add_argument("--plot", metavar="FILE.png", help="write the main figure (histogram and waste curve) to a PNG")
    p.add_argument("--strict", action="store_true", help="stop at the first bad record (exit 2) instead of skipping")
    p.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse token ids stored for the same data and tokenizer, store them if new "
        "(in $LENGTHSCAN_CACHE, default ~/.cache/lengthscan)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: on for large inputs on a terminal)",
    )
    p.add_argument("--version", action="version", version=f"lengthscan {__version__}")
    add_config_flags(p)  # every config key, `--section.key VALUE` and the short aliases, as `train` takes them
    return p


def main(argv: list[str] | None = None) -> int:
    return run_command("lengthscan", lambda: run(build_parser().parse_args(argv)), "nothing was written")


def run(args: argparse.Namespace) -> int:
    from analyze.analysis import analyze_files
    from analyze.config_write import write_suggestion
    from analyze.preference import PairAnalysis
    from analyze.sample import SampleSpec
    from analyze.train_check import refuse_to_write, train_check

    _check_args(args)
    cfg_file = config_path(args.config)
    if cfg_file is None and args.write_config and Path(args.write_config).is_file():
        cfg_file = Path(args.write_config)  # the file about to be edited is the run's config: read it first
    cfg = load_config(cfg_file)
    flags = config_values(args)
    given = {key: value for key, (value, _) in flags.items()}
    if "model" in given and "tokenizer" not in given:
        given["tokenizer"] = None  # another model: its own tokenizer, not the config's
    cfg = with_values(cfg, given, where="lengthscan options")
    target = config_target(args.write_config or cfg_file) if args.write_config is not None else None
    check = train_check(cfg, args.cache)  # train's checks of the tokenizer against the model: before anything slow
    if target is not None:
        refuse_to_write(check, cfg, target, max_length=None)
    skipped_out = Path(args.skipped_out) if args.skipped_out else None
    analysis = analyze_files(
        args.files or cfg.data.train,
        cfg,
        strict=args.strict,
        progress=args.progress,
        cache=args.cache,
        on_tokenized=(lambda t: write_skipped(t.skips, skipped_out)) if skipped_out else None,
        sample=SampleSpec.parse(args.sample) if args.sample else None,
    )
    if isinstance(analysis, PairAnalysis):
        return report_pairs(args, analysis)
    analysis.train_check = check
    if args.lengths_out:
        write_lengths(analysis.tokenized, Path(args.lengths_out))
    if args.plot:
        from analyze.plot import write_main_figure

        write_main_figure(analysis, Path(args.plot))
    written = None
    if target is not None:
        refuse_to_write(check, cfg, target, analysis.suggestion.max_length)
        written = (target, write_suggestion(target, analysis, f"lengthscan {__version__}"))
    if args.json:
        print(json.dumps(analysis.as_json(), indent=2))
    else:
        from analyze.report import print_report

        source = flags["max_length"][1] if "max_length" in flags else (f"from {cfg_file}" if cfg_file else "default")
        print_report(analysis, source)
    if written:
        target, created = written
        verb = "created" if created else "updated"
        print(f"lengthscan: {verb} {target}: max_length = {analysis.suggestion.max_length}", file=sys.stderr)
    if not args.json:  # on stderr, as the line above: stdout stays the report
        print(next_step(written[0] if written else None, cfg_file), file=sys.stderr)
    return 0


def report_pairs(args: argparse.Namespace, a) -> int:
    """Preference data: the pairs' report and lengths; train's config is not written (train refuses pairs)."""
    if args.write_config is not None:
        raise UserError(
            f"--write-config: this is preference (DPO) data, and the config is for supervised fine-tuning, which "
            f"refuses pairs; give TRL's DPOTrainer DPOConfig(max_length={a.suggestion.max_length}) instead"
        )
    if args.plot:
        raise UserError("--plot: the figure is drawn for conversations; for preference pairs use --lengths-out FILE")
    if args.lengths_out:
        write_pair_lengths(a.pairs, Path(args.lengths_out))
    if args.json:
        print(json.dumps(a.as_json(), indent=2))
    else:
        from analyze.pair_report import print_pair_report

        print_pair_report(a)
        n = a.suggestion.max_length
        print(f"next: TRL's DPOTrainer with DPOConfig(max_length={n}); train (SFT) takes no pairs", file=sys.stderr)
    return 0


def next_step(written: Path | None, cfg_file: Path | None) -> str:
    """The command to run after the report: write the suggestion into a config, or check the run it configures.

    >>> print(next_step(None, None))
    next: the same lengthscan command with --write-config lengthscan.yaml; then train --config lengthscan.yaml --dry-run
    >>> print(next_step(Path("run.yaml"), None))
    next: train --config run.yaml --dry-run (the run's plan, nothing trained), then without --dry-run to train
    """
    if written:
        plan = "(the run's plan, nothing trained), then without --dry-run to train"
        return f"next: train --config {written} --dry-run {plan}"
    target = config_target(cfg_file)
    return f"next: the same lengthscan command with --write-config {target}; then train --config {target} --dry-run"


def _check_args(args: argparse.Namespace) -> None:
    """Options that are not config keys (those are checked with the config)."""
    if args.write_config and _is_data(Path(args.write_config)):  # `lengthscan --write-config data.json`
        fix = f"lengthscan {args.write_config} --write-config" if not args.files else "--write-config lengthscan.yaml"
        raise UserError(
            f"--write-config {args.write_config}: that is data, not a config (--write-config takes the YAML "
            f"file to write); did you mean `{fix}`?"
        )
    if args.lengths_out and not args.lengths_out.endswith((".csv", ".parquet")):
        raise UserError(f"--lengths-out {args.lengths_out}: use a .csv or .parquet file name")
    if args.skipped_out and not args.skipped_out.endswith((".csv", ".jsonl")):
        raise UserError(f"--skipped-out {args.skipped_out}: use a .csv or .jsonl file name")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise UserError(f"--plot {args.plot}: the figure is a PNG; give a file name ending in .png")


def _is_data(path: Path) -> bool:
    """An existing file of records (.jsonl, .json, .parquet …, by its name) or a folder: no config is either."""
    from analyze.sources import SUFFIXES

    return path.is_dir() or (path.is_file() and path.name.lower().endswith(SUFFIXES))


def write_skipped(skips, path: Path) -> None:
    """Every skipped record: file, line, reason, detail (CSV or JSON lines), in input order; written atomically."""
    import pandas as pd

    from analyze.atomic import replacing

    rows = [(*where.rsplit(":", 1), reason, detail) for where, reason, detail in skips.records]
    frame = pd.DataFrame(rows, columns=["file", "line", "reason", "detail"]).astype({"line": "int64"})
    with replacing(path) as tmp:
        if path.suffix == ".jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(tmp, index=False)


def write_lengths(tokenized, path: Path) -> None:
    """One row per analysed record: file, line, tokens, supervised_tokens."""
    t = tokenized.table
    write_rows(path, tokenized.paths, t.file_index, t.line, {"tokens": t.tokens, "supervised_tokens": t.supervised})


def write_pair_lengths(pairs, path: Path) -> None:
    """One row per analysed preference pair: file, line, prompt_tokens, chosen_tokens, rejected_tokens."""
    from analyze.preference import PARTS

    t = pairs.table
    write_rows(path, pairs.paths, t.file_index, t.line, {f"{p}_tokens": getattr(t, p) for p in PARTS})


def write_rows(path: Path, paths: list, file_index, line, columns: dict) -> None:
    """Per-record rows (file, line, then `columns`) as CSV or parquet by `path`'s suffix, written atomically."""
    import pandas as pd

    from analyze.atomic import replacing

    names = [str(p) for p in paths]
    files = pd.Categorical.from_codes(file_index, categories=names) if names else []
    frame = pd.DataFrame({"file": files, "line": line, **columns})
    with replacing(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
