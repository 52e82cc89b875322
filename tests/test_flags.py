"""One command-line grammar for `lengthscan` and `train` (analyze/flags.py): every config key and alias in both,
one-line errors, the old abbreviations with a note, and every flag a message names accepted by who prints it."""

import ast
import re
from pathlib import Path

import pytest

from analyze.cli import BEFORE as LENGTHSCAN_BEFORE
from analyze.cli import build_parser as lengthscan_parser
from analyze.cli import main as lengthscan
from analyze.config import DEFAULTS, config_keys
from analyze.errors import UserError
from analyze.flags import ALIASES, config_values
from train.cli import BEFORE as TRAIN_BEFORE
from train.cli import build_parser as train_parser
from train.cli import main as train

REPO = Path(__file__).resolve().parents[1]
PARSERS = {"lengthscan": lengthscan_parser(), "train": train_parser()}
FLAG = re.compile(r"(?<![\w-])--[a-z][\w.-]*\w")


def test_both_commands_take_every_config_key_and_alias_the_same_way():
    for parser in PARSERS.values():
        for key in config_keys():
            assert parser.accepts(f"--{key}") and parser.accepts(f"--{key.replace('_', '-')}"), key
        args = parser.parse_args(["--lora.r", "32", "--micro-batch-size", "2", "--max_length=300", "--gpu", "12"])
        assert config_values(args) == {
            "lora.r": (32, "--lora.r"),
            "optim.micro_batch_size": (2, "--micro-batch-size"),
            "max_length": (300, "--max_length"),
            "gpu": (12.0, "--gpu"),
        }
        for alias, key in ALIASES.items():
            for spelling in (f"--{alias}", f"--{alias.replace('-', '_')}"):
                value = "null" if DEFAULTS[key] is None else str(DEFAULTS[key])
                assert list(config_values(parser.parse_args([spelling, value]))) == [key], spelling


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lora.rank", "32"], "unknown option --lora.rank; did you mean --lora.r?"),
        (["--micro-bach-size", "2"], "unknown option --micro-bach-size; did you mean --micro-batch-size?"),
        (["--lora.dropout", "1"], "--lora.dropout 1: lora.dropout is 1.0; it must be ≥ 0 and < 1"),
        (["--overlong", "trunc"], "(nearest: 'truncate')"),
        (["--max-length", "0"], "--max-length 0: max_length is 0; it must be ≥ 1 (nearest valid value: 1)"),
        (["--run.memory_check", "maybe"], "expected bool (e.g. --run.memory_check true, the default)"),
    ],
)
def test_errors_are_one_line_naming_the_flag_in_both_commands(capsys, argv, message):
    for name, command in (("lengthscan", lengthscan), ("train", train)):
        assert command(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{name}: error: ") and message in err and len(err.splitlines()) == 1, err


def test_each_commands_own_flags_stay_and_a_flag_of_the_other_is_unknown(capsys):
    for flag in ("--json", "--write-config", "--sample", "--lengths-out", "--skipped-out", "--plot", "--strict"):
        assert PARSERS["lengthscan"].accepts(flag)
    for flag in ("--smoke", "--auto-maxlen", "--dry-run", "--resume", "--config", "--json"):
        assert PARSERS["train"].accepts(flag)
    assert train(["--write-config"]) == 2
    assert "unknown option --write-config" in capsys.readouterr().err


def test_old_abbreviations_work_for_a_release_with_a_note(capsys):
    args = PARSERS["lengthscan"].parse_args(["data.jsonl", "--pol", "supervised", "--write=run.yaml", "--js"])
    assert (config_values(args), args.write_config, args.json) == (
        {"suggest.policy": ("supervised", "--policy")}, "run.yaml", True
    )  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "lengthscan: note: --pol is now --policy; --pol goes in the next release",
        "lengthscan: note: --write is now --write-config; --write goes in the next release",
        "lengthscan: note: --js is now --json; --js goes in the next release",
    ]
    args = PARSERS["train"].parse_args(["--dry", "--auto", "plot", "runs/x", "--o", "f.png"])
    assert (args.dry_run, args.auto_maxlen, args.command, args.run_dir, args.out) == (
        True, True, "plot", "runs/x", "f.png"
    )  # fmt: skip
    assert "train plot: note: --o is now --out" in capsys.readouterr().err
    with pytest.raises(UserError, match="unknown option --ma; did you mean"):  # ambiguous then, unknown now
        PARSERS["lengthscan"].parse_args(["--ma", "3"])
    for name, before in (("lengthscan", LENGTHSCAN_BEFORE), ("train", TRAIN_BEFORE)):
        assert all(PARSERS[name].accepts(flag) for flag in before)  # every old spelling is still a flag


