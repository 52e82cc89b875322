"""The histogram notebook: committed without outputs, and runs headless top to bottom on the bundled sample."""

import base64
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, SAMPLE

NOTEBOOK = REPO / "notebooks" / "length_histogram.ipynb"
FIGURES = 4  # histogram, CDF, padding waste, supervised against total


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_committed_notebook_has_no_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    dirty = [c["id"] for c in code_cells(nb) if c["outputs"] or c["execution_count"] is not None]
    assert not dirty, f"{NOTEBOOK.name}: cells {dirty} hold outputs; run `python notebooks/strip_outputs.py`"


@pytest.mark.parametrize("cwd", [REPO / "notebooks", REPO])
def test_settings_cell_defaults_to_the_bundled_sample(cwd, monkeypatch):
    """The first code cell alone: it finds the sample whether Jupyter runs in notebooks/ or the repository root."""
    settings = "".join(code_cells(json.loads(NOTEBOOK.read_text(encoding="utf-8")))[0]["source"])
    monkeypatch.chdir(cwd)
    names: dict = {}
    exec(settings, names)
    assert [Path(p).resolve() for p in names["DATA_FILES"]] == [SAMPLE]
    # None: the config's value (or the config's default), so a notebook setting never restates a default
    assert (names["TOKENIZER"], names["MAX_LENGTH"], names["CONFIG"], names["SPLIT"], names["SAMPLE"]) == (None,) * 5


@pytest.mark.parametrize(
    ("given", "files"),
    [
        (["a.jsonl", "b.jsonl"], ["a.jsonl", "b.jsonl"]),  # a list, as in Python or papermill's -y
        ("mine.jsonl", ["mine.jsonl"]),  # -p DATA_FILES mine.jsonl: one path
        ("HuggingFaceH4/no_robots", ["HuggingFaceH4/no_robots"]),  # one dataset id
        ('["a.jsonl","b.jsonl"]', ["a.jsonl", "b.jsonl"]),  # -p DATA_FILES '["a.jsonl","b.jsonl"]': JSON as text
        ("[a.jsonl, data/*.jsonl]", ["a.jsonl", "data/*.jsonl"]),  # a YAML list as text
        ("[ab]*.jsonl", ["[ab]*.jsonl"]),  # a glob, not a list
        (Path("mine.jsonl"), [Path("mine.jsonl")]),
    ],
)
def test_data_files_become_a_list_however_given(given, files):
    """The second code cell, run right after papermill's parameters, turns DATA_FILES into the list analyze_files
    takes; a string used to be read as a list of its characters."""
    first, setup = ("".join(c["source"]) for c in code_cells(json.loads(NOTEBOOK.read_text(encoding="utf-8")))[:2])
    names: dict = {}
    exec(first, names)
    names["DATA_FILES"] = given
    exec(setup, names)  # lengthscan is installed here, so the cell installs nothing
    assert names["DATA_FILES"] == files


def test_papermill_lists_the_settings_of_the_parameters_cell():
    """`papermill --help-notebook` reads every line of the parameters cell as a setting: it holds settings only."""
    papermill = pytest.importorskip("papermill")
    assert list(papermill.inspect_notebook(str(NOTEBOOK))) == [
        "SAMPLE_FILE", "DATA_FILES", "SPLIT", "TOKENIZER", "MAX_LENGTH", "SAMPLE", "CONFIG",
    ]  # fmt: skip


def test_the_parameters_cell_is_tagged_for_papermill():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    tagged = [c for c in code_cells(nb) if "parameters" in c["metadata"].get("tags", [])]
    assert tagged == [code_cells(nb)[0]]
    colab = "".join(nb["cells"][0]["source"]).split("**Colab / Kaggle:**")[1].split("\n\n")[0]
    assert "<" not in colab and "install" in colab  # no placeholder: the notebook installs from its own checkout


