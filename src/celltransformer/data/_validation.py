"""Checks of user input, each failing with a message that says what is wrong and how to fix it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

_CHUNK_VALUES = 10_000_000
MAX_UNIQUE_NON_CATEGORICAL = 1_000

_GRAPH_HINT = (
    "Build it with squidpy first, for example "
    "`sq.gr.spatial_neighbors(adata, radius=50.0, coord_type='generic', library_key='section')` "
    "(any squidpy builder works: radius, kNN or Delaunay)."
)


def validate_spatial_graph(adata: AnnData, spatial_key: str) -> None:
    """Check that ``adata.obsp[spatial_key]`` is a sparse, square graph with one row per cell."""
    if spatial_key not in adata.obsp:
        present = list(adata.obsp.keys())
        raise KeyError(
            f"No spatial graph in adata.obsp[{spatial_key!r}] (adata.obsp holds {present}). "
            f"{_GRAPH_HINT} Pass spatial_key= if the graph is stored under another key."
        )
    graph = adata.obsp[spatial_key]
    if not sparse.issparse(graph):
        raise TypeError(
            f"adata.obsp[{spatial_key!r}] is a dense {type(graph).__name__}; the spatial graph must "
            "be a scipy sparse matrix. Convert it with "
            f"`adata.obsp[{spatial_key!r}] = scipy.sparse.csr_matrix(adata.obsp[{spatial_key!r}])`."
        )
    if graph.shape[0] != graph.shape[1]:
        raise ValueError(
            f"adata.obsp[{spatial_key!r}] has shape {graph.shape}; a spatial graph must be square "
            f"(one row and one column per cell). {_GRAPH_HINT}"
        )
    if graph.shape[0] != adata.n_obs:
        raise ValueError(
            f"adata.obsp[{spatial_key!r}] has {graph.shape[0]} rows but adata has {adata.n_obs} cells; "
            f"the graph was built for other cells. {_GRAPH_HINT}"
        )


def validate_sections(graph: sparse.spmatrix, sections: np.ndarray, spatial_key: str, library_key: str) -> None:
    """Check that no edge of the graph links cells of different sections."""
    coo = sparse.coo_matrix(graph)
    crossing = np.count_nonzero(sections[coo.row] != sections[coo.col])
    if crossing:
        raise ValueError(
            f"{crossing} edges of adata.obsp[{spatial_key!r}] link cells of different sections of "
            f"adata.obs[{library_key!r}], so neighbourhoods would mix sections. Rebuild the graph "
            f"section by section: `sq.gr.spatial_neighbors(adata, library_key={library_key!r}, ...)`."
        )


def validate_obs_column(adata: AnnData, key: str, argument: str) -> None:
    """Check that ``adata.obs[key]`` exists, has no missing values and looks categorical."""
    if key not in adata.obs:
        raise KeyError(
            f"{argument}={key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)})."
        )
    column = adata.obs[key]
    n_missing = int(column.isna().sum())
    if n_missing:
        raise ValueError(
            f"adata.obs[{key!r}] has {n_missing} missing values. Give those cells a label (for "
            f"example 'unknown') or drop them: `adata = adata[adata.obs[{key!r}].notna()].copy()`."
        )
    if not isinstance(column.dtype, pd.CategoricalDtype):
        n_unique = column.nunique()
        if n_unique > MAX_UNIQUE_NON_CATEGORICAL:
            raise ValueError(
                f"adata.obs[{key!r}] is not categorical and has {n_unique} distinct values, which "
                f"looks like the wrong column for {argument}. Pick a column of labels, or convert "
                f"it on purpose with `adata.obs[{key!r}] = adata.obs[{key!r}].astype('category')`."
            )


def _stored_values(matrix) -> np.ndarray:
    """The values a matrix actually stores (the non-zeros of a sparse matrix)."""
    return matrix.data if sparse.issparse(matrix) else np.asarray(matrix).ravel()


def validate_counts(matrix, where: str, is_log1p: bool) -> None:
    """Check that ``matrix`` holds finite, non-negative counts (integers unless ``is_log1p``).

    Cells or genes without any count only raise a warning: such a cell still gets an embedding
    and such a gene is predicted to be zero.
    """
    values = _stored_values(matrix)
    for start in range(0, len(values), _CHUNK_VALUES):
        chunk = values[start : start + _CHUNK_VALUES]
        if not np.isfinite(chunk).all():
            raise ValueError(
                f"{where} contains NaN or infinite values. Counts must be finite; fix or remove the "
                "affected cells before setup."
            )
        if (chunk < 0).any():
            raise ValueError(
                f"{where} contains negative values, so it does not hold counts (scaled or centred "
                "data?). Register the raw counts, e.g. `layer='counts'`."
            )
        if not is_log1p and (np.mod(chunk, 1) != 0).any():
            raise ValueError(
                f"{where} contains non-integer values, so it does not hold raw counts. Register the "
                "raw counts with `layer=...`, or, if it holds log1p(counts), say so with "
                "`expression_is_log1p=True` (counts are then recovered as expm1)."
            )
    _warn_empty(matrix, where)


def _warn_empty(matrix, where: str) -> None:
    cell_totals = np.asarray(matrix.sum(axis=1)).ravel()
    gene_totals = np.asarray(matrix.sum(axis=0)).ravel()
    n_empty_cells = int(np.count_nonzero(cell_totals == 0))
    n_empty_genes = int(np.count_nonzero(gene_totals == 0))
    if n_empty_cells:
        warnings.warn(
            f"{n_empty_cells} cells have no counts in {where}. They are kept: they still get an "
            "embedding, and as neighbours they contribute their cell type and an all-zero profile. "
            "Filter them with `sc.pp.filter_cells(adata, min_counts=1)` if they are artefacts.",
            UserWarning,
            stacklevel=3,
        )
    if n_empty_genes:
        warnings.warn(
            f"{n_empty_genes} genes have no counts in {where}. They are kept and the model learns "
            "to predict zero for them; remove them with `sc.pp.filter_genes(adata, min_counts=1)`.",
            UserWarning,
            stacklevel=3,
        )
