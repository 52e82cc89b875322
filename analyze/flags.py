"""The command-line grammar of `lengthscan` and `train`, built from the config schema in one place.

Both commands take every config key as `--section.key VALUE` (`--lora.r 32`, `--optim.learning_rate=3e-4`; top-level
keys as `--max_length 1024`, `--model ID`) and the same short aliases (`ALIASES`: `--max-length`,
`--micro-batch-size`, `--device` …). In every flag dashes and underscores are the same (`--optim.learning-rate`).
Values are YAML scalars (`32`, `3e-4`, `true`, `null`); a list key also takes `a,b`; a true/false key's flag alone
means true (`--fix-roles` is `--fix-roles true`). Each value is typed and checked
as the config checks it, and a bad one is one line naming the flag and the nearest valid value:

>>> parse_config_flags(["--lora.r", "32", "--micro-batch-size=2", "--data.train", "a.jsonl,b.jsonl"])
{'lora.r': (32, '--lora.r'), 'optim.micro_batch_size': (2, '--micro-batch-size'), \
'data.train': (['a.jsonl', 'b.jsonl'], '--data.train')}
>>> parse_config_flags(["--fix-roles", "--run.memory_check", "false"])
{'data.fix_roles': (True, '--fix-roles'), 'run.memory_check': (False, '--run.memory_check')}
>>> parse_config_flags(["--lora.dropout", "1.5"])
Traceback (most recent call last):
analyze.errors.UserError: --lora.dropout 1.5: lora.dropout is 1.5; it must be ≥ 0 and < 1 (e.g. 0.05, the default)
>>> parse_config_flags(["--lora.rank", "32"])
Traceback (most recent call last):
analyze.errors.UserError: unknown option --lora.rank; did you mean --lora.r?

An unknown flag is one line with the nearest valid one (exit 2, as argparse), and so is every other parse error.
A unique abbreviation that a command accepted before this grammar (argparse's prefixes: `--write` for
`--write-config`) still works for one release, with a one-line note on stderr.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any

from analyze.config import DEFAULTS, config_keys, field_meta, is_section, nearest, with_values
from analyze.errors import UserError
from analyze.schema import Config

# Short flags for config keys, accepted by both commands: what `lengthscan` (all but the last three) and `train`
# (the last three) accepted before issue 23, and `--fix-roles` (issue 25: the fix a skip names). Top-level keys need
# none (`--model`, `--tokenizer`, `--gpu` are keys).
ALIASES = {
    "max-length": "max_length",
    "chat-template": "chat_template",
    "format": "data.format",
    "split": "data.split",
    "subset": "data.subset",
    "max-skip": "data.max_skip",
    "fix-roles": "data.fix_roles",
    "policy": "suggest.policy",
    "target": "suggest.target",
    "round-to": "suggest.round_to",
    "micro-batch-size": "optim.micro_batch_size",
    "grad-accum-steps": "optim.grad_accum_steps",
    "device": "run.device",
    "output-dir": "run.output_dir",
    "max-steps": "run.max_steps",
}
CONFIG_DEST = "config_values"  # the Namespace attribute holding {key: (value, flag)}


def _norm(flag: str) -> str:
    """A flag's name with dashes and underscores the same: `--max-length` and `--max_length` are one flag."""
    return "--" + flag[2:].replace("-", "_") if flag.startswith("--") else flag


class Parser(argparse.ArgumentParser):
    """argparse with the grammar's rules: dashes = underscores, unknown flags and every other parse error as one
    line (a `UserError`: the command prints it and exits 2), old abbreviations with a note for one release.

    `before`: the flags this command (or subcommand) accepted before the one grammar; their unique prefixes were
    accepted then (argparse's abbreviations) and still are, with a note.
    """

    def __init__(self, *args, before: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self.before = before
        self.commands: argparse._SubParsersAction | None = None

    def add_subparsers(self, **kwargs):
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def error(self, message: str):
        raise UserError(message)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self.spelled(args), namespace)

    def flags(self) -> dict[str, str]:
        """Every flag this parser takes, by its name with dashes as underscores → the spelling it is registered as."""
        return {_norm(s): s for s in self._option_string_actions if s.startswith("--")}  # argparse's own index

    def accepts(self, flag: str) -> bool:
        """Whether `flag` is this parser's (or, with subcommands, one of theirs), in any dash/underscore spelling."""
        subs = self.commands.choices.values() if self.commands else ()
        return _norm(flag) in self.flags() or any(p.accepts(flag) for p in subs)

    def spelled(self, args: list[str]) -> list[str]:
        """`args` with each flag in its registered spelling; the tokens after a subcommand are left to it.

        An old abbreviation is replaced (and noted on stderr); an unknown flag is a `UserError` with the nearest.
        """
        flags, out, value_next = self.flags(), [], False
        subcommands = self.commands.choices if self.commands else {}
        for i, tok in enumerate(args):
            if tok == "--" or (not value_next and tok in subcommands):
                return out + args[i:]
            if not tok.startswith("--") or value_next:
                out.append(tok)
                value_next = False
                continue
            name, eq, value = tok.partition("=")
            flag = name if name in self._option_string_actions else flags.get(_norm(name))
            flag = flag or self._abbreviated(name, flags)
            out.append(flag + eq + value)
            value_next = not eq and self._option_string_actions[flag].nargs is None  # takes exactly one value
        return out

    def _abbreviated(self, name: str, flags: dict[str, str]) -> str:
        old = [f for f in self.before if f.startswith(name)]
        if len(old) == 1 and _norm(old[0]) in flags:
            new = flags[_norm(old[0])]
            print(f"{self.prog}: note: {name} is now {new}; {name} goes in the next release", file=sys.stderr)
            return new
        close = nearest(_norm(name[2:]), [n[2:] for n in flags])
        hint = f"did you mean {flags['--' + close]}?" if close else f"see `{self.prog} --help`"
        raise UserError(f"unknown option {name}; {hint}")


