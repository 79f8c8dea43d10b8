"""The documentation: the Sphinx build passes with warnings as errors, the API reference lists every
public object, and the tutorial notebooks are valid, executed notebooks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from functools import reduce
from pathlib import Path

import pytest

import celltransformer as ct

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
TUTORIALS = ROOT / "tutorials"
DOCS_REQUIREMENTS = ("sphinx", "myst_nb", "sphinx_book_theme", "sphinx_copybutton", "nbformat")
PUBLIC_MODULES = ("data", "datasets", "model", "nn", "pl", "tl")
BUILD_TIMEOUT_S = 600


def require_docs_extra() -> None:
    missing = [name for name in DOCS_REQUIREMENTS if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the docs extra is not installed (missing {', '.join(missing)}): pip install -e '.[docs]'")


def test_sphinx_build_passes_with_warnings_as_errors(tmp_path):
    require_docs_extra()
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d", str(tmp_path / "doctrees")]
    result = subprocess.run(
        [*command, str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout[-5000:]}\n{result.stderr[-10000:]}"
    for page in ("index", "installation", "api", "data_format", "changelog", "tutorials", "published_checkpoints"):
        assert (tmp_path / "html" / f"{page}.html").exists(), page
    data_format = (tmp_path / "html" / "data_format.html").read_text()
    assert "<img" in data_format, "the attention-mask figure was not drawn"


def documented_objects() -> list[object]:
    """Objects named in the autosummary tables of ``docs/api.md``."""
    names, in_autosummary = [], False
    for line in (DOCS / "api.md").read_text().splitlines():
        if line.startswith(".. autosummary::"):
            in_autosummary = True
        elif line.strip() and not line.startswith(" "):
            in_autosummary = False
        elif in_autosummary and line.strip() and not line.strip().startswith(":"):
            names.append(line.strip())
    return [reduce(getattr, name.split("."), ct) for name in names]


def public_objects() -> dict[str, object]:
    """Every name in the ``__all__`` of the public modules, and the model at the top level."""
    objects = {"celltransformer.CellTransformer": ct.CellTransformer}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(f"celltransformer.{module_name}")
        objects.update({f"celltransformer.{module_name}.{name}": getattr(module, name) for name in module.__all__})
    return objects


def test_api_reference_lists_every_public_object():
    documented = documented_objects()
    missing = [name for name, obj in public_objects().items() if not any(obj is entry for entry in documented)]
    assert not missing, f"add these to docs/api.md: {missing}"


def tutorial_notebooks() -> list[Path]:
    return sorted(TUTORIALS.glob("*.ipynb"))


@pytest.mark.parametrize("notebook", tutorial_notebooks(), ids=lambda path: path.name)
def test_tutorial_is_a_valid_executed_notebook(notebook):
    nbformat = pytest.importorskip("nbformat", reason="the docs extra is not installed: pip install -e '.[docs]'")
    contents = nbformat.read(notebook, as_version=nbformat.NO_CONVERT)
    nbformat.validate(contents)
    assert contents.nbformat == 4
    code_cells = [cell for cell in contents.cells if cell.cell_type == "code" and cell.source.strip()]
    not_run = [index for index, cell in enumerate(code_cells) if cell.execution_count is None]
    assert not not_run, f"{notebook.name}: code cells {not_run} have no stored outputs; run the notebook and save it"
