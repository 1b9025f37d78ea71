"""The notebooks under docs/notebooks run from top to bottom in a fresh kernel, and are stored without outputs.

Each runs with ipykernel's `python3` kernel, which jupyter_client starts with the interpreter running
the tests (so the venv and its package; the test checks it), in a temporary folder, with a timeout.
NotebookClient raises on the first cell that fails. They are small on purpose: seconds each.
"""

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import tinygrad_attn

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "docs" / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == ["seed_walkthrough.ipynb", "tutorial.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: cell {i} has outputs stored"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_points_to_the_exercises(path):
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    assert "tinygrad-attn exercise list" in text and "tinygrad-attn exercise check" in text
    from tinygrad_attn.cli.exercises import NAMES
    named = set(re.findall(r"tinygrad-attn exercise (?:start|check) (\w+)", text))
    assert named and named <= set(NAMES), f"{path.name} names exercises {named}; there are {NAMES}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_top_to_bottom(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys, tinygrad_attn\nprint(sys.executable)\n"
                                              "print(tinygrad_attn.__file__)"))
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2                                    # the figures render inline
    executable, package = nb.cells[-1].outputs[0]["text"].split()
    assert Path(executable) == Path(sys.executable)            # the kernel ran this interpreter (the venv's) ...
    assert Path(package).parent == Path(tinygrad_attn.__file__).parent   # ... and this checkout of the package
