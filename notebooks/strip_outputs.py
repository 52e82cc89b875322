"""Strip outputs and execution counts from notebooks before committing: `python notebooks/strip_outputs.py [FILE…]`.

Without arguments it strips every .ipynb beside this script. tests/test_notebook.py fails on a committed output.
"""

import sys
from pathlib import Path

import nbformat


def strip(path: Path) -> bool:
    """Clear outputs, execution counts and per-run metadata in place; True when the file changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nb.metadata.get("language_info", {}).pop("version", None)  # the Python version of whoever ran it last
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after + "\n", encoding="utf-8")
    return after != before


if __name__ == "__main__":
    paths = [Path(a) for a in sys.argv[1:]] or sorted(Path(__file__).parent.glob("*.ipynb"))
    for p in paths:
        print(f"{p}: {'stripped' if strip(p) else 'already clean'}")
