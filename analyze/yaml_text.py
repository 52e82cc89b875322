"""YAML in and out, in one place: one reader (a bad file is named with its line), one writer (comments and key
order kept, each comment on its key's line). Every YAML file the tools write — the default config, an edited
config, a run's resolved config, the next run's config — goes through `dump`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from analyze.errors import UserError

WIDTH = 4096  # never fold a line: a comment stays on its key's line, a long value on one line


def read_yaml(path: Path) -> dict:
    """The mapping in a YAML file ({} when empty); a one-line `UserError` naming file:line when it does not parse."""
    from ruamel.yaml import YAML, YAMLError

    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as e:
        mark, what = _where(e)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{at}: not valid YAML ({what}); fix the file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the config must be a YAML mapping of keys to values")
    return data


def _where(e: Exception) -> tuple[Any, str]:
    """The mark of the line to fix, and what is wrong there. The parser stops where it noticed the problem, which
    for a token left open (a key without its colon, a quote or bracket never closed) is the line after the typo;
    the token's start is the error's context mark then.

    >>> from ruamel.yaml import YAML, YAMLError
    >>> try:
    ...     YAML(typ="safe").load("model: x\\nmax_length 512\\nlora:\\n  r: 16\\n")
    ... except YAMLError as e:
    ...     mark, what = _where(e)
    >>> mark.line + 1, what
    (2, "while scanning a simple key: could not find expected ':'")
    """
    context, problem = getattr(e, "context", None), getattr(e, "problem", None)
    if problem is None:  # not a marked YAML error (e.g. invalid UTF-8): its own first line
        return None, str(e).splitlines()[0]
    left_open = context is not None and context.startswith(("while scanning", "while parsing a flow"))
    mark = getattr(e, "context_mark", None) if left_open else None
    return mark or getattr(e, "problem_mark", None), f"{context}: {problem}" if context else problem


def parse_yaml(text: str) -> Any:
    """Plain values from YAML text (safe loading): a whole file's text, or a command-line value such as `32`,
    `3e-4`, `null` or `[a, b]`.

    >>> parse_yaml("3e-4"), parse_yaml("null"), parse_yaml("[a, b]")
    (0.0003, None, ['a', 'b'])
    """
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(text)


def load_round_trip(text: str):
    """A YAML document that keeps its comments and key order when dumped again (an empty mapping for no text)."""
    from ruamel.yaml.comments import CommentedMap

    return (_round_trip().load(text) if text.strip() else None) or CommentedMap()


def commented(values: dict, comment: Callable[[str], str | None], is_section: Callable[[str], bool]):
    """`values` as a document with `comment(dotted key)` at the end of each key's line (none when it gives None);
    `is_section(dotted key)` says which mappings are sections to descend into (others are values).

    >>> print(dump(commented({"a": 1, "s": {"b": 2}}, {"a": "one", "s.b": "two"}.get, lambda k: k == "s")), end="")
    a: 1  # one
    s:
      b: 2  # two
    """
    from ruamel.yaml.comments import CommentedMap

    def build(d: dict, prefix: str) -> CommentedMap:
        m = CommentedMap()
        for k, v in d.items():
            dotted = prefix + k
            m[k] = build(v, dotted + ".") if isinstance(v, dict) and is_section(dotted) else v
            text = comment(dotted)
            if text:
                m.yaml_add_eol_comment(text, k)
        return m

    return build(values, "")


def dump(doc: Any, start_comment: str | None = None) -> str:
    """The YAML text of a document (from `load_round_trip` or `commented`), optionally under a comment."""
    import io

    if start_comment:
        doc.yaml_set_start_comment(start_comment)
    out = io.StringIO()
    _round_trip().dump(doc, out)
    return out.getvalue()


def _round_trip():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip mode keeps comments and order
    yaml.preserve_quotes = True
    yaml.width = WIDTH
    return yaml
