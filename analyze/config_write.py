"""Write a max_length into the user's YAML config in place: comments, key order and other values kept, atomically.

The file is replaced in one `os.replace`, so a reader (or a crash) sees the old file or the new one, never half.
A config that does not parse or has unknown keys is left untouched.
"""

from __future__ import annotations

import io
from pathlib import Path

from analyze.atomic import atomic_write
from analyze.config import default_yaml, from_dict, read_yaml
from analyze.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent


def write_max_length(path: str | Path, max_length: int, source: dict) -> bool:
    """Set the top-level `max_length` (and `max_length_source`) of the config at `path`; create it if missing.

    Returns True when the file was created from the defaults.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    path = Path(path)
    if PACKAGE_DIR in path.resolve().parents:
        raise UserError(f"{path}: refusing to edit a file inside the installed package; write to your own config")
    created = not path.exists()
    text = default_yaml() if created else path.read_text(encoding="utf-8")
    if not created:
        from_dict(read_yaml(path), where=str(path))  # unknown keys or bad values: stop before touching the file
    yaml = YAML()  # round-trip mode keeps comments and order
    yaml.preserve_quotes = True
    yaml.width = 4096
    doc = yaml.load(text) if text.strip() else CommentedMap()
    if doc is None:
        doc = CommentedMap()
    if "max_length" in doc:
        doc["max_length"] = max_length
    else:
        keys = list(doc)
        after = [k for k in ("chat_template", "tokenizer", "model") if k in keys]
        doc.insert(keys.index(after[0]) + 1 if after else 0, "max_length", max_length)
    entry = CommentedMap(source)
    if "max_length_source" in doc:
        doc["max_length_source"] = entry
    else:
        doc.insert(list(doc).index("max_length") + 1, "max_length_source", entry)
    out = io.StringIO()
    yaml.dump(doc, out)
    atomic_write(path, out.getvalue())
    return created