@pytest.fixture(scope="module")
def executed():
    """The notebook run by a real Jupyter kernel, as `Run all` would, from notebooks/ (Jupyter's working folder)."""
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat, nbclient and ipykernel")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbformat, nbclient and ipykernel")
    pytest.importorskip("matplotlib")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no 'python3' Jupyter kernel: pip install ipykernel (python -m ipykernel install --sys-prefix)")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend is what turns figures into outputs
        client = nbclient.NotebookClient(
            nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
        )
        client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails
    return nb


@pytest.mark.notebook
def test_notebook_runs_and_draws_its_figures(executed):
    pngs = [
        base64.b64decode(out["data"]["image/png"])
        for cell in code_cells(executed)
        for out in cell["outputs"]
        if "image/png" in out.get("data", {})
    ]
    assert len(pngs) == FIGURES
    for png in pngs:
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert not [o for c in code_cells(executed) for o in c["outputs"] if o["output_type"] == "error"]
    report = "".join(
        out.get("text", "") + out.get("data", {}).get("text/plain", "")
        for cell in code_cells(executed)
        for out in cell["outputs"]
    )
    assert "2,354 analysed" in report and "suggested max_length" in report  # the analyzer's report on the sample


@pytest.mark.notebook
def test_strip_script_gives_back_the_committed_notebook(executed, tmp_path):
    import nbformat

    ran = tmp_path / NOTEBOOK.name
    nbformat.write(executed, ran)
    subprocess.run([sys.executable, str(REPO / "notebooks" / "strip_outputs.py"), str(ran)], check=True)
    assert ran.read_text(encoding="utf-8") == NOTEBOOK.read_text(encoding="utf-8")


@pytest.mark.notebook
def test_papermill_runs_it_headless_on_your_file_and_on_a_dataset(tmp_path):
    """What docs/plots.md shows: parameters on the command line, on a file of one's own and on a Hugging Face
    dataset (a folder laid out like a hub dataset repository: the code path of a hub id)."""
    papermill = pytest.importorskip("papermill")
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [json.loads(line) for line in SAMPLE.read_text().splitlines()[:300]]
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps(r) + "\n" for r in records[:200]))
    repo = tmp_path / "dataset"
    (repo / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(records), repo / "data" / "train-00000-of-00001.parquet")
    (repo / "README.md").write_text("---\nlicense: mit\n---\n")
    for params, analysed in (
        ({"DATA_FILES": [str(mine)], "MAX_LENGTH": 256}, "200 analysed"),
        ({"DATA_FILES": [str(repo)], "SPLIT": "train", "SAMPLE": 100}, "100 analysed"),
    ):
        out = tmp_path / "out.ipynb"
        papermill.execute_notebook(
            str(NOTEBOOK),
            str(out),
            parameters=params,
            cwd=str(NOTEBOOK.parent),
            progress_bar=False,
            kernel_name="python3",
        )
        text = out.read_text(encoding="utf-8")
        assert analysed in text and "image/png" in text


@pytest.mark.notebook
@pytest.mark.parametrize(
    ("options", "analysed"),
    [
        ('-p DATA_FILES \'["a.jsonl","b.jsonl"]\'', "70 analysed"),  # a JSON list as text: both files
        ("-p DATA_FILES a.jsonl", "40 analysed"),  # one path
        ("-y 'DATA_FILES: [b.jsonl]'", "30 analysed"),  # YAML: a list already
    ],
)
def test_papermill_from_the_shell_takes_a_list_or_one_path(options, analysed, tmp_path):
    """`papermill … -p DATA_FILES …` typed in a shell, as docs/plots.md shows it: -p passes text, -y YAML."""
    pytest.importorskip("papermill")
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text("".join(lines[:40]), encoding="utf-8")
    (tmp_path / "b.jsonl").write_text("".join(lines[40:70]), encoding="utf-8")
    command = f"{shlex.quote(sys.executable)} -m papermill {shlex.quote(str(NOTEBOOK))} out.ipynb {options}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        command + " -p MAX_LENGTH 256 --no-progress-bar", shell=True, cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "out.ipynb").read_text(encoding="utf-8")
    assert analysed in text and "image/png" in text and "at max_length 256" in text
