"""The quickstart notebook's code runs against the current API, on a small strip of osmFISH.

The notebooks are rendered with their stored outputs and never re-executed by the docs build, so
this test is what keeps them from drifting away from the package: it runs every code cell of
``tutorials/01_quickstart_osmfish.ipynb`` in order, in one namespace, with the notebook's
``parameters`` cell replaced by a small run (one epoch on 1,500 cells).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared_file

matplotlib.use("Agg")

TUTORIALS = Path(__file__).parents[1] / "tutorials"
QUICKSTART = TUTORIALS / "01_quickstart_osmfish.ipynb"
NOTEBOOK_DATA = 'Path("../../shared/data")'  # where the notebook looks for the data, from tutorials/
SMALL_RUN = "MAX_EPOCHS = 1\nN_CELLS = 1500\n"
N_CELLS = 1500


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]


def test_quickstart_parameters_cell():
    nbformat = pytest.importorskip("nbformat", reason="the docs extra is not installed: pip install -e '.[docs]'")
    cells = code_cells(nbformat.read(QUICKSTART, as_version=4))
    parameters = [cell for cell in cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and parameters[0] is cells[0], "the first code cell must be the only 'parameters' cell"
    namespace: dict = {}
    exec(parameters[0].source, namespace)
    assert namespace["MAX_EPOCHS"] == 20 and namespace["N_CELLS"] is None


def test_quickstart_runs_on_a_small_subset(monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the docs extra is not installed: pip install -e '.[docs]'")
    data = shared_file("osmfish.h5ad")
    cells = code_cells(nbformat.read(QUICKSTART, as_version=4))
    sources = [SMALL_RUN if "parameters" in cell.metadata.get("tags", []) else cell.source for cell in cells]
    assert sources[0] == SMALL_RUN, "the quickstart must start with a code cell tagged 'parameters'"
    magics = [source for source in sources if re.search(r"^\s*[%!]", source, flags=re.MULTILINE)]
    assert not magics, f"the tutorial's code must be plain Python (no IPython magics): {magics}"
    assert any(NOTEBOOK_DATA in source for source in sources), f"the quickstart no longer reads {NOTEBOOK_DATA}"
    if not (TUTORIALS / "../../shared/data" / data.name).exists():
        # The data lives elsewhere (CELLTRANSFORMER_SHARED_DATA): point the notebook there, never download.
        sources = [source.replace(NOTEBOOK_DATA, f"Path({str(SHARED_DATA)!r})") for source in sources]

    monkeypatch.chdir(TUTORIALS)
    namespace: dict = {"__name__": "__main__"}
    try:
        with matplotlib.rc_context():
            for index, source in enumerate(sources):
                exec(compile(source, f"{QUICKSTART.name}, code cell {index}", "exec"), namespace)
    finally:
        plt.close("all")

    adata = namespace["adata"]
    assert adata.n_obs == N_CELLS
    assert len(namespace["model"].history["nll_validation"]) == 1  # MAX_EPOCHS
    for key, width in (("X_celltransformer", 64), ("X_celltransformer_white", 20), ("X_celltransformer_white_smoothed", 20)):
        assert adata.obsm[key].shape == (N_CELLS, width), key
        assert np.isfinite(adata.obsm[key]).all(), key
    domains = adata.obs["domains"]
    assert isinstance(domains.dtype, pd.CategoricalDtype) and domains.notna().all()
    k = namespace["k"]
    assert k == adata.obs.loc[adata.obs["region"] != "Excluded", "region"].nunique() >= 2
    assert domains.nunique() <= k
    for method, scores in namespace["scores"].items():
        assert {"ari", "nmi", "homogeneity", "spatial_coherence"} <= scores.keys(), method
        assert -1 <= scores["ari"] <= 1 and 0 <= scores["nmi"] <= 1, method
    assert set(namespace["scores"]) == {"CellTransformer", "composition k-means"}
    assert namespace["same"], "the saved and reloaded model embeds differently"
