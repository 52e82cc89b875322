"""docs/layout.md's promises about the code itself: no import cycle, a schema and a GPU table that import nothing of
the project, and `analyze` (with the model facts) importable without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("analyze", "train")
LEAVES = ("analyze.schema", "analyze.gpus")
# train's modules that train: they import torch (or a module that does) by design
TORCH_MODULES = {"auto_maxlen", "callbacks", "collate", "data", "fit", "gpu_memory", "loss", "model", "prepare", "rows",
                 "run", "trainer", "trainer_setup", "plateau.watch", "plateau.callback"}  # fmt: skip


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports, at the top or inside functions (`from analyze import x` counts as the
    module `analyze.x` when there is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m in modules}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_anywhere():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    graph = {
        name: {m for m in deps if not name.startswith(m + ".") and m not in PACKAGES} for name, deps in graph.items()
    }
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_the_schema_and_the_gpu_table_import_nothing_of_the_project():
    modules = _modules()
    for leaf in LEAVES:
        assert not _imports(modules[leaf], modules), leaf


def test_the_gpu_help_names_every_gpu():
    """The schema cannot import the GPU table, so its help text lists the names: all of them."""
    from analyze.config import field_meta
    from analyze.gpus import GPUS

    help_text = field_meta("gpu")["help"]
    assert all(name in help_text for name in GPUS), help_text


def test_analyze_and_the_planning_half_of_train_import_no_torch():
    """Everything `lengthscan` runs, the model facts and train's planning modules import without torch: the fast
    tier's subjects do not need it (loading a tokenizer does, inside transformers 5, not here)."""
    names = sorted(
        n for n in _modules() if not n.endswith("__main__") and n.removeprefix("train.") not in TORCH_MODULES
    )
    code = f"import sys\nfor m in {names!r}:\n    __import__(m)\n    assert 'torch' not in sys.modules, m"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_every_name_the_docs_give_in_the_code_exists():
    """`analyze.x.y` and `train.x.y` in README.md and docs/ name a module and, after it, an attribute that exist."""
    import importlib
    import re

    names = set()
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        names |= set(re.findall(r"`((?:analyze|train)(?:\.\w+)+)", doc.read_text(encoding="utf-8")))
    assert len(names) > 5
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ImportError:
                continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        if obj is None:
            missing.append(name)
    assert not missing, missing


def test_the_layout_page_names_every_module():
    """docs/layout.md stays true: each module of analyze/ and train/ is in it by its file name."""
    text = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(REPO)) for name, p in _modules().items()
               if p.name not in ("__init__.py", "__main__.py") and f"`{p.name}`" not in text]  # fmt: skip
    assert not missing, missing
