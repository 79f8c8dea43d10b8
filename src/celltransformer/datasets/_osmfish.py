"""osmFISH mouse somatosensory cortex (Codeluppi et al. 2018), from the Linnarsson lab's loom file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._download import RemoteFile, fetch

MICRONS_PER_PIXEL = 0.065
SECTION = "SSp_section1"
EXCLUDED_REGION = "Excluded"

# The Linnarsson lab published the loom at http://linnarssonlab.org/osmFISH/; this is the copy in
# drieslab/spatial-datasets at the commit that added it, served over https. No hash of the file has
# been published, so none is set here.
OSMFISH_LOOM = RemoteFile(
    url=(
        "https://raw.githubusercontent.com/drieslab/spatial-datasets/"
        "9420eb5804eacd1dd8787d7977ccc4f21ba2ab8e/data/2018_osmFISH_SScortex/raw_data/"
        "osmFISH_SScortex_mouse_all_cells.loom"
    ),
    filename="osmFISH_SScortex_mouse_all_cells.loom",
)


def osmfish(
    path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    known_hash: str | None = None,
) -> AnnData:
    """osmFISH of the mouse somatosensory cortex (Codeluppi et al. 2018, Linnarsson lab).

    33 genes measured in 6,471 segmented cells of one coronal section, with the authors' 32 cell
    types and 11 anatomical regions. Cells the authors left out of their analysis have
    ``obs["region"] == "Excluded"`` and ``obs["valid"] == False``; keep them as neighbours but
    leave them out when scoring domains.

    Parameters
    ----------
    path
        A local copy of the original ``osmFISH_SScortex_mouse_all_cells.loom``. If ``None``, the
        file is downloaded (once) into ``cache_dir``.
    cache_dir
        Download cache; by default the operating system's cache folder for ``celltransformer``.
    known_hash
        Hash the downloaded file must have, for example ``"sha256:<hex digest>"``. No hash of this
        file has been published: without one, the first download is trusted, its SHA-256
        recorded in the cache (and shown in a warning) and checked on every later use. Not used
        with ``path``.

    Returns
    -------
    AnnData with raw integer counts in ``X`` (sparse, ``float32``), ``obs["cell_type"]``,
    ``obs["region"]`` and ``obs["section"]`` (categorical), ``obs["valid"]`` (bool),
    ``obs["size_um2"]`` (segmented area), coordinates in microns in ``obsm["spatial"]`` and the
    file's origin, licence and units in ``uns["provenance"]``.

    Raises
    ------
    ValueError
        If the downloaded or cached file does not have the expected hash.
    """
    if path is None:
        path = fetch(OSMFISH_LOOM, cache_dir=cache_dir, known_hash=known_hash)
    return read_osmfish_loom(path)


def read_osmfish_loom(path: str | Path) -> AnnData:
    """Convert the osmFISH loom file to the layout of the package's real datasets.

    Parameters
    ----------
    path
        The original ``osmFISH_SScortex_mouse_all_cells.loom``.

    Returns
    -------
    The AnnData described in :func:`osmfish`.
    """
    with h5py.File(path, "r") as loom:
        counts = sparse.csr_matrix(np.asarray(loom["matrix"][()], dtype=np.float32).T)
        genes = _strings(loom["row_attrs/Gene"])
        columns = loom["col_attrs"]
        cell_ids = _strings(columns["CellID"])
        obs = pd.DataFrame(
            {
                "cell_type": pd.Categorical(_strings(columns["ClusterName"])),
                "region": pd.Categorical(_strings(columns["Region"])),
                "valid": columns["Valid"][()].astype(bool),
                "size_um2": columns["size_um2"][()].astype(np.float64),
                "section": pd.Categorical(np.full(len(cell_ids), SECTION)),
            },
            index=pd.Index([f"cell_{cell_id}" for cell_id in cell_ids]),
        )
        pixels = np.column_stack([columns["X"][()], columns["Y"][()]]).astype(np.float64)
    adata = AnnData(X=counts, obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    adata.obsm["spatial"] = pixels * MICRONS_PER_PIXEL
    adata.uns["provenance"] = _provenance(int((obs["region"] == EXCLUDED_REGION).sum()))
    return adata


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    """A loom attribute as Python strings, whether stored as text or as numbers (cell ids)."""
    if h5py.check_string_dtype(dataset.dtype) is not None:
        return np.asarray(dataset.asstr()[()], dtype=object)
    return np.asarray([str(value) for value in dataset[()].astype(np.int64)], dtype=object)


def _provenance(n_excluded: int) -> dict[str, str]:
    return {
        "licence": "repo MIT (data: Codeluppi et al. 2018 Nat Methods, Linnarsson lab)",
        "note": f"region='{EXCLUDED_REGION}'/valid=False for {n_excluded} cells",
        "source": OSMFISH_LOOM.url,
        "tech": "osmFISH",
        "tissue": "mouse somatosensory cortex",
        "units": f"microns (pixel coordinates x {MICRONS_PER_PIXEL})",
    }
