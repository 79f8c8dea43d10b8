"""STARmap mouse medial prefrontal cortex (Wang et al. 2018), as packaged with BASS (Li & Zhou 2022)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from ._download import RemoteFile, fetch

# BASS-Analysis's STARmap.Rmd numbers the manually annotated layers 1 to 4 from the pia inwards.
LAYERS = {1: "L1", 2: "L2/3", 3: "L5", 4: "L6"}

# The file at a pinned commit of zhengli09/BASS-Analysis; no hash of it has been published.
STARMAP_RDATA = RemoteFile(
    url=(
        "https://raw.githubusercontent.com/zhengli09/BASS-Analysis/"
        "829d10c5addeb411ad5deb4dea9f3ff3e8d79d97/data/starmap_mpfc.RData"
    ),
    filename="starmap_mpfc.RData",
)


def starmap_mpfc(
    path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    known_hash: str | None = None,
) -> AnnData:
    """STARmap of the mouse medial prefrontal cortex (Wang et al. 2018), three sections.

    166 genes measured in 3,190 cells of three mice (sections BZ5, BZ9 and BZ14), with the
    original study's 15 cell types and the cortical layers L1, L2/3, L5 and L6 annotated by hand
    for BASS (Li & Zhou 2022). Cells the original study could not type are not in the file.

    Parameters
    ----------
    path
        A local copy of the original ``starmap_mpfc.RData`` of BASS-Analysis. If ``None``, the
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
    ``obs["region"]`` (the layer) and ``obs["section"]`` (categorical), coordinates in STARmap
    image pixels in ``obsm["spatial"]`` and the file's origin, licence and units in
    ``uns["provenance"]``. Cells are named ``"<section>_<cell>"``.

    Raises
    ------
    ValueError
        If the downloaded or cached file does not have the expected hash.
    """
    if path is None:
        path = fetch(STARMAP_RDATA, cache_dir=cache_dir, known_hash=known_hash)
    return read_starmap_rdata(path)


def read_starmap_rdata(path: str | Path) -> AnnData:
    """Convert BASS-Analysis's ``starmap_mpfc.RData`` to the layout of the package's real datasets.

    The file holds two named R lists with one entry per section: ``starmap_cnts``, genes x cells
    count matrices with dimnames, and ``starmap_info``, data frames with the centroid ``x``,
    ``y``, the layer ``z`` (1 to 4) and the cell type ``c`` of every cell, in the same order.

    Parameters
    ----------
    path
        The original ``starmap_mpfc.RData``.

    Returns
    -------
    The AnnData described in :func:`starmap_mpfc`.
    """
    import rdata

    objects = rdata.read_rda(path)
    sections = [
        _section(name, counts, objects["starmap_info"][name]) for name, counts in objects["starmap_cnts"].items()
    ]
    genes = sections[0][1]
    if any(not np.array_equal(section_genes, genes) for _, section_genes, _ in sections):
        raise ValueError(f"The sections of {path} do not measure the same genes in the same order.")
    counts = sparse.vstack([section_counts for section_counts, _, _ in sections], format="csr")
    obs = pd.concat([section_obs for _, _, section_obs in sections])
    obs["cell_type"] = pd.Categorical(obs["cell_type"])
    obs["region"] = pd.Categorical(obs["region"], categories=list(LAYERS.values()))
    obs["section"] = pd.Categorical(obs["section"], categories=list(objects["starmap_cnts"]))
    adata = AnnData(X=counts, obs=obs.drop(columns=["x", "y"]), var=pd.DataFrame(index=pd.Index(genes)))
    adata.obsm["spatial"] = obs[["x", "y"]].to_numpy(dtype=np.float64)
    adata.uns["provenance"] = _provenance()
    return adata


def _section(name: str, counts, info: pd.DataFrame) -> tuple[sparse.csr_matrix, np.ndarray, pd.DataFrame]:
    """Cells x genes counts, gene names and per-cell annotations of one section."""
    matrix, genes, cells = _genes_by_cells(counts)
    if len(cells) != len(info):
        raise ValueError(f"Section {name}: {len(cells)} cells in the counts but {len(info)} in the annotations.")
    obs = pd.DataFrame(
        {
            "cell_type": info["c"].astype(str).to_numpy(),
            "region": _layer_names(info["z"]),
            "section": name,
            "x": info["x"].to_numpy(dtype=np.float64),
            "y": info["y"].to_numpy(dtype=np.float64),
        },
        index=pd.Index([f"{name}_{cell}" for cell in cells]),
    )
    return sparse.csr_matrix(matrix.T, dtype=np.float32), genes, obs


def _genes_by_cells(counts) -> tuple[sparse.spmatrix | np.ndarray, np.ndarray, np.ndarray]:
    """Matrix, row names and column names of an R count matrix, dense or a ``dgCMatrix``."""
    if isinstance(counts, SimpleNamespace):  # an S4 object: Matrix's compressed sparse column format
        n_rows, n_columns = (int(size) for size in counts.Dim)
        matrix = sparse.csc_matrix((counts.x, counts.i, counts.p), shape=(n_rows, n_columns))
        genes, cells = counts.Dimnames
        return matrix, np.asarray(genes, dtype=object), np.asarray(cells, dtype=object)
    rows, columns = counts.dims
    return (
        np.asarray(counts.values),
        np.asarray(counts.coords[rows].values, dtype=object),
        np.asarray(counts.coords[columns].values, dtype=object),
    )


def _layer_names(layer_numbers: pd.Series) -> np.ndarray:
    """Layer names of the 1-to-4 layer numbers, whether R stored them as numbers or as a factor."""
    numbers = pd.to_numeric(layer_numbers.astype(str)).astype(int)
    return numbers.map(LAYERS).to_numpy(dtype=object)


def _provenance() -> dict[str, str]:
    return {
        "licence": (
            "none stated in repo; data: Wang et al. 2018 Science; "
            "domain labels: Li & Zhou 2022 (BASS) manual annotation"
        ),
        "note": "z 1..4 mapped to L1,L2/3,L5,L6 per BASS-Analysis STARmap.Rmd",
        "source": STARMAP_RDATA.url,
        "tech": "STARmap (166-gene)",
        "tissue": "mouse medial prefrontal cortex",
        "units": "pixels (STARmap image)",
    }