def test_train_subcommands_through_argparse():
    parse = PARSERS["train"].parse_args
    assert (parse(["watch", "runs/x", "--json"]).command, parse(["watch", "runs/x", "--json"]).json) == ("watch", True)
    assert parse(["plot", "runs/x"]).out is None
    args = parse(["--output-dir", "plot", "--run.max_steps", "-1"])  # a value that is a subcommand's name, a negative
    assert args.command is None and config_values(args)["run.output_dir"] == ("plot", "--output-dir")
    assert config_values(args)["run.max_steps"] == (-1, "--run.max_steps")
    with pytest.raises(UserError, match="unknown option --jsn; did you mean --json"):
        parse(["watch", "runs/x", "--jsn"])


def _messages():
    """(file, flag, literal) for every `--flag` in a string literal of analyze/ and train/ (docstrings left out)."""
    for path in sorted([*(REPO / "analyze").rglob("*.py"), *(REPO / "train").rglob("*.py")]):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        }  # fmt: skip
        in_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):  # an f-string: its text with {} for each value
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in in_fstrings:
                text = node.value
            else:
                continue
            if id(node) not in docstrings:
                for flag in FLAG.findall(text):
                    yield path.relative_to(REPO), flag, text


# Modules of analyze/ whose messages only `lengthscan` prints (its own options); the rest `train` prints too.
LENGTHSCAN_ONLY = {"analyze/cli.py", "analyze/plot.py", "analyze/report.py", "analyze/sample.py"}
NOT_OURS = {
    "--multi_gpu": "accelerate launch's flag (train/launch.py prints an accelerate command)",
    "--num_processes": "accelerate launch's flag",
    "--max": "a prefix that run.py matches provenance against, not a message",
    "--section.key": "the grammar's placeholder in train's --help",
}
KNOWN = {  # messages to reword, with why they are allowed until then
    "(--strict stops at the first bad record": "printed only under --strict, which only lengthscan has",
}


def test_every_flag_a_message_names_is_accepted_by_the_commands_that_print_it():
    checked = 0
    for path, flag, text in _messages():
        if flag in NOT_OURS or any(phrase in text for phrase in KNOWN):
            continue
        named = {name for name in PARSERS if re.search(rf"(?<![\w.-]){name}(?![\w.-])", text)}
        if flag[2:].replace("-", "_") in config_keys() or flag[2:] in ALIASES:
            owners = set(PARSERS)  # a config flag: both commands take it, whoever prints it
        elif named:  # `lengthscan DATA --skipped-out FILE` in a message of train's: the command it names
            assert any(PARSERS[name].accepts(flag) for name in named), f"{path}: {flag} in {text!r}"
            owners = set()
        elif str(path) in LENGTHSCAN_ONLY:
            owners = {"lengthscan"}
        else:
            owners = {"train"} if path.parts[0] == "train" else set(PARSERS)
        for name in owners:
            assert PARSERS[name].accepts(flag), f"{path}: {flag} is not a `{name}` flag: {text!r}"
        checked += 1
    assert checked > 80  # the walk found the messages