class _ConfigFlag(argparse.Action):
    """Stores `--key VALUE` as {key: (typed value, flag)} in `CONFIG_DEST`; the last of a key's flags wins."""

    def __init__(self, option_strings, dest, key: str, **kwargs):
        super().__init__(option_strings, CONFIG_DEST, **kwargs)
        self.key = key

    def __call__(self, parser, namespace, values, option_string=None):
        given = dict(getattr(namespace, CONFIG_DEST) or {})  # a copy: the default is shared between parses
        given[self.key] = (parse_value(self.key, values, option_string), option_string)
        setattr(namespace, CONFIG_DEST, given)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config key, `--section.key` and its aliases, in a group per section, help from the schema."""
    aliases: dict[str, list[str]] = {}
    for alias, key in ALIASES.items():
        aliases.setdefault(key, []).append("--" + alias)
    groups: dict[str, argparse._ArgumentGroup] = {}
    parser.set_defaults(**{CONFIG_DEST: None})
    for key, hint in config_keys().items():
        section = key.rpartition(".")[0]
        if section not in groups:
            title = f"config: {section}" if section else "config"
            about = field_meta(section)["help"] if is_section(section) else "top-level keys of the config file"
            groups[section] = parser.add_argument_group(title, about.replace("%", "%%"))
        meta = field_meta(key)
        switch = {"nargs": "?", "const": "true"} if hint is bool else {}  # `--fix-roles` alone means true
        groups[section].add_argument(
            f"--{key}",
            *aliases.get(key, []),
            action=_ConfigFlag,
            key=key,
            metavar=_metavar(hint, meta["choices"]),
            help=meta["help"].replace("%", "%%"),
            **switch,
        )


def config_values(args: argparse.Namespace) -> dict[str, tuple[Any, str]]:
    """The config keys set on the command line: {key: (value, the flag that set it)}, in the order given."""
    return dict(getattr(args, CONFIG_DEST, None) or {})


def parse_config_flags(tokens: list[str], prog: str = "flags") -> dict[str, tuple[Any, str]]:
    """`config_values` of `--key VALUE` tokens alone (no command's own flags)."""
    parser = Parser(prog=prog)
    add_config_flags(parser)
    return config_values(parser.parse_args(tokens))


def parse_value(key: str, raw: str, flag: str | None = None) -> Any:
    """The value of `flag RAW` for config key `key`: a YAML scalar, typed and checked as the config checks it.

    >>> parse_value("tokenizer", "null"), parse_value("model", "123"), parse_value("gpu", "12")
    (None, '123', 12.0)
    >>> parse_value("overlong", "trunc", "--overlong")
    Traceback (most recent call last):
    analyze.errors.UserError: --overlong trunc: overlong is 'trunc'; choose one of cut_turns, truncate, drop \
(nearest: 'truncate')
    >>> parse_value("lora.r", "many", "--lora.r")
    Traceback (most recent call last):
    analyze.errors.UserError: --lora.r many: 'lora.r' is 'many'; expected int (e.g. --lora.r 16, the default)
    """
    flag = flag or f"--{key}"
    value = _yaml_value(raw, config_keys()[key])
    try:
        cfg = with_values(Config(), {key: value}, where=f"{flag} {raw}")
    except UserError as e:
        default = DEFAULTS.get(key)
        if "nearest" in str(e) or "e.g." in str(e) or not isinstance(default, (bool, int, float, str)):
            raise
        shown = str(default).lower() if isinstance(default, bool) else default
        alone = f"; {flag} alone means true (put FILES before it)" if isinstance(default, bool) else ""
        raise UserError(f"{e} (e.g. {flag} {shown}, the default){alone}") from None
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _yaml_value(raw: str, hint: Any) -> Any:
    """`raw` read as YAML, kept as text where the key wants text (`--model 123`); `a,b` split for a list key."""
    from ruamel.yaml import YAMLError

    from analyze.yaml_text import parse_yaml

    try:
        value = parse_yaml(raw)
    except YAMLError:  # not YAML (`--model a: b`): the text itself
        value = raw
    if value is None and raw.strip() not in ("null", "~", ""):
        value = raw
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    wants_list = any((typing.get_origin(t) or t) is list for t in allowed)
    wants_str = str in allowed
    if isinstance(value, (int, float)) and not isinstance(value, bool) and wants_str and int not in allowed:
        value = raw  # e.g. --model 123 stays a name
    if wants_list and isinstance(value, str) and ("," in value or not wants_str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    return value


def _metavar(hint: Any, choices: tuple | None) -> str:
    if choices:
        return "{" + ",".join(map(str, choices)) + "}"
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    names = {typing.get_origin(t) or t for t in allowed} - {type(None)}
    for t, metavar in ((list, "A,B"), (bool, "true|false"), (int, "N"), (float, "X")):
        if t in names and (t is not float or str not in names):
            return metavar
    return "VALUE"
