"""`train`: the command-line layer over `train.run.run` — parse, resolve the config, call, report errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from analyze import __version__
from analyze.errors import UserError, run_command
from analyze.flags import Parser, add_config_flags, config_values
from analyze.schema import DEFAULT_CONFIG_NAME, SMOKE_DIR_SUFFIX
from train.outputs import FIGURE, LOG_CSV

# What `train` (and its subcommands) accepted before the one grammar (analyze/flags.py) as argparse options: their
# unique prefixes still work for a release. Config keys were never abbreviated.
BEFORE = ("--help", "--config", "--auto-maxlen", "--smoke", "--dry-run", "--json", "--resume", "--version")
BEFORE_PLOT = ("--help", "--out")
BEFORE_WATCH = ("--help", "--json")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="train",
        before=BEFORE,
        usage="%(prog)s [options] | %(prog)s watch PATH [--json] | %(prog)s plot RUN_DIR [--out FILE.png]",
        description="Packed-sequence QLoRA fine-tuning of a chat model on JSONL data, sized for a 16 GB T4.",
        epilog="Every config value is a flag, --section.key VALUE or --section.key=VALUE (the same as lengthscan's; "
        "dashes and underscores are the same). Multi-GPU: accelerate launch -m train --config ….",
    )
    p.add_argument(
        "--config",
        metavar="PATH",
        help=f"YAML config (as `lengthscan --write-config` writes; default ./{DEFAULT_CONFIG_NAME} if present)",
    )
    p.add_argument(
        "--auto-maxlen",
        action="store_true",
        help="analyse the data with the model's tokenizer, set max_length as lengthscan suggests, write it back",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny random model of the configured architecture on the CPU, a few steps: check data and config "
        f"(writes into run.output_dir + '{SMOKE_DIR_SUFFIX}' unless --output-dir is given)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check config, tokenizer and data, plan rows and schedule and print them; no model, no training",
    )
    p.add_argument("--json", action="store_true", help="with --dry-run: print one JSON document on stdout")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in run.output_dir")
    p.add_argument("--version", action="version", version=f"train {__version__}")
    add_config_flags(p)
    commands = p.add_subparsers(
        prog="train", dest="command", title="subcommands (without one, train trains)", metavar="COMMAND"
    )
    watch = commands.add_parser(
        "watch",
        before=BEFORE_WATCH,
        help="the plateau watch's verdict at every evaluation of a run's log",
        description="Judge a run by the tuning guide: a train output folder, or any Trainer trainer_state.json.",
    )
    watch.add_argument(
        "path", help=f"a `train` output folder ({LOG_CSV}), a trainer_state.json, or a folder holding one"
    )
    watch.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    plot = commands.add_parser(
        "plot",
        before=BEFORE_PLOT,
        help="draw the loss curves of a run",
        description="Draw train and eval loss of a run, plateau shaded.",
    )
    plot.add_argument("run_dir", help=f"the run's output folder (run.output_dir), holding {LOG_CSV}")
    plot.add_argument("--out", metavar="FILE.png", help=f"where to write the figure (default RUN_DIR/{FIGURE})")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def body() -> int:
        args = build_parser().parse_args(argv)
        if args.command == "plot":
            return plot_command(args)
        if args.command == "watch":
            return watch_command(args)
        result = run_from_args(argv, args)
        if args.json:
            print(json.dumps(result.as_json(), indent=2))
        return 0

    return run_command("train", body, "the last checkpoint (if any) can be continued with --resume")


def plot_command(args: argparse.Namespace) -> int:
    """`train plot RUN_DIR [--out FILE.png]`: the loss curves of a finished (or running) run."""
    from train.loss_plot import plot_run

    print(f"train: wrote {plot_run(args.run_dir, args.out)}")
    return 0


def watch_command(args: argparse.Namespace) -> int:
    """`train watch PATH [--json]`: the plateau watch's verdict at every evaluation of a run's log."""
    from train.plateau.replay import load_log, watch_report

    doc = watch_report(load_log(args.path))
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"train watch: {doc['source']} (plateau window {doc['window_steps']} steps)")
    for e in doc["per_eval"]:
        print(f"  step {e['step']:>7}  {e['verdict']}")
    print(f"verdict at step {doc['step']}: {doc['verdict']}")
    for line in doc["evidence"]:
        print(f"  - {line}")
    if doc["note"]:
        print(f"no advice: {doc['note']}")
    if doc["values_lines"]:
        print("the levers start from (a foreign log holds only some of a run's values):")
        for line in doc["values_lines"]:
            print(f"  - {line}")
    for lv in doc["advice"]:
        change = ", ".join(f"{k}={v}" for k, v in lv["change"].items()) or "no config change"
        print(f"  {lv['number']}. {lv['title']}: {change}. {lv['why']}")
    return 0


def run_from_args(argv: list[str] | None = None, args: argparse.Namespace | None = None):
    """Parse (unless `args` is `argv` already parsed), resolve the config, print it, run; returns the `RunResult`
    (tests inspect the trained model)."""
    argv = sys.argv[1:] if argv is None else argv
    from analyze.config import config_path, rebase_paths
    from analyze.yaml_text import read_yaml
    from train.overrides import resolve

    args = build_parser().parse_args(argv) if args is None else args
    if args.command:
        raise UserError(f"`train {args.command}` does not train; run it as its own command")
    if args.json and not args.dry_run:
        raise UserError("--json goes with --dry-run (a training run reports in its output folder)")
    global _say_stream
    _say_stream = sys.stderr if args.json else sys.stdout  # stdout holds only the JSON document
    _quiet_libraries()
    cfg_file = config_path(args.config)
    # paths in a config file are relative to its folder; on the command line, to the current one
    file_values = rebase_paths(read_yaml(cfg_file), cfg_file.parent) if cfg_file else {}
    overrides = config_values(args)
    label = str(cfg_file) if cfg_file else "default"
    cfg, prov = resolve(file_values, label, overrides)
    if args.smoke:
        cfg, prov = resolve(file_values, label, overrides, _smoke_values(cfg, set(overrides)))
        _say(f"smoke: writing into {cfg.run.output_dir}, a folder of its own (replaced on the next --smoke)")
    if "max_length" in file_values and cfg.max_length_source and prov["max_length"] == label:
        prov["max_length"] = f"{label}, set by {cfg.max_length_source.get('set_by', '?')}: " + str(
            cfg.max_length_source.get("reason", "")
        )

    from train.overrides import describe
    from train.run import run

    _say(f"train {__version__}: resolved config (value, and where it came from)")
    for line in describe(cfg, prov):
        _say(line)
    return run(
        cfg, prov, cfg_file, smoke=args.smoke, auto_maxlen=args.auto_maxlen, resume=args.resume,
        dry_run=args.dry_run, say=_say, argv=argv,
    )  # fmt: skip


def _smoke_values(cfg, overridden: set[str]) -> dict:
    from train.smoke import SMOKE, SMOKE_MAX_LENGTH

    extra = {k: (v, "--smoke") for k, v in SMOKE.items() if k not in overridden}
    if "run.output_dir" not in overridden:  # never the real run's folder: it would block or be resumed by it
        smoke_dir = f"{Path(cfg.run.output_dir)}{SMOKE_DIR_SUFFIX}"  # Path drops a trailing slash: runs/x/ → x-smoke
        extra["run.output_dir"] = (smoke_dir, "--smoke (a folder of its own)")
    if "max_length" not in overridden and cfg.max_length > SMOKE_MAX_LENGTH:
        extra["max_length"] = (SMOKE_MAX_LENGTH, f"--smoke (capped for the CPU; was {cfg.max_length})")
    return extra


_say_stream = sys.stdout


def _say(line: str) -> None:
    if int(os.environ.get("RANK", 0)) == 0:
        print(line, file=_say_stream, flush=True)


def _quiet_libraries() -> None:
    """Library chatter that is not the user's business: progress bars of weight loading, deprecation notes."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*kernels.*")
    import logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
